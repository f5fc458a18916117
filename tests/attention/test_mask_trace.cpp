// Mask trace files: round trip, atomic write, and malformed files named precisely.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/attention/mask_policy.h"
#include "engine/attention/mask_trace.h"
#include "engine/attention/policies.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

namespace {
MaskTrace sample_trace() {
  MaskTrace t;
  t.grid = {4, 8, 8};
  t.block_size = 64;
  t.mode = "local-anchors";
  t.params = resolve_params(find_policy("local-anchors"), {{"anchors", 2}});
  auto policy = create_policy("local-anchors", {{"anchors", 2}});
  for (int step = 0; step < 2; ++step) {
    MaskRequest r;
    r.grid = t.grid;
    r.block_size = 64;
    r.step = step;
    t.add(*policy->build(r), step, 0);
  }
  // A per-head mask: two heads, one entry each.
  std::vector<uint8_t> keep(2 * 4 * 4, 0);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 4; ++i) keep[size_t((h * 4 + i) * 4 + i)] = keep[size_t((h * 4 + i) * 4 + h)] = 1;
  t.add(BlockMask::from_dense(keep, 256, 64, 2), 2, 1);
  return t;
}

std::string temp_path(const char* name) { return ::testing::TempDir() + name; }

void expect_io_error_mentions(const std::string& text, const std::string& needle) {
  try {
    mask_trace_from_json(text, "t.json");
    ADD_FAILURE() << "no IoError for: " << needle;
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.json"), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Trace, RoundTrip) {
  const MaskTrace t = sample_trace();
  ASSERT_EQ(t.entries.size(), 4u);
  EXPECT_EQ(t.entries[2].head, 0);
  EXPECT_EQ(t.entries[3].head, 1);
  const std::string path = temp_path("longshot_trace_roundtrip.json");
  write_mask_trace(t, path);
  std::ifstream tmp(path + ".tmp");
  EXPECT_FALSE(tmp.good()) << "temporary file left behind";
  const MaskTrace r = read_mask_trace(path);
  EXPECT_EQ(r.grid, t.grid);
  EXPECT_EQ(r.block_size, t.block_size);
  EXPECT_EQ(r.mode, "local-anchors");
  EXPECT_EQ(r.params, t.params);
  ASSERT_EQ(r.entries.size(), t.entries.size());
  for (size_t i = 0; i < r.entries.size(); ++i) {
    EXPECT_EQ(r.entries[i].step, t.entries[i].step);
    EXPECT_EQ(r.entries[i].layer, t.entries[i].layer);
    EXPECT_EQ(r.entries[i].head, t.entries[i].head);
    EXPECT_DOUBLE_EQ(r.entries[i].sparsity, t.entries[i].sparsity);
    EXPECT_EQ(r.entries[i].row_offsets, t.entries[i].row_offsets);
    EXPECT_EQ(r.entries[i].col_indices, t.entries[i].col_indices);
    EXPECT_NEAR(r.entry_mask(r.entries[i]).block_sparsity(), r.entries[i].sparsity, 1e-12);
  }
  std::remove(path.c_str());
}

TEST(Trace, MalformedFilesNameTheField) {
  const nlohmann::json good = nlohmann::json::parse(mask_trace_to_json(sample_trace()));
  expect_io_error_mentions("{not json", "not valid JSON");
  expect_io_error_mentions("[1, 2]", "object");
  auto with = [&](auto&& edit) {
    nlohmann::json j = good;
    edit(j);
    return j.dump();
  };
  expect_io_error_mentions(with([](auto& j) { j["format"] = "other"; }), "'format'");
  expect_io_error_mentions(with([](auto& j) { j["version"] = 2; }), "'version'");
  expect_io_error_mentions(with([](auto& j) { j.erase("grid"); }), "'grid'");
  expect_io_error_mentions(with([](auto& j) { j["grid"] = {4, 0, 8}; }), "'grid'");
  expect_io_error_mentions(with([](auto& j) { j["block_size"] = 0; }), "'block_size'");
  expect_io_error_mentions(with([](auto& j) { j["ordering"] = "zorder"; }), "'ordering'");
  expect_io_error_mentions(with([](auto& j) { j["entries"][1].erase("layer"); }), "entries[1]");
  expect_io_error_mentions(with([](auto& j) { j["entries"][0]["row_offsets"].erase(0); }), "'row_offsets'");
  expect_io_error_mentions(with([](auto& j) { j["entries"][0]["col_indices"][0] = 99; }), "entries[0]");
  expect_io_error_mentions(with([](auto& j) { j["entries"][0]["head"] = -2; }), "head");
  expect_io_error_mentions(with([](auto& j) { j["params"]["tau"] = "x"; }), "params.tau");
  EXPECT_THROW(read_mask_trace(temp_path("does_not_exist.json")), IoError);
  EXPECT_THROW(write_mask_trace(sample_trace(), "/nonexistent-dir/x.json"), IoError);
}

TEST(Trace, RejectsMismatchedMask) {
  MaskTrace t;
  t.grid = {4, 8, 8};
  t.block_size = 64;
  EXPECT_THROW(t.add(BlockMask::full(255, 64), 0, 0), ShapeError);
  EXPECT_THROW(t.add(BlockMask::full(256, 128), 0, 0), ShapeError);
}

// The BO trace as the studio plots it (issue 25): read_trace reads a version-1 run and a version-2
// table (horizons in read_table's order, labelled by length and geometry), agrees with write_table,
// refuses a missing, corrupt or trace-less file naming it, and pareto_front keeps exactly the
// non-dominated trials that met the floor.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "engine/calibrate/calibration.h"
#include "engine/common/assets.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::calibrate;
using nlohmann::json;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("longshot_trace_" + name)).string();
}

std::string write(const std::string& name, const json& j) {
  const std::string p = temp_path(name);
  std::ofstream(p) << j.dump();
  return p;
}

json trial(int n, double sparsity, double nmse, bool refused) {
  return {{"trial", n}, {"sparsity", sparsity}, {"nmse", nmse}, {"loss", 1000 * nmse}, {"refused", refused}, {"params", json::object()}};
}

// One regime as write_table records it: three trials (the first refused), the second chosen.
json regime(double offset) {
  return {{"params", {{"decay", 0.5}}},
          {"nmse", 0.01 + offset},
          {"sparsity", 0.7},
          {"loss", 10.0},
          {"best_trial", 1},
          {"kept_defaults", false},
          {"min_sparsity", 0.6},
          {"defaults", {{"nmse", 0.02}, {"sparsity", 0.76}, {"loss", 20.0}, {"params", json::object()}}},
          {"trace", json::array({trial(0, 0.3, 0.001, true), trial(1, 0.7, 0.01 + offset, false), trial(2, 0.8, 0.05, false)})}};
}

json run(const std::string& grid, int block, double offset) {
  return {{"format", "longshot-calibration"}, {"version", 1}, {"mode", "dynamicrad"},
          {"proxy", {{"grid", grid}, {"block", block}}},
          {"regimes", {{"fast", regime(offset)}, {"static", regime(offset + 0.001)}}}};
}

std::string io_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "no IoError";
}

}  // namespace

TEST(TraceReader, ReadsARunTable) {
  const std::string p = write("v1.json", run("16x8x8", 32, 0.0));
  const TableTrace t = read_trace(p);
  EXPECT_EQ(t.mode, "dynamicrad");
  EXPECT_EQ(t.file, p);
  EXPECT_EQ(t.version, 1);
  ASSERT_EQ(t.horizons.size(), 1u);
  EXPECT_EQ(t.horizons[0].label, "16 frames, 8x8 tokens per frame, block 32");
  ASSERT_EQ(t.horizons[0].regimes.size(), 2u);
  const RegimeTrace& fast = t.horizons[0].regimes[0];
  EXPECT_EQ(fast.regime, "fast");
  ASSERT_EQ(fast.trials.size(), 3u);
  EXPECT_TRUE(fast.trials[0].refused);
  EXPECT_FALSE(fast.trials[1].refused);
  EXPECT_EQ(fast.trials[2].trial, 2);
  EXPECT_DOUBLE_EQ(fast.trials[2].sparsity, 0.8);
  EXPECT_EQ(fast.chosen.trial, 1);
  EXPECT_DOUBLE_EQ(fast.chosen.nmse, 0.01);
  EXPECT_EQ(fast.defaults.trial, -1);
  EXPECT_DOUBLE_EQ(fast.defaults.sparsity, 0.76);
  EXPECT_DOUBLE_EQ(fast.floor, 0.6);
  EXPECT_FALSE(fast.kept_defaults);
  // The refused trial has the lowest NMSE but is not on the front.
  EXPECT_EQ(fast.front, (std::vector<size_t>{1, 2}));
  std::filesystem::remove(p);
}

TEST(TraceReader, ReadsAHorizonsTableInLengthOrder) {
  json h64 = run("64x8x8", 32, 0.1), h16 = run("16x16x16", 128, 0.0);
  for (json* h : {&h64, &h16}) h->erase("format"), h->erase("version"), h->erase("mode");
  h64["grid_frames"] = 64, h64["from"] = "run-4x.json";
  h16["grid_frames"] = 16;
  // The kept defaults: no trial index, the table's figures are the defaults'.
  h16["regimes"]["static"]["best_trial"] = -1;
  h16["regimes"]["static"]["kept_defaults"] = true;
  h16["regimes"]["static"].erase("min_sparsity");
  const std::string p = write("v2.json", {{"format", "longshot-calibration"}, {"version", 2}, {"mode", "dynamicrad"},
                                          {"horizons", json::array({h64, h16})}});
  const TableTrace t = read_trace(p);
  EXPECT_EQ(t.version, 2);
  ASSERT_EQ(t.horizons.size(), 2u);
  EXPECT_EQ(t.horizons[0].label, "16 frames, 16x16 tokens per frame, block 128");
  EXPECT_EQ(t.horizons[1].label, "64 frames, 8x8 tokens per frame, block 32");
  EXPECT_EQ(t.horizons[1].from, "run-4x.json");
  EXPECT_DOUBLE_EQ(t.horizons[1].regimes[0].chosen.nmse, 0.11);
  const RegimeTrace& kept = t.horizons[0].regimes[1];
  EXPECT_EQ(kept.regime, "static");
  EXPECT_TRUE(kept.kept_defaults);
  EXPECT_EQ(kept.chosen.trial, -1);
  EXPECT_LT(kept.floor, 0.0);
  std::filesystem::remove(p);
}

// What write_table writes, read_trace reads: one regime, a floor, three trials.
TEST(TraceReader, AgreesWithWriteTable) {
  CalibrationTable table;
  table.mode = "dynamicrad";
  table.proxy.grid = attention::TokenGrid{8, 4, 4};
  table.proxy.block_size = 16;
  RegimeResult r;
  r.regime = {"slow", 0.15};
  r.floor = 0.5;
  r.best = {0.02, 0.75, 20.0, false, {}};
  r.defaults = {0.03, 0.6, 30.0, false, {}};
  const double figures[3][2] = {{0.4, 0.001}, {0.75, 0.02}, {0.9, 0.2}};
  for (int i = 0; i < 3; ++i)
    r.search.trace.push_back({i, {{"decay", 0.1 * i}},
                              {1.0, {{"nmse", figures[i][1]}, {"sparsity", figures[i][0]}, {"refused", i == 0 ? 1.0 : 0.0}}}});
  r.search.best = 1;
  table.regimes.push_back(r);
  const std::string p = temp_path("written.json");
  write_table(table, p);
  const TableTrace t = read_trace(p);
  ASSERT_EQ(t.horizons.size(), 1u);
  EXPECT_EQ(t.horizons[0].label, "8 frames, 4x4 tokens per frame, block 16");
  const RegimeTrace& s = t.horizons[0].regimes.at(0);
  EXPECT_EQ(s.regime, "slow");
  ASSERT_EQ(s.trials.size(), 3u);
  EXPECT_TRUE(s.trials[0].refused);
  EXPECT_DOUBLE_EQ(s.trials[2].nmse, 0.2);
  EXPECT_EQ(s.chosen.trial, 1);
  EXPECT_DOUBLE_EQ(s.chosen.sparsity, 0.75);
  EXPECT_DOUBLE_EQ(s.defaults.nmse, 0.03);
  EXPECT_DOUBLE_EQ(s.floor, 0.5);
  EXPECT_EQ(s.front, (std::vector<size_t>{1, 2}));
  std::filesystem::remove(p);
}

// The table the studio shows by default: every regime's choice is a trial on its front.
TEST(TraceReader, ReadsTheShippedTable) {
  const std::string p = find_asset("longshot-builtin-dynamicrad-calibration.json");
  ASSERT_FALSE(p.empty()) << "assets/longshot-builtin-dynamicrad-calibration.json not found";
  const TableTrace t = read_trace(p);
  EXPECT_EQ(t.mode, "dynamicrad");
  ASSERT_GE(t.horizons.size(), 2u);
  for (const auto& h : t.horizons) {
    ASSERT_EQ(h.regimes.size(), 3u) << h.label;
    for (const auto& r : h.regimes) {
      ASSERT_FALSE(r.trials.empty());
      if (r.kept_defaults) continue;
      bool on_front = false;
      for (size_t i : r.front) on_front |= r.trials[i].trial == r.chosen.trial;
      EXPECT_TRUE(on_front) << h.label << " " << r.regime << " trial " << r.chosen.trial;
      EXPECT_GE(r.chosen.sparsity, r.floor) << h.label << " " << r.regime;
    }
  }
}

TEST(TraceReader, RefusesMissingCorruptOrTracelessFiles) {
  const std::string missing = temp_path("missing.json");
  std::filesystem::remove(missing);
  EXPECT_NE(io_error_of([&] { read_trace(missing); }).find(missing), std::string::npos);
  const std::string corrupt = temp_path("corrupt.json");
  std::ofstream(corrupt) << R"({"format": "longshot-calibration", "version": 1, "regimes": {)";
  const std::string e1 = io_error_of([&] { read_trace(corrupt); });
  EXPECT_NE(e1.find(corrupt), std::string::npos) << e1;
  EXPECT_NE(e1.find("not valid JSON"), std::string::npos) << e1;
  const std::string router = write("router.json", {{"format", "longshot-router"}, {"version", 1}});
  EXPECT_NE(io_error_of([&] { read_trace(router); }).find("not a longshot-calibration file"), std::string::npos);
  // A table without its trace: said in so many words.
  json bare = run("16x8x8", 32, 0.0);
  bare["regimes"]["fast"]["trace"] = json::array();
  const std::string traceless = write("traceless.json", bare);
  const std::string e2 = io_error_of([&] { read_trace(traceless); });
  EXPECT_NE(e2.find(traceless), std::string::npos) << e2;
  EXPECT_NE(e2.find("regime 'fast' has no BO trace"), std::string::npos) << e2;
  bare["regimes"]["fast"].erase("trace");
  EXPECT_NE(io_error_of([&] { read_trace(write("traceless.json", bare)); }).find("no BO trace"), std::string::npos);
  json bad = run("16x8x8", 32, 0.0);
  bad["regimes"]["static"]["trace"][2].erase("nmse");
  EXPECT_NE(io_error_of([&] { read_trace(write("bad.json", bad)); }).find("regime 'static' trace entry 2 has no numeric 'nmse'"),
            std::string::npos);
  bad = run("16x8x8", 32, 0.0);
  bad["regimes"]["fast"]["best_trial"] = 3;
  EXPECT_NE(io_error_of([&] { read_trace(write("bad.json", bad)); }).find("'best_trial' 3 outside its trace of 3"),
            std::string::npos);
  for (const char* f : {"corrupt.json", "router.json", "traceless.json", "bad.json"}) std::filesystem::remove(temp_path(f));
}

// Hand-checked: (sparsity, NMSE) of eight trials. 1 is dominated by 2 (sparser and better), 6 by
// 3 (as sparse, worse), 7 by 0 (as good, less sparse); 4 would dominate 3 but was refused; 8 is NaN.
TEST(ParetoFront, KeepsTheNonDominatedTrialsThatMetTheFloor) {
  std::vector<TracePoint> p = {{0, 0.50, 0.010, false}, {1, 0.60, 0.020, false}, {2, 0.70, 0.015, false},
                               {3, 0.80, 0.050, false}, {4, 0.90, 0.040, true},  {5, 0.40, 0.005, false},
                               {6, 0.80, 0.060, false}, {7, 0.45, 0.010, false}, {8, NAN, 0.001, false}};
  EXPECT_EQ(pareto_front(p), (std::vector<size_t>{5, 0, 2, 3}));
  p[4].refused = false;  // now it dominates 3 and closes the front
  EXPECT_EQ(pareto_front(p), (std::vector<size_t>{5, 0, 2, 4}));
  // Two equal points: neither dominates the other, both stay.
  EXPECT_EQ(pareto_front({{0, 0.5, 0.01, false}, {1, 0.5, 0.01, false}}), (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(pareto_front({{0, 0.5, 0.01, true}}).empty());
  EXPECT_TRUE(pareto_front({}).empty());
}

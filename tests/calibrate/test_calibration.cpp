// Calibration on DynamicRad's proxy: the AR-drift inputs, the objective, the search box read from
// ParamSpecs, the per-regime result against the mode's defaults, and the lookup table's round trip
// and refusals. Small grids: each case runs in a few seconds on 2 cores.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/calibrate/calibration.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::calibrate;

namespace {

ProxySpec small_proxy() {
  ProxySpec p;
  p.grid = attention::TokenGrid{12, 8, 8};  // 768 tokens, 64 per frame, 2 blocks of 32 per frame
  p.heads = 2;
  p.head_dim = 64;
  p.block_size = 32;
  p.seed = 3;
  return p;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("longshot_calib_" + name)).string();
}

// Mean cosine similarity of a token's feature with the same position `lag` frames later.
double lag_similarity(const torch::Tensor& x, const attention::TokenGrid& g, int64_t lag) {
  const int64_t P = g.frame_size();
  auto a = x.narrow(2, 0, (g.t - lag) * P), b = x.narrow(2, lag * P, (g.t - lag) * P);
  return torch::cosine_similarity(a, b, -1).mean().item<double>();
}

}  // namespace

TEST(Proxy, DriftInputsAreSeededAndSharedQKV) {
  const auto spec = small_proxy();
  const auto a = make_drift_qkv(spec, 0.15), b = make_drift_qkv(spec, 0.15);
  EXPECT_TRUE(torch::equal(a.q, b.q));
  EXPECT_TRUE(torch::equal(a.q, a.k));
  EXPECT_TRUE(torch::equal(a.q, a.v));
  EXPECT_EQ(a.q.sizes(), (std::vector<int64_t>{1, 2, 768, 64}));
  // Every token has norm √D (DynamicRad normalises each frame like a LayerNorm output).
  EXPECT_NEAR(a.q.norm(2, -1).mean().item<double>(), 8.0, 1e-4);
  auto other = spec;
  other.seed = 4;
  EXPECT_FALSE(torch::equal(a.q, make_drift_qkv(other, 0.15).q));
}

TEST(Proxy, DriftSetsHowFastTokensDecorrelate) {
  const auto spec = small_proxy();
  double prev = 2.0;
  for (const auto& r : builtin_regimes()) {
    const double s = lag_similarity(make_drift_qkv(spec, r.drift).q, spec.grid, 4);
    EXPECT_LT(s, prev) << r.name;  // static > slow > fast
    prev = s;
  }
  EXPECT_GT(lag_similarity(make_drift_qkv(spec, 0.02).q, spec.grid, 4), 0.95);
  EXPECT_LT(lag_similarity(make_drift_qkv(spec, 0.40).q, spec.grid, 4), 0.5);
}

TEST(Proxy, RefusesBadRegimesAndSizes) {
  EXPECT_THROW(parse_regimes(""), ParameterError);
  EXPECT_THROW(parse_regimes("static,,fast"), ParameterError);
  EXPECT_THROW(parse_regimes("warp"), ParameterError);
  EXPECT_THROW(parse_regimes("slow,slow"), ParameterError);
  EXPECT_EQ(parse_regimes("fast,static").size(), 2u);
  auto spec = small_proxy();
  EXPECT_THROW(make_drift_qkv(spec, 0.0), ParameterError);
  EXPECT_THROW(make_drift_qkv(spec, 1.5), ParameterError);
  spec.heads = 0;
  EXPECT_THROW(make_drift_qkv(spec, 0.1), ParameterError);
}

TEST(Objective, DenseScoresZeroErrorAndPaysThePenalty) {
  const ProxyTask task(small_proxy(), builtin_regimes()[1]);
  ObjectiveSpec obj;
  obj.mode = "dense";
  const auto s = task.score(obj, {});
  EXPECT_NEAR(s.nmse, 0.0, 1e-9);
  EXPECT_NEAR(s.sparsity, 0.0, 1e-12);
  EXPECT_NEAR(s.loss, 10000.0 * 0.8, 1e-3);  // all of it is the sparsity penalty
  obj.mode = "dynamicrad";
  const auto d = task.score(obj, {});
  EXPECT_GT(d.sparsity, 0.0);
  EXPECT_GT(d.nmse, 0.0);
  EXPECT_NEAR(d.loss, 1000.0 * d.nmse + 10000.0 * std::max(0.0, 0.8 - d.sparsity), 1e-6);
  obj.mode = "nosuchmode";
  EXPECT_THROW(task.score(obj, {}), ParameterError);
}

TEST(SearchBox, ReadFromParamSpecs) {
  const auto box = search_box("dynamicrad");
  ASSERT_EQ(box.size(), 6u);
  EXPECT_EQ(box[0].name, "decay");
  EXPECT_EQ(box[5].name, "threshold_far");
  const auto ratio = search_box("dynamicrad", {}, {{"select", 0}});
  EXPECT_EQ(ratio[4].name, "ratio_near");
  const auto custom = search_box("dynamicrad", {"decay=0.1:1", "threshold_near"});
  ASSERT_EQ(custom.size(), 2u);
  EXPECT_DOUBLE_EQ(custom[0].hi, 1.0);
  EXPECT_DOUBLE_EQ(custom[1].lo, -2.0);
  const auto radial = search_box("radial-ratio");  // generic: continuous, bounded, not schedule
  ASSERT_FALSE(radial.empty());
  for (const auto& d : radial) EXPECT_NE(d.name, "sink_frames");
  const auto integer = search_box("dynamicrad", {"score_heads=1:4"});
  EXPECT_TRUE(integer[0].integer);
}

TEST(SearchBox, RefusesUnknownOrOutOfRangeParameters) {
  auto message = [](auto fn) {
    try {
      fn();
    } catch (const ParameterError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { search_box("dynamicrad", {"warp=0:1"}); }).find("warp"), std::string::npos);
  EXPECT_NE(message([] { search_box("dynamicrad", {"mask_threshold=0.5:1.5"}); }).find("mask_threshold"),
            std::string::npos);
  EXPECT_NE(message([] { search_box("dynamicrad", {"long_factor=0:2"}); }).find("long_factor"), std::string::npos);
  EXPECT_NE(message([] { search_box("dynamicrad", {"decay=1:x"}); }).find("decay"), std::string::npos);
  EXPECT_NE(message([] { search_box("dynamicrad", {"decay=2:1"}); }).find("decay"), std::string::npos);
  EXPECT_NE(message([] { search_box("dynamicrad", {"threshold_near"}, {{"threshold_near", 1}}); }).find("fixed"),
            std::string::npos);
  EXPECT_NE(message([] { search_box("dense"); }).find("search box"), std::string::npos);
  EXPECT_NE(message([] { search_box("nosuchmode"); }).find("mode"), std::string::npos);
}

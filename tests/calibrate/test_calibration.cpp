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
#include "engine/common/remove_tree.h"

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

// One real calibration (dynamicrad, 24 frames so the 0.8 target is reachable: the always-kept
// same / adjacent / first frames leave a floor of 84 % sparsity) shared by the cases below.
// Measured (seed 0, 20 trials): slow 39.3 loss (nmse 0.039, 82.3 %) vs defaults 45.8 (0.046, 84.0 %);
// fast 60.3 (0.060, 80.0 %) vs 69.7 (0.070, 84.0 %). The defaults sit at the sparsity floor, so the
// calibration buys lower error with sparsity down towards the target; it cannot be sparser.
class Calibrated : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ProxySpec proxy;
    proxy.grid = attention::TokenGrid{24, 4, 8};
    proxy.heads = 2;
    proxy.head_dim = 64;
    proxy.block_size = 16;
    ObjectiveSpec objective;
    objective.mode = "dynamicrad";
    TpeOptions options;
    options.trials = 20;
    table_ = new CalibrationTable(
        calibrate::calibrate(objective, parse_regimes("slow,fast"), proxy, search_box("dynamicrad"), options));
  }
  static void TearDownTestSuite() {
    delete table_;
    table_ = nullptr;
  }
  static CalibrationTable* table_;
};
CalibrationTable* Calibrated::table_ = nullptr;

TEST_F(Calibrated, BeatsTheModesDefaultsPerRegime) {
  ASSERT_EQ(table_->regimes.size(), 2u);
  for (const auto& r : table_->regimes) {
    SCOPED_TRACE(r.regime.name);
    std::printf("%s: calibrated loss %.3f nmse %.5f sparsity %.4f | defaults loss %.3f nmse %.5f sparsity %.4f\n",
                r.regime.name.c_str(), r.best.loss, r.best.nmse, r.best.sparsity, r.defaults.loss, r.defaults.nmse,
                r.defaults.sparsity);
    EXPECT_EQ(r.search.trace.size(), 20u);
    EXPECT_LT(r.best.loss, r.defaults.loss);
    EXPECT_LT(r.best.nmse, r.defaults.nmse * 0.95);   // at least 5 % less reconstruction error
    EXPECT_GE(r.best.sparsity, 0.8 - 1e-9);           // while meeting the target sparsity
    // The recorded best is the trace's minimum and re-scores to the same figures.
    double min_loss = INFINITY;
    for (const auto& t : r.search.trace) min_loss = std::min(min_loss, t.outcome.loss);
    EXPECT_DOUBLE_EQ(r.best.loss, min_loss);
  }
}

TEST_F(Calibrated, TableRoundTripsAndRefusesCorruptFiles) {
  const std::string path = temp_path("table.json");
  write_table(*table_, path);
  const auto loaded = read_table(path);
  EXPECT_EQ(loaded.mode, "dynamicrad");
  EXPECT_EQ(loaded.version, 1);
  ASSERT_EQ(loaded.horizons.size(), 1u);  // one run: one set for any length
  EXPECT_EQ(loaded.horizons[0].grid_frames, 0);
  ASSERT_EQ(loaded.horizons[0].regimes.size(), 2u);
  EXPECT_EQ(loaded.horizons[0].regimes.at("fast"), table_->regimes[1].params);
  {
    std::ifstream in(path);
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["version"], 1);
    EXPECT_EQ(j["regimes"]["slow"]["trace"].size(), 20u);
    EXPECT_TRUE(j["regimes"]["slow"]["trace"][0].contains("sparsity"));
    EXPECT_TRUE(j["regimes"]["slow"]["trace"][0].contains("nmse"));
    EXPECT_TRUE(j["regimes"]["slow"]["trace"][0]["params"].contains("decay"));
  }
  auto write = [&](const std::string& text) {
    std::ofstream(path) << text;
  };
  auto io_message = [&] {
    try {
      read_table(path);
    } catch (const IoError& e) {
      return std::string(e.what());
    } catch (const ParameterError& e) {
      return std::string("parameter: ") + e.what();
    }
    return std::string("no error");
  };
  write("{\"format\": \"longshot-calibration\", \"version\": 1, \"mode\": \"dynamicrad\", \"regi");
  EXPECT_NE(io_message().find("not valid JSON"), std::string::npos) << io_message();
  EXPECT_NE(io_message().find(path), std::string::npos);
  write(R"({"format": "longshot-calibration", "version": 3, "mode": "dynamicrad", "regimes": {"fast": {"params": {}}}})");
  EXPECT_NE(io_message().find("version 3 is not supported (this build reads 1 to 2)"), std::string::npos) << io_message();
  write(R"({"format": "other", "version": 1})");
  EXPECT_NE(io_message().find("not a longshot-calibration"), std::string::npos) << io_message();
  write(R"({"format": "longshot-calibration", "version": 1, "mode": "dynamicrad", "regimes": {}})");
  EXPECT_NE(io_message().find("no regimes"), std::string::npos) << io_message();
  write(R"({"format": "longshot-calibration", "version": 1, "mode": "dynamicrad", "regimes": {"fast": {"params": {"warp": 1}}}})");
  EXPECT_NE(io_message().find("warp"), std::string::npos) << io_message();
  write(R"({"format": "longshot-calibration", "version": 1, "mode": "dynamicrad", "regimes": {"fast": {"params": {"decay": "x"}}}})");
  EXPECT_NE(io_message().find("not a number"), std::string::npos) << io_message();
  std::filesystem::remove(path);
  EXPECT_NE(io_message().find("does not exist"), std::string::npos) << io_message();
}

// The table goes through a temporary renamed on success: a destination that cannot be replaced
// (a folder) is refused and left as it was, and no hidden temporary stays behind.
TEST(CalibrationFile, TableWriteIsAtomic) {
  const auto dir = std::filesystem::temp_directory_path() / "longshot_calib_atomic";
  longshot::remove_tree(dir);
  std::filesystem::create_directories(dir / "table.json");
  CalibrationTable t;
  t.mode = "dynamicrad";
  EXPECT_THROW(write_table(t, (dir / "table.json").string()), IoError);
  EXPECT_TRUE(std::filesystem::is_directory(dir / "table.json"));
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++entries;
  EXPECT_EQ(entries, 1u);
  longshot::remove_tree(dir);
}

// Proxy (b) on the calibration side: captured Q/K/V score exactly as the same tensors do as the
// synthetic proxy, shapes are checked, and the table records the captures' sources.
#include <gtest/gtest.h>

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
  p.grid = attention::TokenGrid{12, 4, 8};
  p.heads = 2;
  p.head_dim = 32;
  p.block_size = 16;
  p.seed = 9;
  return p;
}

CapturedProxy captured_from_drift(const std::string& regime, double drift) {
  CapturedProxy c;
  c.regime = Regime{regime, 0.0};
  c.qkv = make_drift_qkv(small_proxy(), drift);
  c.grid = small_proxy().grid;
  c.source = "drift " + std::to_string(drift);
  return c;
}

}  // namespace

TEST(CapturedProxy, ScoresLikeTheSameTensorsAsSyntheticProxy) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  const ProxyTask synthetic(small_proxy(), Regime{"fast", 0.4});
  const ProxyTask captured(captured_from_drift("fast", 0.4), small_proxy().block_size);
  for (const auto& params : std::vector<attention::ParamValues>{{}, {{"decay", 0.5}, {"threshold_far", 1.0}}}) {
    const auto a = synthetic.score(o, params), b = captured.score(o, params);
    EXPECT_DOUBLE_EQ(a.nmse, b.nmse);
    EXPECT_DOUBLE_EQ(a.sparsity, b.sparsity);
  }
}

TEST(CapturedProxy, RefusesMismatchedShapes) {
  auto c = captured_from_drift("slow", 0.15);
  c.grid = attention::TokenGrid{11, 4, 8};
  EXPECT_THROW(ProxyTask(c, 16), ShapeError);
  c = captured_from_drift("slow", 0.15);
  c.qkv.v = c.qkv.v.narrow(3, 0, 16);
  EXPECT_THROW(ProxyTask(c, 16), ShapeError);
  c = captured_from_drift("slow", 0.15);
  EXPECT_THROW(ProxyTask(c, 0), ParameterError);
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  TpeOptions opts;
  opts.trials = 2;
  opts.startup_trials = 2;
  const auto box = search_box("dynamicrad");
  EXPECT_THROW(calibrate::calibrate(o, std::vector<CapturedProxy>{}, 16, box, opts), ParameterError);
  EXPECT_THROW(calibrate::calibrate(o, {captured_from_drift("slow", 0.15), captured_from_drift("slow", 0.2)}, 16, box, opts),
               ParameterError);
}

TEST(CapturedProxy, TableSaysModelAndWhereEachRegimeCameFrom) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  TpeOptions opts;
  opts.trials = 4;
  opts.startup_trials = 4;
  const auto table = calibrate::calibrate(o, {captured_from_drift("static", 0.02), captured_from_drift("fast", 0.4)}, 16,
                                          search_box("dynamicrad"), opts);
  ASSERT_EQ(table.regimes.size(), 2u);
  const std::string path = (std::filesystem::temp_directory_path() / "longshot_captured_table.json").string();
  write_table(table, path);
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["proxy"]["kind"], "model");
  EXPECT_EQ(j["proxy"]["grid"], "12x4x8");
  EXPECT_EQ(j["regimes"]["static"]["source"], "drift 0.020000");
  EXPECT_EQ(j["regimes"]["fast"]["trace"].size(), 4u);
  const auto back = read_table(path);
  ASSERT_EQ(back.horizons.size(), 1u);
  EXPECT_EQ(back.horizons[0].regimes.size(), 2u);
}

// Prompts stacked along the heads (groups): each is scored with its own mask, and the figures are
// the means over prompts. dynamicrad builds its mask from the first score_heads heads, so scoring
// the stack as one (groups = 1) would give the second prompt the first one's mask.
TEST(CapturedProxy, EachStackedPromptIsScoredWithItsOwnMask) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  const attention::ParamValues params{{"decay", 0.5},           {"threshold_far", 4.0},  {"threshold_near", 4.0},
                                      {"col_density_threshold", 0.05}, {"mask_threshold", 0.4}};
  const auto slow = captured_from_drift("slow", 0.15), fast = captured_from_drift("fast", 0.4);
  const auto a = ProxyTask(slow, 16).score(o, params), b = ProxyTask(fast, 16).score(o, params);
  std::printf("slow %.4f fast %.4f\n", a.sparsity, b.sparsity);
  ASSERT_NE(a.sparsity, b.sparsity);  // the two prompts do get different masks
  CapturedProxy both = slow;
  both.qkv = attention::QKV{torch::cat({slow.qkv.q, fast.qkv.q}, 1), torch::cat({slow.qkv.k, fast.qkv.k}, 1),
                            torch::cat({slow.qkv.v, fast.qkv.v}, 1)};
  both.groups = 2;
  const auto g = ProxyTask(both, 16).score(o, params);
  EXPECT_NEAR(g.sparsity, 0.5 * (a.sparsity + b.sparsity), 1e-12);
  EXPECT_NEAR(g.nmse, 0.5 * (a.nmse + b.nmse), 1e-9);
  both.groups = 1;  // one mask from the first prompt's heads for both
  EXPECT_NEAR(ProxyTask(both, 16).score(o, params).sparsity, a.sparsity, 1e-12);
  both.groups = 3;  // 4 heads do not split into 3 prompts
  EXPECT_THROW(ProxyTask(both, 16), ShapeError);
}

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
  EXPECT_EQ(back.regimes.size(), 2u);
}

// Iso-sparsity calibration (`--min-sparsity`): a trial below the sparsity floor is refused, the
// search minimises error at sparsity >= the floor, a regime keeps the defaults when nothing beats
// them, the table records it, and the run is deterministic per seed. Small AR-drift grids: each
// case runs in a few seconds on one thread.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/calibrate/calibration.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::calibrate;

namespace {

// 24 frames of 4 × 8 tokens, block 16: dynamicrad's defaults keep no far-frame pair here, so they
// sit at the mode's sparsity floor (84.0 %: same, adjacent and first frames are always kept).
ProxySpec floor_proxy() {
  ProxySpec p;
  p.grid = attention::TokenGrid{24, 4, 8};
  p.heads = 2;
  p.head_dim = 64;
  p.block_size = 16;
  return p;
}

CalibrationTable run(const ObjectiveSpec& objective, const std::string& regimes, int trials, uint64_t seed = 0) {
  TpeOptions options;
  options.trials = trials;
  options.startup_trials = 6;
  options.seed = seed;
  ProxySpec proxy = floor_proxy();
  proxy.seed = seed;
  return calibrate::calibrate(objective, parse_regimes(regimes), proxy, search_box("dynamicrad"), options);
}

}  // namespace

TEST(SparsityFloor, ParsesDefaultsOrANumberAndRefusesTheRest) {
  ObjectiveSpec o;
  EXPECT_EQ(o.floor, SparsityFloor::None);  // DynamicRad's objective unless asked
  parse_sparsity_floor("defaults", o);
  EXPECT_EQ(o.floor, SparsityFloor::Defaults);
  parse_sparsity_floor("0.75", o);
  EXPECT_EQ(o.floor, SparsityFloor::Value);
  EXPECT_DOUBLE_EQ(o.min_sparsity, 0.75);
  for (const char* bad : {"1.5", "-0.1", "x", "0.5x", "", "default", "nan"}) {
    SCOPED_TRACE(bad);
    try {
      parse_sparsity_floor(bad, o);
      ADD_FAILURE() << "accepted";
    } catch (const ParameterError& e) {
      EXPECT_NE(std::string(e.what()).find("min-sparsity"), std::string::npos) << e.what();
    }
  }
}

TEST(SparsityFloor, ATrialBelowTheFloorIsRefusedAndRankedByItsShortfall) {
  ObjectiveSpec o;
  o.target_sparsity = 0.7;
  const auto below = objective_loss(o, 0.01, 0.79, 0.80);
  EXPECT_TRUE(below.refused);
  EXPECT_NEAR(below.loss, kRefusedLoss + 10000.0 * 0.01, 1e-6);
  const auto further = objective_loss(o, 0.0, 0.70, 0.80);  // no error, but further below
  EXPECT_GT(further.loss, below.loss);
  // At the floor: the ordinary objective (the target is below it, so no penalty).
  const auto at = objective_loss(o, 0.02, 0.80, 0.80);
  EXPECT_FALSE(at.refused);
  EXPECT_NEAR(at.loss, 1000.0 * 0.02, 1e-9);
  // Every refused trial ranks below every feasible one, even a useless feasible one.
  EXPECT_LT(objective_loss(o, 50.0, 0.95, 0.80).loss, below.loss);
  // No floor: DynamicRad's soft penalty only, a sparser-than-anything point is never refused.
  const auto none = objective_loss(o, 0.01, 0.5, -1.0);
  EXPECT_FALSE(none.refused);
  EXPECT_NEAR(none.loss, 1000.0 * 0.01 + 10000.0 * 0.2, 1e-6);
}

// A floor below the defaults' sparsity (0.80 < 84.0 %) leaves room: the search must find a lower
// error than the defaults without any accepted mask going under 0.80, and the same seed must give
// the same trace.
TEST(SparsityFloor, MinimisesErrorAboveAFixedFloorDeterministically) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  o.target_sparsity = 0.0;  // only the floor constrains the sparsity
  parse_sparsity_floor("0.80", o);
  const auto a = run(o, "fast", 14);
  ASSERT_EQ(a.regimes.size(), 1u);
  const auto& r = a.regimes[0];
  EXPECT_DOUBLE_EQ(r.floor, 0.80);
  int refused = 0;
  for (const auto& t : r.search.trace) {
    const bool below = t.outcome.metrics.at("sparsity") < 0.80 - 1e-12;
    EXPECT_EQ(t.outcome.metrics.at("refused") != 0.0, below) << "trial " << t.index;
    if (below) EXPECT_GE(t.outcome.loss, kRefusedLoss);
    refused += below;
  }
  std::printf("fast, floor 0.80: best nmse %.5f sparsity %.4f (defaults %.5f, %.4f), %d of %zu refused\n",
              r.best.nmse, r.best.sparsity, r.defaults.nmse, r.defaults.sparsity, refused, r.search.trace.size());
  EXPECT_GT(refused, 0);  // the box does reach below the floor: the refusal was exercised
  EXPECT_FALSE(r.kept_defaults);
  EXPECT_GE(r.best.sparsity, 0.80 - 1e-12);
  EXPECT_LT(r.best.nmse, r.defaults.nmse);
  EXPECT_NEAR(r.best.loss, 1000.0 * r.best.nmse, 1e-9);

  const auto b = run(o, "fast", 14);
  ASSERT_EQ(b.regimes[0].search.trace.size(), r.search.trace.size());
  for (size_t i = 0; i < r.search.trace.size(); ++i) {
    EXPECT_EQ(b.regimes[0].search.trace[i].point, r.search.trace[i].point) << "trial " << i;
    EXPECT_EQ(b.regimes[0].search.trace[i].outcome.loss, r.search.trace[i].outcome.loss) << "trial " << i;
  }
}

// Floor = the defaults' own sparsity. Here they sit at the mode's floor, so every mask that meets
// it is the defaults' mask: nothing can beat them, and the regime must keep their parameters (not
// some other point that ties). The table says so.
TEST(SparsityFloor, AtTheDefaultsFloorARegimeKeepsTheDefaultsWhenNothingBeatsThem) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  o.target_sparsity = 0.7;
  parse_sparsity_floor("defaults", o);
  const auto t = run(o, "slow", 8);
  const auto& r = t.regimes.at(0);
  EXPECT_DOUBLE_EQ(r.floor, r.defaults.sparsity);
  EXPECT_NEAR(r.defaults.sparsity, 1.0 - (4.0 * 24 - 4) / (24.0 * 24), 1e-9);  // the mode's floor
  EXPECT_TRUE(r.kept_defaults);
  EXPECT_EQ(r.params, r.defaults.params);
  EXPECT_DOUBLE_EQ(r.best.nmse, r.defaults.nmse);
  for (const auto& tr : r.search.trace)  // feasible trials all tie with the defaults' error
    if (tr.outcome.metrics.at("refused") == 0.0) EXPECT_NEAR(tr.outcome.metrics.at("nmse"), r.defaults.nmse, 1e-12);

  const std::string path = (std::filesystem::temp_directory_path() / "longshot_calib_floor.json").string();
  write_table(t, path);
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["objective"]["min_sparsity"], "defaults");
  const auto& slow = j["regimes"]["slow"];
  EXPECT_EQ(slow["kept_defaults"], true);
  EXPECT_EQ(slow["best_trial"], -1);
  EXPECT_DOUBLE_EQ(slow["min_sparsity"].get<double>(), r.floor);
  EXPECT_TRUE(slow["trace"][0].contains("refused"));
  EXPECT_EQ(read_table(path).horizons.at(0).regimes.at("slow"), r.defaults.params);
  std::filesystem::remove(path);
}

TEST(SparsityFloor, ATableWithoutAFloorSaysNothingOfIt) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  const auto t = run(o, "static", 2);
  EXPECT_LT(t.regimes.at(0).floor, 0.0);
  EXPECT_FALSE(t.regimes.at(0).kept_defaults);
  const std::string path = (std::filesystem::temp_directory_path() / "longshot_calib_nofloor.json").string();
  write_table(t, path);
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  EXPECT_FALSE(j["objective"].contains("min_sparsity"));
  EXPECT_FALSE(j["regimes"]["static"].contains("kept_defaults"));
  EXPECT_FALSE(j["regimes"]["static"]["trace"][0].contains("refused"));
  std::filesystem::remove(path);
}

// --schedule-steps: the floor compares S-step generations' mean sparsity. One dense step fewer
// (11 of 20 instead of dynamicrad's 12) leaves 9 sparse steps instead of 8, so the masks may go down
// to 8/9 of the defaults' sparsity; the search must use that room (lower error than the defaults,
// sparser than the rescaled floor, less sparse than the defaults' mask).
TEST(SparsityFloor, ScheduleStepsRescaleTheDefaultsFloorByTheSparseSteps) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  o.target_sparsity = 0.0;
  o.fixed["dense_steps"] = 11;
  o.schedule_steps = 20;
  parse_sparsity_floor("defaults", o);
  const auto t = run(o, "fast", 14);
  const auto& r = t.regimes.at(0);
  const double mode_floor = 1.0 - (4.0 * 24 - 4) / (24.0 * 24);
  EXPECT_NEAR(r.defaults.sparsity, mode_floor, 1e-9);
  EXPECT_NEAR(r.floor, mode_floor * 8.0 / 9.0, 1e-12);
  std::printf("fast, floor %.4f over 20 steps: best nmse %.5f sparsity %.4f (defaults %.5f, %.4f)\n", r.floor,
              r.best.nmse, r.best.sparsity, r.defaults.nmse, r.defaults.sparsity);
  EXPECT_FALSE(r.kept_defaults);
  EXPECT_GE(r.best.sparsity, r.floor - 1e-12);
  EXPECT_LT(r.best.sparsity, r.defaults.sparsity);
  EXPECT_LT(r.best.nmse, r.defaults.nmse);
  EXPECT_EQ(r.params.at("dense_steps"), 11.0);  // the table runs the schedule the floor assumed

  const std::string path = (std::filesystem::temp_directory_path() / "longshot_calib_sched.json").string();
  write_table(t, path);
  std::ifstream in(path);
  EXPECT_EQ(nlohmann::json::parse(in)["objective"]["schedule_steps"], 20);
  std::filesystem::remove(path);
}

TEST(SparsityFloor, ScheduleStepsRefuseWhatCannotWork) {
  auto refusal = [](ObjectiveSpec o) {
    o.mode = "dynamicrad";
    try {
      run(o, "fast", 2);
    } catch (const ParameterError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ObjectiveSpec o;
  o.schedule_steps = 20;
  EXPECT_NE(refusal(o).find("schedule-steps"), std::string::npos) << refusal(o);  // no floor
  parse_sparsity_floor("0.8", o);
  EXPECT_NE(refusal(o).find("schedule-steps"), std::string::npos) << refusal(o);  // a fixed floor
  parse_sparsity_floor("defaults", o);
  o.schedule_steps = 12;  // dynamicrad's 12 dense steps: no sparse step left
  EXPECT_NE(refusal(o).find("no sparse step"), std::string::npos) << refusal(o);
  // More dense steps than the default: the floor (84 % · 8/7 = 96 %) is above anything the mode
  // can build, the defaults with 13 dense steps do not meet it either: a clear error, not a table.
  o.schedule_steps = 20;
  o.fixed["dense_steps"] = 13;
  EXPECT_NE(refusal(o).find("no trial reached the sparsity floor"), std::string::npos) << refusal(o);
}

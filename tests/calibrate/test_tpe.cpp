// The TPE optimiser on synthetic objectives with known optima, its determinism and its refusals.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "engine/calibrate/tpe.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::calibrate;

namespace {

Outcome shifted_quadratic(const Point& p) {
  const double x = p.at("x") - 1.3, y = p.at("y") + 0.7;
  return {x * x + y * y, {}};
}

// Branin–Hoo: three global minima of 0.397887 in [-5, 10] × [0, 15].
Outcome branin(const Point& p) {
  const double x = p.at("x"), y = p.at("y");
  const double pi = 3.14159265358979323846;
  const double b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
  const double f = std::pow(y - b * x * x + c * x - 6, 2) + 10 * (1 - t) * std::cos(x) + 10;
  return {f, {}};
}

double best_random(const SearchBox& box, const Objective& f, int trials, uint64_t seed) {
  TpeOptions o;
  o.trials = trials;
  o.startup_trials = trials;  // never leaves the uniform phase: plain random search
  o.seed = seed;
  return minimize(box, f, o).best_trial().outcome.loss;
}

}  // namespace

TEST(Tpe, FindsShiftedQuadraticOptimumIn60Trials) {
  SearchBox box{{"x", -3, 3, false}, {"y", -3, 3, false}};
  TpeOptions o;
  o.trials = 60;
  for (uint64_t seed : {1u, 2u, 3u}) {
    o.seed = seed;
    const auto r = minimize(box, shifted_quadratic, o);
    ASSERT_EQ(r.trace.size(), 60u);
    const auto& b = r.best_trial();
    EXPECT_LT(b.outcome.loss, 0.05) << "seed " << seed;  // within ~0.22 of (1.3, -0.7) on a 6×6 box
    EXPECT_NEAR(b.point.at("x"), 1.3, 0.25);
    EXPECT_NEAR(b.point.at("y"), -0.7, 0.25);
  }
}

TEST(Tpe, FindsBraninMinimumIn80TrialsAndBeatsRandomSearch) {
  SearchBox box{{"x", -5, 10, false}, {"y", 0, 15, false}};
  TpeOptions o;
  o.trials = 80;
  double tpe_sum = 0, rnd_sum = 0;
  for (uint64_t seed : {1u, 2u, 3u, 4u}) {
    o.seed = seed;
    const double best = minimize(box, branin, o).best_trial().outcome.loss;
    EXPECT_LT(best, 0.397887 + 0.25) << "seed " << seed;
    tpe_sum += best;
    rnd_sum += best_random(box, branin, 80, seed);
  }
  EXPECT_LT(tpe_sum, rnd_sum);  // the model must earn its keep over uniform sampling
}

TEST(Tpe, IntegerDimensionsHitTheWholeOptimum) {
  SearchBox box{{"n", 0, 20, true}, {"x", 0, 1, false}};
  TpeOptions o;
  o.trials = 50;
  o.seed = 7;
  const auto r = minimize(box, [](const Point& p) {
    return Outcome{std::pow(p.at("n") - 7, 2) + std::pow(p.at("x") - 0.5, 2), {}};
  }, o);
  for (const auto& t : r.trace) EXPECT_EQ(t.point.at("n"), std::round(t.point.at("n")));
  EXPECT_EQ(r.best_trial().point.at("n"), 7);
}

TEST(Tpe, SameSeedSameTraceOtherSeedOtherTrace) {
  SearchBox box{{"x", -5, 10, false}, {"y", 0, 15, false}, {"k", 1, 9, true}};
  TpeOptions o;
  o.trials = 30;
  o.seed = 42;
  auto f = [](const Point& p) { return Outcome{branin(p).loss + p.at("k"), {}}; };
  const auto a = minimize(box, f, o), b = minimize(box, f, o);
  ASSERT_EQ(a.trace.size(), b.trace.size());
  for (size_t i = 0; i < a.trace.size(); ++i) {
    EXPECT_EQ(a.trace[i].point, b.trace[i].point) << "trial " << i;
    EXPECT_EQ(a.trace[i].outcome.loss, b.trace[i].outcome.loss);
  }
  o.seed = 43;
  const auto c = minimize(box, f, o);
  EXPECT_NE(a.trace[0].point, c.trace[0].point);
  EXPECT_NE(a.trace.back().point, c.trace.back().point);
}

TEST(Tpe, StaysInsideTheBox) {
  SearchBox box{{"x", 2, 2.5, false}, {"y", -1, 0, false}};
  TpeOptions o;
  o.trials = 40;
  const auto r = minimize(box, [](const Point& p) { return Outcome{-p.at("x") - p.at("y"), {}}; }, o);
  for (const auto& t : r.trace) {
    EXPECT_GE(t.point.at("x"), 2);
    EXPECT_LE(t.point.at("x"), 2.5);
    EXPECT_GE(t.point.at("y"), -1);
    EXPECT_LE(t.point.at("y"), 0);
  }
  EXPECT_GT(r.best_trial().point.at("x"), 2.4);  // the optimum sits in the corner (2.5, 0)
}

TEST(Tpe, TimeBudgetStopsEarly) {
  SearchBox box{{"x", 0, 1, false}};
  TpeOptions o;
  o.trials = 1000;
  o.budget_s = 0.05;
  const auto r = minimize(box, [](const Point& p) {
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(5)) {
    }
    return Outcome{p.at("x"), {}};
  }, o);
  EXPECT_TRUE(r.stopped_by_budget);
  EXPECT_GE(r.trace.size(), 1u);
  EXPECT_LT(r.trace.size(), 100u);
}

TEST(Tpe, RefusesBadInput) {
  TpeOptions o;
  EXPECT_THROW(TpeOptimizer({}, o), ParameterError);
  EXPECT_THROW(TpeOptimizer({{"x", 1, 1, false}}, o), ParameterError);
  EXPECT_THROW(TpeOptimizer({{"x", 0, NAN, false}}, o), ParameterError);
  EXPECT_THROW(TpeOptimizer({{"x", 0, 1, false}, {"x", 0, 2, false}}, o), ParameterError);
  EXPECT_THROW(TpeOptimizer({{"n", 0.2, 0.8, true}}, o), ParameterError);
  o.trials = 0;
  EXPECT_THROW(TpeOptimizer({{"x", 0, 1, false}}, o), ParameterError);
  try {
    TpeOptimizer({}, TpeOptions{});
    FAIL();
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
  }
  // A non-finite objective stops the search with an error naming the trial, never a silent skip.
  SearchBox box{{"x", 0, 1, false}};
  TpeOptions ok;
  ok.trials = 20;
  int calls = 0;
  try {
    minimize(box, [&](const Point& p) { return Outcome{++calls == 5 ? NAN : p.at("x"), {}}; }, ok);
    FAIL() << "no error for a NaN loss";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("trial 4"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  EXPECT_EQ(calls, 5);
  TpeOptimizer opt(box, ok);
  EXPECT_THROW(opt.tell({{"x", 0.5}}, INFINITY), Error);
  EXPECT_THROW(opt.tell({{"y", 0.5}}, 1.0), ParameterError);
}

// Calibration room: a small, seeded Bayesian optimiser (the Tree-structured Parzen Estimator, the
// method DynamicRad's BO used through Optuna) over a box of continuous / integer parameters.
// Knows nothing of attention, models or files: it asks for points and is told their losses.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace longshot::calibrate {

using Point = std::map<std::string, double>;

// One searched parameter: values in [lo, hi]; integer ones are rounded to whole numbers.
struct SearchDim {
  std::string name;
  double lo = 0.0;
  double hi = 1.0;
  bool integer = false;
};
using SearchBox = std::vector<SearchDim>;

// Throws ParameterError naming the box when it is empty, or the dimension whose name is empty or
// repeated, whose bounds are not finite or not lo < hi (an integer one must hold a whole number).
void validate_box(const SearchBox& box);

struct TpeOptions {
  int trials = 30;
  int startup_trials = 10;  // uniform random points before the model is used (Optuna's default)
  double gamma = 0.25;      // share of the observations that form the "good" density l(x)
  int candidates = 24;      // draws from l(x) scored by l(x)/g(x) per suggestion (Optuna's default)
  uint64_t seed = 0;
  double budget_s = 0.0;    // wall-clock budget for minimize(); 0 = none (trials only)
};

// What the objective returns for one point: the loss to minimise plus named side figures
// (error, sparsity, ...) that the trace records.
struct Outcome {
  double loss = 0.0;
  std::map<std::string, double> metrics;
};

struct Trial {
  int index = 0;
  Point point;
  Outcome outcome;
};

struct SearchResult {
  std::vector<Trial> trace;  // every trial in the order run
  int best = -1;             // index into trace of the lowest loss (first one on ties)
  double seconds = 0.0;
  bool stopped_by_budget = false;
  const Trial& best_trial() const { return trace.at(static_cast<size_t>(best)); }
};

// Ask/tell TPE. Deterministic: the same box, options and told losses give the same points on every
// platform (own mt19937_64-based uniform and Box–Muller normal draws, no std distributions).
class TpeOptimizer {
 public:
  TpeOptimizer(SearchBox box, TpeOptions options);  // validates both (ParameterError)
  Point ask();
  // Throws Error when `loss` is not finite (a NaN would poison every later density).
  void tell(const Point& point, double loss);
  const SearchBox& box() const { return box_; }
  int told() const { return static_cast<int>(losses_.size()); }

 private:
  double uniform();
  double normal();
  std::vector<double> to_unit(const Point& p) const;
  Point from_unit(const std::vector<double>& u) const;

  SearchBox box_;
  TpeOptions options_;
  std::mt19937_64 rng_;  // its output sequence is fixed by the standard
  std::vector<std::vector<double>> xs_;  // told points in unit coordinates
  std::vector<double> losses_;
};

using Objective = std::function<Outcome(const Point&)>;
// trial index (0-based, just finished), total trials, the trial, the best so far.
using Progress = std::function<void(int, int, const Trial&, const Trial&)>;

// Runs options.trials trials (fewer when options.budget_s runs out; at least one). Throws Error
// naming the trial and its point when the objective returns a non-finite loss.
SearchResult minimize(const SearchBox& box, const Objective& objective, const TpeOptions& options,
                      const Progress& progress = nullptr);

}  // namespace longshot::calibrate

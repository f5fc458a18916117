// TPE (see tpe.h). In unit coordinates u ∈ [0,1] per dimension, after the startup trials the told
// points are split by loss into the best ⌈γ·n⌉ (good) and the rest (bad); each set gives a
// per-dimension Parzen density, a mixture of normals truncated to [0,1] centred on its points plus
// one wide prior component N(0.5, 1). Candidates are drawn from the good density and the one
// maximising Σ_d log l_d(u_d) − log g_d(u_d) is asked next (Bergstra et al. 2011).
#include "engine/calibrate/tpe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

#include "engine/common/error.h"

namespace longshot::calibrate {
namespace {

constexpr double kPi = 3.14159265358979323846;

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// A 1-D mixture of equally weighted normals truncated to [0, 1].
struct Parzen {
  std::vector<double> mu, sigma;

  static Parzen fit(std::vector<double> xs) {
    Parzen p;
    std::sort(xs.begin(), xs.end());
    const size_t n = xs.size();
    // Bandwidth: the larger gap to a neighbour (the box edges count as neighbours), clipped below
    // by 1/min(100, n+1) so a tight cluster does not collapse to a spike and above by 1.
    const double min_sigma = 1.0 / std::min(100.0, double(n) + 1.0);
    for (size_t i = 0; i < n; ++i) {
      const double left = xs[i] - (i == 0 ? 0.0 : xs[i - 1]);
      const double right = (i + 1 == n ? 1.0 : xs[i + 1]) - xs[i];
      p.mu.push_back(xs[i]);
      p.sigma.push_back(std::clamp(std::max(left, right), min_sigma, 1.0));
    }
    // The prior: keeps the density positive over the whole box, so the ratio l/g stays finite.
    p.mu.push_back(0.5);
    p.sigma.push_back(1.0);
    return p;
  }

  double log_pdf(double x) const {
    double sum = 0.0;
    for (size_t i = 0; i < mu.size(); ++i) {
      const double z = (x - mu[i]) / sigma[i];
      const double mass = normal_cdf((1.0 - mu[i]) / sigma[i]) - normal_cdf(-mu[i] / sigma[i]);
      sum += std::exp(-0.5 * z * z) / (sigma[i] * std::sqrt(2.0 * kPi) * std::max(mass, 1e-12));
    }
    return std::log(std::max(sum / double(mu.size()), 1e-300));
  }
};

std::string point_text(const Point& p) {
  std::ostringstream os;
  for (const auto& [k, v] : p) os << (os.tellp() > 0 ? " " : "") << k << "=" << v;
  return os.str();
}

}  // namespace

void validate_box(const SearchBox& box) {
  if (box.empty()) throw ParameterError("search box", "is empty: nothing to optimise");
  std::set<std::string> seen;
  for (const auto& d : box) {
    if (d.name.empty()) throw ParameterError("search box", "a dimension has no name");
    if (!seen.insert(d.name).second) throw ParameterError(d.name, "appears twice in the search box");
    if (!std::isfinite(d.lo) || !std::isfinite(d.hi) || !(d.lo < d.hi))
      throw ParameterError(d.name, "search bounds must be finite with lo < hi, got [" + std::to_string(d.lo) + ", " +
                                       std::to_string(d.hi) + "]");
    if (d.integer && std::ceil(d.lo) > std::floor(d.hi))
      throw ParameterError(d.name, "integer search bounds hold no whole number");
  }
}

TpeOptimizer::TpeOptimizer(SearchBox box, TpeOptions options)
    : box_(std::move(box)), options_(options), rng_(options.seed) {
  validate_box(box_);
  if (options_.trials < 1) throw ParameterError("trials", "must be at least 1, got " + std::to_string(options_.trials));
  if (options_.startup_trials < 1)
    throw ParameterError("startup_trials", "must be at least 1, got " + std::to_string(options_.startup_trials));
  if (!(options_.gamma > 0.0 && options_.gamma < 1.0))
    throw ParameterError("gamma", "must lie in (0, 1), got " + std::to_string(options_.gamma));
  if (options_.candidates < 1)
    throw ParameterError("candidates", "must be at least 1, got " + std::to_string(options_.candidates));
  if (!(options_.budget_s >= 0.0) || !std::isfinite(options_.budget_s))
    throw ParameterError("budget_s", "must be a finite number >= 0");
}

double TpeOptimizer::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

double TpeOptimizer::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

std::vector<double> TpeOptimizer::to_unit(const Point& p) const {
  std::vector<double> u;
  for (const auto& d : box_) {
    auto it = p.find(d.name);
    if (it == p.end()) throw ParameterError(d.name, "missing from the told point");
    u.push_back(std::clamp((it->second - d.lo) / (d.hi - d.lo), 0.0, 1.0));
  }
  return u;
}

Point TpeOptimizer::from_unit(const std::vector<double>& u) const {
  Point p;
  for (size_t i = 0; i < box_.size(); ++i) {
    const auto& d = box_[i];
    double v = d.lo + std::clamp(u[i], 0.0, 1.0) * (d.hi - d.lo);
    if (d.integer) v = std::clamp(std::round(v), std::ceil(d.lo), std::floor(d.hi));
    p[d.name] = v;
  }
  return p;
}

Point TpeOptimizer::ask() {
  const size_t dims = box_.size();
  const int n = told();
  if (n < options_.startup_trials) {
    std::vector<double> u(dims);
    for (auto& x : u) x = uniform();
    return from_unit(u);
  }
  // Split the told points: the ⌈γ·n⌉ lowest losses (ties by order told) are "good".
  std::vector<size_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return losses_[a] < losses_[b]; });
  const size_t n_good = std::max<size_t>(1, static_cast<size_t>(std::ceil(options_.gamma * n)));
  std::vector<Parzen> good(dims), bad(dims);
  for (size_t d = 0; d < dims; ++d) {
    std::vector<double> g, b;
    for (size_t r = 0; r < order.size(); ++r) (r < n_good ? g : b).push_back(xs_[order[r]][d]);
    good[d] = Parzen::fit(g);
    bad[d] = Parzen::fit(b);
  }
  std::vector<double> best_u;
  double best_score = -INFINITY;
  for (int c = 0; c < options_.candidates; ++c) {
    std::vector<double> u(dims);
    double score = 0.0;
    for (size_t d = 0; d < dims; ++d) {
      const Parzen& l = good[d];
      const size_t k = std::min(l.mu.size() - 1, static_cast<size_t>(uniform() * double(l.mu.size())));
      // Truncated normal by rejection; the component's mass inside [0,1] is >= ~0.34 (σ <= 1, μ in
      // [0,1]), so 64 tries fail with probability < 1e-11 — then the centre is used.
      double x = l.mu[k];
      for (int t = 0; t < 64; ++t) {
        const double y = l.mu[k] + l.sigma[k] * normal();
        if (y >= 0.0 && y <= 1.0) {
          x = y;
          break;
        }
      }
      u[d] = x;
      score += l.log_pdf(x) - bad[d].log_pdf(x);
    }
    if (score > best_score) {
      best_score = score;
      best_u = u;
    }
  }
  return from_unit(best_u);
}

void TpeOptimizer::tell(const Point& point, double loss) {
  if (!std::isfinite(loss))
    throw Error("calibrate: the objective returned a non-finite loss (" + std::to_string(loss) + ") at " +
                point_text(point));
  xs_.push_back(to_unit(point));
  losses_.push_back(loss);
}

SearchResult minimize(const SearchBox& box, const Objective& objective, const TpeOptions& options,
                      const Progress& progress) {
  if (!objective) throw ParameterError("objective", "is empty");
  TpeOptimizer opt(box, options);
  SearchResult result;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (int i = 0; i < options.trials; ++i) {
    if (i > 0 && options.budget_s > 0.0 && elapsed() >= options.budget_s) {
      result.stopped_by_budget = true;
      break;
    }
    Trial trial;
    trial.index = i;
    trial.point = opt.ask();
    trial.outcome = objective(trial.point);
    if (!std::isfinite(trial.outcome.loss))
      throw Error("calibrate: trial " + std::to_string(i) + " returned a non-finite loss (" +
                  std::to_string(trial.outcome.loss) + ") at " + point_text(trial.point));
    opt.tell(trial.point, trial.outcome.loss);
    result.trace.push_back(trial);
    if (result.best < 0 || trial.outcome.loss < result.trace[static_cast<size_t>(result.best)].outcome.loss)
      result.best = i;
    if (progress) progress(i, options.trials, result.trace.back(), result.best_trial());
  }
  result.seconds = elapsed();
  return result;
}

}  // namespace longshot::calibrate

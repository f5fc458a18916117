// Proxy task, objective, search box, per-regime calibration and the lookup table (calibration.h).
#include "engine/calibrate/calibration.h"

#include <chrono>
#include <cmath>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/attention/reference.h"
#include "engine/calibrate/json_file.h"
#include "engine/common/error.h"

namespace longshot::calibrate {

using attention::ParamValues;
using nlohmann::json;

namespace {

// The number all of `text` spells, as std::stod reads it ("nan" and "inf" included; nothing may
// follow it), else nothing: the callers' errors say what they expected.
std::optional<double> whole_number(const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// Parameters that set a schedule (which steps/layers run dense, refresh cadence, seeds) rather
// than the mask's shape: the proxy scores one sparse call, so it cannot tune them.
const std::set<std::string> kScheduleParams = {
    "seed",          "dense_steps",   "dense_layers", "warmup_steps",     "refresh_interval", "ratio_step",
    "select",        "score_heads",   "tile_size",    "reference_frames", "keyframe_interval", "rotate",
    "expand_window", "layer_shift",   "qblock_shift", "rotation_period",  "sink_frames",      "min_keep_ratio"};

const attention::ParamSpec& spec_of(const attention::PolicyInfo& info, const std::string& name) {
  for (const auto& p : info.params)
    if (p.name == name) return p;
  std::string known;
  for (const auto& p : info.params) known += (known.empty() ? "" : ", ") + p.name;
  throw ParameterError(name, "mode '" + info.name + "' has no such parameter (known: " + known + ")");
}

SearchDim checked_dim(const attention::PolicyInfo& info, const std::string& name, double lo, double hi) {
  const auto& spec = spec_of(info, name);
  const bool lo_ok = spec.min_inclusive ? lo >= spec.min : lo > spec.min;
  const bool hi_ok = spec.max_inclusive ? hi <= spec.max : hi < spec.max;
  if (!lo_ok || !hi_ok) {
    std::ostringstream os;
    os << "search bounds [" << lo << ", " << hi << "] leave the parameter's range " << (spec.min_inclusive ? "[" : "(")
       << spec.min << ", " << spec.max << (spec.max_inclusive ? "]" : ")");
    throw ParameterError(name, os.str());
  }
  return SearchDim{name, lo, hi, spec.integer};
}

SearchBox default_box(const attention::PolicyInfo& info, const ParamValues& fixed) {
  SearchBox box;
  if (info.name == "dynamicrad") {
    // DynamicRad's BO space (run_bo_pipeline.py:98-111), widened so it holds our defaults (decay
    // 0.2, long 2, thresholds 3 / 4, the paper's settings) and without long = 0 (a division by zero).
    auto sel = fixed.find("select");
    const bool ratio = sel != fixed.end() && sel->second < 1.5;
    box.push_back(checked_dim(info, "decay", 0.05, 3.0));
    box.push_back(checked_dim(info, "long_factor", 0.5, 4.0));
    box.push_back(checked_dim(info, "mask_threshold", 0.4, 0.9));
    box.push_back(checked_dim(info, "col_density_threshold", 0.1, 0.6));
    if (ratio) {
      box.push_back(checked_dim(info, "ratio_near", 0.2, 1.0));
      box.push_back(checked_dim(info, "ratio_far", 0.1, 1.0));
    } else {
      box.push_back(checked_dim(info, "threshold_near", -2.0, 4.0));
      box.push_back(checked_dim(info, "threshold_far", 0.0, 6.0));
    }
    return box;
  }
  for (const auto& p : info.params) {
    if (p.integer || kScheduleParams.count(p.name) || fixed.count(p.name)) continue;
    if (!(p.max - p.min <= 100.0)) continue;  // unbounded in practice: needs explicit bounds
    double lo = p.min, hi = p.max;
    // Exclusive ends: step inside by 1 % of the range.
    if (!p.min_inclusive) lo += 0.01 * (hi - lo);
    if (!p.max_inclusive) hi -= 0.01 * (hi - lo);
    box.push_back(SearchDim{p.name, lo, hi, false});
  }
  return box;
}

}  // namespace

const std::vector<Regime>& builtin_regimes() {
  static const std::vector<Regime> regimes = {{"static", 0.02}, {"slow", 0.15}, {"fast", 0.40}};
  return regimes;
}

std::vector<Regime> parse_regimes(const std::string& comma_list) {
  std::vector<Regime> out;
  std::stringstream ss(comma_list);
  std::string name;
  std::set<std::string> seen;
  while (std::getline(ss, name, ',')) {
    if (name.empty()) throw ParameterError("regimes", "empty regime name in '" + comma_list + "'");
    const Regime* found = nullptr;
    for (const auto& r : builtin_regimes())
      if (r.name == name) found = &r;
    if (!found) throw ParameterError("regimes", "unknown regime '" + name + "' (known: static, slow, fast)");
    if (!seen.insert(name).second) throw ParameterError("regimes", "regime '" + name + "' given twice");
    out.push_back(*found);
  }
  if (out.empty()) throw ParameterError("regimes", "no regime given");
  return out;
}

attention::QKV make_drift_qkv(const ProxySpec& spec, double drift) {
  const auto& g = spec.grid;
  if (g.t <= 0 || g.h <= 0 || g.w <= 0) throw ParameterError("grid", "sizes must be positive, got " + g.to_string());
  if (spec.heads <= 0) throw ParameterError("heads", "must be positive, got " + std::to_string(spec.heads));
  if (spec.head_dim <= 0) throw ParameterError("head_dim", "must be positive, got " + std::to_string(spec.head_dim));
  if (!(drift > 0.0 && drift <= 1.0)) throw ParameterError("drift", "must lie in (0, 1], got " + std::to_string(drift));
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(spec.seed ^ 0x5bd1e9955bd1e995ULL);
  const int64_t H = spec.heads, D = spec.head_dim, P = g.frame_size();
  const double norm = std::sqrt(double(D));
  auto normalise = [&](const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12) * norm; };
  auto current = normalise(torch::randn({1, H, P, D}, gen, torch::kFloat32));
  std::vector<torch::Tensor> frames;
  for (int64_t t = 0; t < g.t; ++t) {
    current = current * (1.0 - drift) + torch::randn({1, H, P, D}, gen, torch::kFloat32) * drift;
    frames.push_back(normalise(current));
  }
  auto x = torch::cat(frames, 2).contiguous();  // raster: frame-major, then rows, then columns
  return attention::QKV{x, x, x};
}

ProxyTask::ProxyTask(const ProxySpec& spec, const Regime& regime) : regime_(regime) {
  if (spec.block_size <= 0) throw ParameterError("block", "must be positive, got " + std::to_string(spec.block_size));
  inputs_.resize(1);
  inputs_[0].grid = spec.grid;
  inputs_[0].raster = make_drift_qkv(spec, regime.drift);
  prepare(spec.block_size);
}

ProxyTask::ProxyTask(const CapturedProxy& captured, int64_t block_size) : regime_(captured.regime) {
  if (block_size <= 0) throw ParameterError("block", "must be positive, got " + std::to_string(block_size));
  const auto& q = captured.qkv.q;
  for (const auto* t : {&captured.qkv.q, &captured.qkv.k, &captured.qkv.v}) {
    if (!t->defined() || t->dim() != 4 || t->size(0) != 1 || t->sizes() != q.sizes())
      throw ShapeError("captured proxy '" + captured.regime.name + "': q, k, v must be [1, H, N, D] of one shape");
  }
  if (q.size(2) != captured.grid.size())
    throw ShapeError("captured proxy '" + captured.regime.name + "': " + std::to_string(q.size(2)) + " tokens, grid " +
                     captured.grid.to_string() + " holds " + std::to_string(captured.grid.size()));
  if (captured.qkv.k.device() != q.device() || captured.qkv.v.device() != q.device())
    throw ShapeError("captured proxy '" + captured.regime.name + "': q, k, v must be on one device");
  const int64_t G = captured.groups, H = q.size(1);
  if (G < 1 || H % G != 0)
    throw ShapeError("captured proxy '" + captured.regime.name + "': " + std::to_string(H) + " heads do not split into " +
                     std::to_string(G) + " groups");
  auto f32 = [&](const torch::Tensor& t, int64_t g) {
    // fp32 on the capture's device: a CUDA capture is scored on the GPU (16k-token proxies).
    return t.narrow(1, g * (H / G), H / G).to(torch::kFloat).contiguous();
  };
  inputs_.resize(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) {
    inputs_[g].grid = captured.grid;
    inputs_[g].raster =
        attention::QKV{f32(captured.qkv.q, g), f32(captured.qkv.k, g), f32(captured.qkv.v, g)};
  }
  prepare(block_size);
}

void ProxyTask::prepare(int64_t block_size) {
  setup_.block_size = block_size;
  // The last of many steps and layers: past every mode's dense warm-up (dynamicrad: 12 steps, 1 layer).
  setup_.num_steps = 1000;
  setup_.step = 999;
  setup_.num_layers = 1000;
  setup_.layer = 999;
  setup_.recall_query_stride = 16;  // recall is not part of the loss: keep its cost small
  nmse_scale_.clear();
  for (auto& in : inputs_) {
    in.dense_out = attention::dense_attention_reference(in.raster.q, in.raster.k, in.raster.v);
    const auto d = in.dense_out.to(torch::kFloat64);
    const double mean_sq = d.pow(2).mean().item<double>();
    const double var = d.var(/*unbiased=*/false).item<double>();
    nmse_scale_.push_back(mean_sq / std::max(var, 1e-12));
  }
}

void parse_sparsity_floor(const std::string& text, ObjectiveSpec& objective) {
  if (text == "defaults") {
    objective.floor = SparsityFloor::Defaults;
    objective.floor_margin = 0.0;
    return;
  }
  // "defaults+X": the proxy's floor is a sample of a few prompts; held-out prompts keep a few more
  // blocks (docs/calibration.md), so a margin X in mask sparsity keeps the generations above it.
  if (text.rfind("defaults+", 0) == 0) {
    const auto parsed = whole_number(text.substr(9));
    if (!parsed)
      throw ParameterError("min-sparsity", "expected 'defaults+X' with X a number in [0, 0.5], got '" + text + "'");
    const double margin = *parsed;
    if (!(margin >= 0.0 && margin <= 0.5))
      throw ParameterError("min-sparsity", "the margin of 'defaults+X' must lie in [0, 0.5], got '" + text + "'");
    objective.floor = SparsityFloor::Defaults;
    objective.floor_margin = margin;
    return;
  }
  const auto parsed = whole_number(text);
  if (!parsed) throw ParameterError("min-sparsity", "expected 'defaults' or a number in [0, 1], got '" + text + "'");
  const double value = *parsed;
  if (!(value >= 0.0 && value <= 1.0))
    throw ParameterError("min-sparsity", "must lie in [0, 1] (or be 'defaults'), got '" + text + "'");
  objective.floor = SparsityFloor::Value;
  objective.min_sparsity = value;
}

ProxyScore objective_loss(const ObjectiveSpec& objective, double nmse, double sparsity, double floor) {
  ProxyScore s;
  s.nmse = nmse;
  s.sparsity = sparsity;
  // Token sparsity is a ratio of whole counts: the same mask gives the same double, so the
  // defaults' own mask meets a floor set at their sparsity exactly; 1e-12 only absorbs rounding.
  s.refused = floor >= 0.0 && sparsity < floor - 1e-12;
  s.loss = s.refused ? kRefusedLoss + objective.penalty_weight * (floor - sparsity)
                     : objective.error_weight * nmse +
                           objective.penalty_weight * std::max(0.0, objective.target_sparsity - sparsity);
  return s;
}

ProxyScore ProxyTask::score(const ObjectiveSpec& objective, const ParamValues& params, double floor) const {
  ParamValues overrides = objective.fixed;
  for (const auto& [k, v] : params) overrides[k] = v;
  double nmse = 0.0, sparsity = 0.0;
  ParamValues resolved;
  for (size_t g = 0; g < inputs_.size(); ++g) {
    const auto ev = attention::evaluate_mode(objective.mode, overrides, inputs_[g], setup_);
    nmse += ev.rel_l2 * ev.rel_l2 * nmse_scale_[g];
    sparsity += ev.token_sparsity;
    resolved = ev.params;
  }
  const double n = static_cast<double>(inputs_.size());
  ProxyScore s = objective_loss(objective, nmse / n, sparsity / n, floor);
  s.params = resolved;
  return s;
}

SearchBox search_box(const std::string& mode, const std::vector<std::string>& bounds, const ParamValues& fixed) {
  const auto& info = attention::find_policy(mode);
  SearchBox box;
  if (bounds.empty()) {
    box = default_box(info, fixed);
  } else {
    const SearchBox defaults = default_box(info, fixed);
    for (const auto& text : bounds) {
      const auto eq = text.find('=');
      const std::string name = text.substr(0, eq);
      if (eq == std::string::npos) {
        const SearchDim* d = nullptr;
        for (const auto& x : defaults)
          if (x.name == name) d = &x;
        if (!d) {
          const auto& spec = spec_of(info, name);
          if (!(spec.max - spec.min <= 1000.0))
            throw ParameterError(name, "its range is too wide to search whole: give bounds, " + name + "=lo:hi");
          box.push_back(checked_dim(info, name, spec.min_inclusive ? spec.min : spec.min + 1e-3 * (spec.max - spec.min),
                                    spec.max_inclusive ? spec.max : spec.max - 1e-3 * (spec.max - spec.min)));
        } else {
          box.push_back(*d);
        }
        continue;
      }
      const std::string range = text.substr(eq + 1);
      const auto colon = range.find(':');
      if (colon == std::string::npos) throw ParameterError(name, "expected name=lo:hi, got '" + text + "'");
      const auto lo = whole_number(range.substr(0, colon)), hi = whole_number(range.substr(colon + 1));
      if (!lo || !hi) throw ParameterError(name, "expected name=lo:hi with numbers, got '" + text + "'");
      box.push_back(checked_dim(info, name, *lo, *hi));
    }
  }
  if (box.empty()) throw ParameterError("search box", "mode '" + mode + "' has no parameter to search by default; name some");
  for (const auto& d : box)
    if (fixed.count(d.name)) throw ParameterError(d.name, "is both searched and fixed (--param)");
  validate_box(box);
  return box;
}

namespace {

// The factor on the defaults' sparsity that makes the floor compare S-step generations (1 without
// schedule_steps): (S − d₀) / (S − d), d₀ the mode's default dense_steps, d the one the table runs.
double schedule_scale(const ObjectiveSpec& o) {
  if (o.schedule_steps == 0) return 1.0;
  if (o.schedule_steps < 0) throw ParameterError("schedule-steps", "must be positive");
  if (o.floor != SparsityFloor::Defaults)
    throw ParameterError("schedule-steps", "goes only with --min-sparsity defaults (it rescales the defaults' sparsity)");
  const auto& info = attention::find_policy(o.mode);
  const ParamValues plain = attention::resolve_params(info, {}), used = attention::resolve_params(info, o.fixed);
  if (!plain.count("dense_steps"))
    throw ParameterError("schedule-steps", "mode '" + o.mode + "' has no dense_steps parameter to schedule");
  const double S = o.schedule_steps, d0 = plain.at("dense_steps"), d = used.at("dense_steps");
  if (!(d < S) || !(d0 < S))
    throw ParameterError("schedule-steps", "a " + std::to_string(o.schedule_steps) + "-step generation with dense_steps " +
                                               std::to_string(int(std::max(d, d0))) + " has no sparse step");
  return (S - d0) / (S - d);
}

// The search per regime on the tasks `task_of(r)` makes; the time budget is shared: each regime
// gets what is left divided by the regimes still to run.
void search_regimes(CalibrationTable& table, const std::vector<Regime>& regimes,
                    const std::function<ProxyTask(size_t)>& task_of, const CalibrationProgress& progress) {
  const auto& objective = table.objective;
  const auto& options = table.optimizer;
  if (!(objective.target_sparsity >= 0.0 && objective.target_sparsity <= 1.0))
    throw ParameterError("target-sparsity", "must lie in [0, 1]");
  if (objective.floor == SparsityFloor::Value && !(objective.min_sparsity >= 0.0 && objective.min_sparsity <= 1.0))
    throw ParameterError("min-sparsity", "must lie in [0, 1]");
  attention::resolve_params(attention::find_policy(objective.mode), objective.fixed);  // fail before any work
  validate_box(table.box);
  const double scale = schedule_scale(objective);
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t r = 0; r < regimes.size(); ++r) {
    const ProxyTask task = task_of(r);
    TpeOptions opts = options;
    if (options.budget_s > 0.0) {
      const double used = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      opts.budget_s = std::max(1e-3, (options.budget_s - used) / double(regimes.size() - r));
    }
    RegimeResult result;
    result.regime = regimes[r];
    const ProxyScore plain_defaults = task.score(objective, {});
    result.floor = objective.floor == SparsityFloor::Defaults ? plain_defaults.sparsity * scale + objective.floor_margin
                   : objective.floor == SparsityFloor::Value  ? objective.min_sparsity
                                                              : -1.0;
    result.defaults = task.score(objective, {}, result.floor);
    Objective fn = [&](const Point& p) {
      const ProxyScore s = task.score(objective, p, result.floor);
      return Outcome{s.loss, {{"nmse", s.nmse}, {"sparsity", s.sparsity}, {"refused", s.refused ? 1.0 : 0.0}}};
    };
    Progress prog;
    if (progress) prog = [&](int i, int n, const Trial& t, const Trial& b) { progress(regimes[r], i, n, t, b); };
    result.search = minimize(table.box, fn, opts, prog);
    result.best = task.score(objective, result.search.best_trial().point, result.floor);
    // Under a floor the defaults are the incumbent: a trial must beat them strictly to replace them
    // (a trial on the defaults' own mask ties and changes nothing). Without a floor the objective is
    // DynamicRad's and the search's best is kept, as before.
    if (result.floor >= 0.0 && !result.defaults.refused && !(result.best.loss < result.defaults.loss)) {
      result.best = result.defaults;
      result.kept_defaults = true;
    }
    if (result.best.refused) {
      std::ostringstream os;
      os << "regime '" << regimes[r].name << "': no trial reached the sparsity floor " << result.floor << " (best "
         << result.best.sparsity << " after " << result.search.trace.size()
         << " trials) and the defaults do not meet it either; lower the floor or widen the search";
      throw ParameterError("min-sparsity", os.str());
    }
    result.params = result.best.params;
    table.regimes.push_back(std::move(result));
  }
}

}  // namespace

CalibrationTable calibrate(const ObjectiveSpec& objective, const std::vector<Regime>& regimes, const ProxySpec& proxy,
                           const SearchBox& box, const TpeOptions& options, const CalibrationProgress& progress) {
  if (regimes.empty()) throw ParameterError("regimes", "no regime given");
  CalibrationTable table;
  table.mode = objective.mode;
  table.proxy = proxy;
  table.objective = objective;
  table.optimizer = options;
  table.box = box;
  search_regimes(table, regimes, [&](size_t r) { return ProxyTask(proxy, regimes[r]); }, progress);
  return table;
}

CalibrationTable calibrate(const ObjectiveSpec& objective, const std::vector<CapturedProxy>& proxies,
                           int64_t block_size, const SearchBox& box, const TpeOptions& options,
                           const CalibrationProgress& progress) {
  if (proxies.empty()) throw ParameterError("regimes", "no captured proxy given");
  std::vector<Regime> regimes;
  std::set<std::string> seen;
  CalibrationTable table;
  for (const auto& p : proxies) {
    if (!seen.insert(p.regime.name).second) throw ParameterError("regimes", "regime '" + p.regime.name + "' captured twice");
    regimes.push_back(p.regime);
    table.sources[p.regime.name] = p.source;
  }
  table.mode = objective.mode;
  table.proxy_kind = "model";
  table.proxy.grid = proxies[0].grid;
  table.proxy.heads = proxies[0].qkv.q.defined() ? proxies[0].qkv.q.size(1) : 0;
  table.proxy.head_dim = proxies[0].qkv.q.defined() ? proxies[0].qkv.q.size(3) : 0;
  table.proxy.block_size = block_size;
  table.objective = objective;
  table.optimizer = options;
  table.box = box;
  search_regimes(table, regimes, [&](size_t r) { return ProxyTask(proxies[r], block_size); }, progress);
  return table;
}

void write_table(const CalibrationTable& t, const std::string& path) {
  json j;
  j["format"] = kTableFormat;
  j["version"] = kRunTableVersion;
  j["mode"] = t.mode;
  j["proxy"] = {{"kind", t.proxy_kind},         {"grid", t.proxy.grid.to_string()}, {"heads", t.proxy.heads},
                {"head_dim", t.proxy.head_dim}, {"block", t.proxy.block_size},     {"seed", t.proxy.seed},
                {"sparsity", "token"}};
  j["objective"] = {{"target_sparsity", t.objective.target_sparsity},
                    {"error_weight", t.objective.error_weight},
                    {"penalty_weight", t.objective.penalty_weight},
                    {"fixed", t.objective.fixed}};
  if (t.objective.floor == SparsityFloor::Defaults) {
    j["objective"]["min_sparsity"] = "defaults";
    if (t.objective.floor_margin > 0.0) j["objective"]["min_sparsity_margin"] = t.objective.floor_margin;
  }
  else if (t.objective.floor == SparsityFloor::Value) j["objective"]["min_sparsity"] = t.objective.min_sparsity;
  if (t.objective.floor != SparsityFloor::None) j["objective"]["refused_loss"] = kRefusedLoss;
  if (t.objective.schedule_steps > 0) j["objective"]["schedule_steps"] = t.objective.schedule_steps;
  j["optimizer"] = {{"method", "tpe"},           {"trials", t.optimizer.trials},
                    {"startup_trials", t.optimizer.startup_trials}, {"gamma", t.optimizer.gamma},
                    {"candidates", t.optimizer.candidates},         {"seed", t.optimizer.seed},
                    {"budget_s", t.optimizer.budget_s}};
  json box = json::array();
  for (const auto& d : t.box) box.push_back({{"name", d.name}, {"lo", d.lo}, {"hi", d.hi}, {"integer", d.integer}});
  j["search"] = box;
  json regimes = json::object();
  for (const auto& r : t.regimes) {
    json trace = json::array();
    for (const auto& tr : r.search.trace) {
      json entry = {{"trial", tr.index},
                    {"params", tr.point},
                    {"loss", tr.outcome.loss},
                    {"nmse", tr.outcome.metrics.at("nmse")},
                    {"sparsity", tr.outcome.metrics.at("sparsity")}};
      if (r.floor >= 0.0) entry["refused"] = tr.outcome.metrics.at("refused") != 0.0;
      trace.push_back(entry);
    }
    regimes[r.regime.name] = {
        {"drift", r.regime.drift},
        {"source", t.sources.count(r.regime.name) ? t.sources.at(r.regime.name) : std::string("ar-drift")},
        {"params", r.params},
        {"nmse", r.best.nmse},
        {"sparsity", r.best.sparsity},
        {"loss", r.best.loss},
        {"best_trial", r.kept_defaults ? -1 : r.search.best},  // -1: no trial beat the defaults
        {"defaults", {{"params", r.defaults.params}, {"nmse", r.defaults.nmse}, {"sparsity", r.defaults.sparsity}, {"loss", r.defaults.loss}}},
        {"trials_run", r.search.trace.size()},
        {"seconds", r.search.seconds},
        {"stopped_by_budget", r.search.stopped_by_budget},
        {"trace", trace}};
    if (r.floor >= 0.0) {
      regimes[r.regime.name]["min_sparsity"] = r.floor;
      regimes[r.regime.name]["kept_defaults"] = r.kept_defaults;
    }
  }
  j["regimes"] = regimes;
  write_json_file(path, "calibration table", j, 2);
}

}  // namespace longshot::calibrate

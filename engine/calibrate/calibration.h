// Calibration room: tunes an attention mode's mask parameters per motion regime by Bayesian
// optimisation (tpe.h) on a proxy task — the attention reconstruction error against dense attention
// plus a penalty below a target sparsity (DynamicRad's offline BO). Knows the attention room's
// policies and CPU reference; knows no model, sampler or pipeline.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/attention/mask_eval.h"
#include "engine/attention/mask_policy.h"
#include "engine/calibrate/tpe.h"

namespace longshot::calibrate {

// ---- Proxy (a): DynamicRad's synthetic task. Every spatial position's feature does an
// autoregressive random walk over frames, x_t = (1 − drift)·x_{t−1} + drift·ε_t, each frame
// normalised to norm √D (a LayerNorm output), and Q = K = V = x. Low drift: a token stays like its
// past (static scene); high drift: it decorrelates within a few frames (fast motion).
struct Regime {
  std::string name;
  double drift = 0.0;
};
// static 0.02, slow 0.15, fast 0.40 (DynamicRad's low / mid / high, run_bo_pipeline.py).
const std::vector<Regime>& builtin_regimes();
// Throws ParameterError("regimes", ...) naming an unknown name; an empty list is refused too.
std::vector<Regime> parse_regimes(const std::string& comma_list);

struct ProxySpec {
  attention::TokenGrid grid{8, 8, 8};
  int64_t heads = 2;
  int64_t head_dim = 64;
  int64_t block_size = 32;
  uint64_t seed = 0;
};
// [1, H, N, D] fp32 raster order, q, k and v the same tensor. Throws ParameterError on bad sizes
// or a drift outside (0, 1].
attention::QKV make_drift_qkv(const ProxySpec& spec, double drift);

// ---- The objective: loss = error_weight · NMSE + penalty_weight · max(0, target − sparsity), with
// NMSE = mean((sparse − dense)²) / var(dense) and sparsity the mask's token sparsity.
// Iso-sparsity (`--min-sparsity`): a hard floor on the sparsity. A trial below it is refused: its
// loss is kRefusedLoss + penalty_weight · (floor − sparsity), above every trial that meets the
// floor (so the search minimises error subject to sparsity ≥ floor) yet still ranked by how far
// below it fell (so TPE's densities learn where the floor lies).
enum class SparsityFloor {
  None,      // DynamicRad's objective: the soft penalty below the target only
  Value,     // min_sparsity, the same for every regime
  Defaults,  // per regime: the mode's defaults' sparsity on that regime's own proxy
};
constexpr double kRefusedLoss = 1e6;

struct ObjectiveSpec {
  std::string mode;
  attention::ParamValues fixed;  // overrides held constant (not searched)
  double target_sparsity = 0.8;
  double error_weight = 1000.0;   // DynamicRad's weights (run_bo_pipeline.py)
  double penalty_weight = 10000.0;
  SparsityFloor floor = SparsityFloor::None;
  double min_sparsity = 0.0;      // the floor when floor == Value, in [0, 1]
  double floor_margin = 0.0;      // floor == Defaults ("defaults+X"): added to the defaults' (scaled) sparsity
  // With floor == Defaults: 0 compares the masks' sparsity. S > 0 compares the mean sparsity of an
  // S-step generation (dense steps count as 0, as `longshot generate` reports it): with `fixed`
  // dense_steps d below the mode's default d₀, floor = defaults' sparsity · (S − d₀) / (S − d), so
  // the masks may keep more blocks exactly as far as the extra sparse steps pay for.
  int schedule_steps = 0;
};

// "defaults", "defaults+X" (X in [0, 0.5], a margin above the defaults) or a number in [0, 1] (the
// --min-sparsity flag); ParameterError("min-sparsity") else.
void parse_sparsity_floor(const std::string& text, ObjectiveSpec& objective);

struct ProxyScore {
  double nmse = 0.0;
  double sparsity = 0.0;
  double loss = 0.0;
  bool refused = false;           // below the sparsity floor
  attention::ParamValues params;  // resolved
};

// The loss of one trial (the one place the objective is decided). `floor` < 0: none.
ProxyScore objective_loss(const ObjectiveSpec& objective, double nmse, double sparsity, double floor);

// ---- Proxy (b): Q/K/V captured from a model's own self-attention layers while it generates clips
// of the regime (pipeline/qkv_capture.h fills it; this room knows no model). Layers and prompts are
// stacked as heads: attention is per head, so the loss is their mean.
struct CapturedProxy {
  Regime regime;             // its name; drift unused
  attention::QKV qkv;        // [1, H, N, D] fp32 CPU, raster order
  attention::TokenGrid grid;
  std::string source;        // what it was captured from (model, prompts, step, layers), for the table
  // Independent samples (prompts) stacked along the heads, each H/groups heads: each is scored
  // with its own mask and the NMSE and sparsity are their means. A mode that builds its mask from
  // the first heads (dynamicrad: score_heads) must not give one prompt another prompt's mask.
  int64_t groups = 1;
};

// One regime's proxy inputs, their dense output and the mask setup (a late step and layer, so
// modes with dense warm-up steps/layers are scored on their sparse calls).
class ProxyTask {
 public:
  ProxyTask(const ProxySpec& spec, const Regime& regime);
  // Throws ShapeError when q/k/v are not [1, H, N, D] of one shape with N = grid.size().
  ProxyTask(const CapturedProxy& captured, int64_t block_size);
  // Throws ParameterError for an unknown mode or a parameter outside its range. `floor`: the
  // resolved sparsity floor (< 0: none; calibrate() resolves SparsityFloor per regime).
  ProxyScore score(const ObjectiveSpec& objective, const attention::ParamValues& params, double floor = -1.0) const;
  const Regime& regime() const { return regime_; }

 private:
  Regime regime_;
  std::vector<attention::EvalInputs> inputs_;  // one per group (CapturedProxy::groups)
  attention::EvalSetup setup_;
  std::vector<double> nmse_scale_;  // per group, mean(dense²) / var(dense): turns rel_l2² into NMSE
  void prepare(int64_t block_size);
};

// ---- The search box from a mode's ParamSpecs. `bounds` entries "name=lo:hi" (or just "name":
// the default box's bounds for it) select the searched parameters; empty = the mode's default box
// (dynamicrad: DynamicRad's BO space widened to hold our defaults; other modes: their continuous
// parameters with a finite range, schedule parameters excluded). Throws ParameterError naming an
// unknown parameter, bounds outside its ParamSpec range, or an empty box.
// `fixed` picks dynamicrad's selection mode (select 0/1 search the ratios, 2 the thresholds).
SearchBox search_box(const std::string& mode, const std::vector<std::string>& bounds = {},
                     const attention::ParamValues& fixed = {});

// ---- A calibration run's results (JSON, "longshot-calibration" version 1, write_table).
struct RegimeResult {
  Regime regime;
  attention::ParamValues params;  // best, resolved
  ProxyScore best;
  ProxyScore defaults;            // the mode's defaults (with the fixed overrides) on the same proxy
  SearchResult search;
  double floor = -1.0;            // the resolved sparsity floor (< 0: none)
  // With a floor the defaults (with `fixed`) are the incumbent when they meet it: when no trial has
  // a lower loss than theirs the regime keeps them (params = defaults), so the table is never worse
  // than them on the proxy. When neither they nor any trial meet it, calibrate() throws.
  bool kept_defaults = false;
};

struct CalibrationTable {
  std::string mode;
  ProxySpec proxy;
  ObjectiveSpec objective;
  TpeOptions optimizer;
  SearchBox box;
  std::vector<RegimeResult> regimes;
  // "ar-drift" (proxy above) or "model" (captured; `proxy` then holds the grid, heads and block of
  // the captures, and `sources` what each regime's capture came from, by regime name).
  std::string proxy_kind = "ar-drift";
  std::map<std::string, std::string> sources;
};

// Runs the search for each regime; the time budget (options.budget_s) is shared: each regime gets
// what is left divided by the regimes still to run. progress: a line per trial.
using CalibrationProgress = std::function<void(const Regime&, int trial, int total, const Trial&, const Trial&)>;
CalibrationTable calibrate(const ObjectiveSpec& objective, const std::vector<Regime>& regimes, const ProxySpec& proxy,
                           const SearchBox& box, const TpeOptions& options,
                           const CalibrationProgress& progress = nullptr);

// The same search on captured proxies (one per regime); the table's proxy_kind is "model".
// Throws ParameterError for an empty list or a regime given twice.
CalibrationTable calibrate(const ObjectiveSpec& objective, const std::vector<CapturedProxy>& proxies,
                           int64_t block_size, const SearchBox& box, const TpeOptions& options,
                           const CalibrationProgress& progress = nullptr);

// The table files' "format", and their versions: one run (write_table) and one run per length
// (combine_tables). Read by read_table; one home for both writers and the reader.
inline constexpr const char* kTableFormat = "longshot-calibration";
inline constexpr int kRunTableVersion = 1;
inline constexpr int kHorizonsTableVersion = 2;

// One calibration run's table (version 1: one set of regimes, tuned at the proxy's length).
void write_table(const CalibrationTable& table, const std::string& path);  // IoError when unwritable

// ---- The lookup table as generation reads it (lookup_table.cpp). Version 1 (write_table): one
// set of regimes for any length. Version 2 (combine_tables): one set per calibrated length and
// geometry, keyed by the token-grid frames of its proxy (latent frames / temporal patch) and its
// tokens per frame and block, because a mask tuned at 16 frames keeps other blocks than one tuned
// at 64, and one tuned at 32 px / block 32 others than at 64 px / block 128 (docs/calibration.md).
struct TableHorizon {
  int64_t grid_frames = 0;  // the frames it was calibrated at; 0: any length (a version-1 table)
  std::map<std::string, attention::ParamValues> regimes;  // regime → resolved parameters
  // Its proxy's geometry, when the file says (0: unknown). The masks are tuned to it: the same
  // parameters keep other blocks at other tokens per frame or block size (docs/calibration.md).
  int64_t frame_h = 0, frame_w = 0, block = 0;
  // Calibrated at h × w tokens per frame with mask block b (false when the file does not say).
  bool same_geometry(int64_t h, int64_t w, int64_t b) const;
  // "HxW tokens per frame, block B": the one spelling of its geometry (messages, summaries).
  std::string geometry_text() const;
};
struct LoadedTable {
  std::string mode;
  int version = 1;
  std::vector<TableHorizon> horizons;  // ascending grid_frames, at least one, the same regimes in each
  // The set for a job of `grid_frames` token-grid frames: the calibrated length nearest on a log
  // scale (a tie goes to the shorter). With the job's geometry (tokens per frame h × w and mask
  // block; 0 = not given), only the horizons calibrated at that geometry compete when the table has
  // any, so one table serves several sizes (a 32 px and a 64 px calibration); else those at the
  // job's tokens per frame (another block), else all, and the caller warns. The one place a job
  // picks its parameters.
  // ParameterError("frames") when grid_frames < 1.
  const TableHorizon& horizon_for(int64_t grid_frames, int64_t frame_h = 0, int64_t frame_w = 0, int64_t block = 0) const;
};
// Throws IoError naming the file when it is missing, not JSON, of another format or a version
// other than 1 or 2, or lacks a field; version 2 also when a horizon has no positive integer
// grid_frames, repeats another's length and geometry, or its regimes differ from the others'. ParameterError for an
// unknown mode or parameter.
LoadedTable read_table(const std::string& path);

// Writes a version-2 table at `out` from tables of one mode: a version-1 input is one horizon (its
// run kept whole: proxy, objective, search, trace), a version-2 input brings its horizons. IoError
// naming the input for another mode, a run's proxy grid without frames, a length and geometry given
// twice, other regimes than the first input's, and every read_table error; ParameterError for no input.
void combine_tables(const std::vector<std::string>& inputs, const std::string& out);

// ---- A table's BO trace as the studio plots it (error against sparsity per regime, the Pareto
// front): read_trace keeps what read_table drops. Plain data, so the views need no engine call.
struct TracePoint {
  int trial = -1;  // the trial's number in the search; -1 for a point that is no trial (the defaults)
  double sparsity = 0.0, nmse = 0.0;
  bool refused = false;  // below the sparsity floor (such a trial cannot be chosen)
};
struct RegimeTrace {
  std::string regime;
  std::vector<TracePoint> trials;  // in the order they ran
  std::vector<size_t> front;       // pareto_front(trials)
  TracePoint chosen;               // the table's parameters: the best trial, or the defaults when kept
  TracePoint defaults;             // the mode's defaults (with the run's fixed overrides) on the same proxy
  double floor = -1.0;             // the sparsity floor the run enforced (< 0: none)
  bool kept_defaults = false;      // no trial beat the defaults: the table holds them
};
struct HorizonTrace {
  std::string label;  // "16 frames, 16x16 tokens per frame, block 128" (what the run's proxy records)
  std::string from;   // the run's own file, when a version-2 table says
  std::vector<RegimeTrace> regimes;  // by regime name
};
struct TableTrace {
  std::string mode, file;
  int version = 1;
  std::vector<HorizonTrace> horizons;  // read_table's order: by length, then geometry
};
// Throws IoError naming the file when it is missing, not JSON, of another format or version, lacks
// a field, or carries no trace (a regime with an empty or missing 'trace': nothing to plot).
TableTrace read_trace(const std::string& path);
// Indices of the points not refused that no other such point dominates (a sparsity at least as high
// and an NMSE at least as low, one of them strictly), by ascending sparsity (then NMSE, then index).
// Points with a non-finite value take no part.
std::vector<size_t> pareto_front(const std::vector<TracePoint>& points);

}  // namespace longshot::calibrate

// `longshot calibrate`: tunes an attention mode's mask parameters per motion regime by Bayesian
// optimisation (TPE) on DynamicRad's AR-drift proxy and writes the lookup table with the full trace.
// The work lives in engine/calibrate; this file parses flags and prints progress.
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli/command.h"
#include "engine/attention/mask_policy.h"
#include "engine/calibrate/calibration.h"
#include "engine/common/error.h"
#include "engine/pipeline/qkv_capture.h"
#include "engine/pipeline/regime.h"

namespace longshot::cli {
namespace {

const char* kCalibrateUsage =
    "Usage: longshot calibrate --mode NAME --out TABLE.json [--regimes static,slow,fast] [--trials N]\n"
    "                          [--seed S] [--target-sparsity X] [--min-sparsity defaults|X] [--budget-s T]\n"
    "                          [--search name=lo:hi ...]\n"
    "                          [--param key=value ...] [--grid TxHxW] [--heads N] [--head-dim D] [--block B]\n"
    "\n"
    "Tunes the mode's mask parameters for each motion regime with a seeded TPE search (DynamicRad's\n"
    "offline BO): each trial builds the mode's mask on the regime's proxy inputs (autoregressive\n"
    "random-walk tokens, Q = K = V; drift 0.02 static, 0.15 slow, 0.40 fast) and scores\n"
    "  loss = 1000 · NMSE(sparse attention output vs dense) + 10000 · max(0, target − token sparsity).\n"
    "Writes a versioned JSON lookup table regime → parameters with every trial (docs/calibration.md).\n"
    "\n"
    "  --mode NAME          the mode to tune (any registered mode; see longshot --help)\n"
    "  --out FILE           the lookup table to write\n"
    "  --regimes LIST       comma-separated regimes (default static,slow,fast)\n"
    "  --trials N           trials per regime (default 30, DynamicRad's)\n"
    "  --startup N          random trials before the TPE model is used (default 10)\n"
    "  --seed S             seed of the search and of the proxy inputs (default 0)\n"
    "  --target-sparsity X  token sparsity below which the penalty applies (default 0.8)\n"
    "  --min-sparsity F     iso-sparsity: a hard floor, F = 'defaults' (per regime, the mode's defaults'\n"
    "                       sparsity on that regime's proxy) or a number in [0, 1]; a trial below it is\n"
    "                       refused (loss 1e6 + 10000 · shortfall), so the search minimises the error at\n"
    "                       sparsity >= F, and a regime keeps the defaults when no trial beats them;\n"
    "                       'defaults+X' raises the defaults' floor by X (a margin for held-out prompts)\n"
    "  --schedule-steps S   with --min-sparsity defaults: compare S-step generations' mean sparsity\n"
    "                       (dense steps count 0): with --param dense_steps=d below the default d0 the\n"
    "                       floor becomes the defaults' sparsity · (S − d0) / (S − d)\n"
    "  --budget-s T         wall-clock budget for all regimes, shared evenly (default 0 = none)\n"
    "  --search name=lo:hi  a searched parameter and its bounds (repeatable; a bare name takes the\n"
    "                       default bounds); default: the mode's box (dynamicrad: decay, long_factor,\n"
    "                       mask_threshold, col_density_threshold and the thresholds or ratios)\n"
    "  --param k=v          a mode parameter held fixed (repeatable), e.g. select=0 for static_ratio\n"
    "  --grid TxHxW         proxy token grid (default 32x8x8 = 2048 tokens; frames matter:\n"
    "                       same, adjacent and first frames are always kept, 16 frames already 77%)\n"
    "  --heads N            proxy heads (default 2)    --head-dim D   head dimension (default 64)\n"
    "  --block B            mask block size (default 32, DynamicRad's)\n"
    "  --proxy drift|model  drift: the AR-drift proxy above (default); model: Q/K/V captured from a\n"
    "                       model's own layers while it generates world clips of each regime\n"
    "                       (dense sampling, stopped at the capture step; prompts and layers stacked as heads)\n"
    "  with --proxy model:  --model NAME (default longshot-builtin)  --frames N (48)  --size WxH (32x32)\n"
    "                       --steps S (10)  --capture-step K (steps/2)  --layers 1,2,3 (all but layer 0)\n"
    "                       --prompts N per regime (2)\n"
    "                       --device cpu|cuda|auto (default cpu): where the model runs (bf16 on CUDA)\n"
    "                       and where the search scores its masks (fp32; CUDA for 64 px proxies)\n"
    "                       --labelled FILE: the prompts per regime ('regime<TAB>prompt' lines, e.g.\n"
    "                       assets/wan-motion-prompts.tsv for a Wan folder) instead of world captions\n"
    "\n"
    "Usage: longshot calibrate --train-router --out ROUTER.json [--model NAME] [--seed S] [--prompts N]\n"
    "                          [--heldout N]\n"
    "Trains the semantic motion router (a linear softmax on the pooled prompt embedding) of a built-in\n"
    "model on world captions labelled by their motion (static: objects grow and shrink in place; slow:\n"
    "the camera pans; fast: objects bounce, fall or orbit), and reports its held-out accuracy.\n"
    "  --model NAME         longshot-builtin (default) or longshot-builtin-sparse\n"
    "  --prompts N          training captions per regime (default 40)   --heldout N  held-out (default 12)\n"
    "  --labelled FILE      instead of world captions: 'regime<TAB>prompt' lines for any model with a\n"
    "                       text encoder (--model a Wan folder; assets/wan-motion-prompts.tsv is ours),\n"
    "                       embedded by that model's encoder on the CPU; every --heldout-every N-th\n"
    "                       prompt (default 4) is held out and scored\n"
    "       longshot calibrate --world-prompts N [--seed S]\n"
    "Prints N labelled world captions per regime as 'regime<TAB>caption' lines (the router's held-out\n"
    "captions are seed 5370206 = 0x51f15e; training uses seed 0).\n"
    "\n"
    "Usage: longshot calibrate --combine A.json,B.json[,...] --out TABLE.json\n"
    "Joins tables of one mode, each calibrated at another length (--frames / --grid) or size (--size,\n"
    "--block), into one version-2 table (a version-2 input brings all its horizons); `--regime auto`\n"
    "then applies, among the horizons calibrated at the job's tokens per frame and block (else at its\n"
    "tokens per frame, else all, with a warning), the length nearest the job's latent frames (on a log\n"
    "scale; a tie takes the shorter).\n"
    "Exit codes: 0 ok, 1 invalid value, 2 bad usage.";

// "regime<TAB>caption" lines of the world's labelled captions (tools/eval_regimes.sh reads them).
int run_world_prompts(const std::vector<std::string>& args) {
  int per_regime = 12;
  uint64_t seed = 0;
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    if (args[i] == "--world-prompts") per_regime = parse_int32("world-prompts", args[i + 1], 1, 100000);
    else if (args[i] == "--seed") seed = parse_uint64("seed", args[i + 1]);
    else throw ParameterError(args[i], "does not go with --world-prompts (only --seed)");
  }
  if (args.size() % 2) throw ParameterError(args.back(), "needs a value");
  for (const auto& p : calibrate::world_prompts(seed, per_regime)) std::printf("%s\t%s\n", p.regime.c_str(), p.prompt.c_str());
  return 0;
}

// Version-1 tables of one mode at several lengths → one version-2 table keyed by length.
int run_combine(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  std::string out_path;
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    if (args[i] == "--combine") {
      std::stringstream list(args[i + 1]);
      for (std::string item; std::getline(list, item, ',');) inputs.push_back(parse_path("combine", item));
    } else if (args[i] == "--out") {
      out_path = parse_path("out", args[i + 1]);
    } else {
      throw ParameterError(args[i], "does not go with --combine (only --out)");
    }
  }
  if (args.size() % 2) throw ParameterError(args.back(), "needs a value");
  if (out_path.empty()) throw ParameterError("out", "--combine needs --out TABLE.json");
  calibrate::combine_tables(inputs, out_path);
  const auto t = calibrate::read_table(out_path);
  std::printf("wrote %s: mode %s, %zu horizon(s):", out_path.c_str(), t.mode.c_str(), t.horizons.size());
  for (size_t i = 0; i < t.horizons.size(); ++i) {
    const auto& h = t.horizons[i];
    std::printf("%s %lld frames", i ? ";" : "", (long long)h.grid_frames);
    if (h.frame_h > 0) std::printf(" at %s", h.geometry_text().c_str());
  }
  std::printf("\n");
  return 0;
}

int run_train_router(const std::vector<std::string>& args) {
  std::string model = "longshot-builtin", out_path, labelled;
  uint64_t seed = 0;
  int prompts = 40, heldout = 12, heldout_every = 4;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--train-router") continue;
    if (i + 1 >= args.size()) {
      std::cerr << "longshot calibrate: '" << flag << "' needs a value\n" << kCalibrateUsage << "\n";
      return 2;
    }
    const std::string& value = args[++i];
    if (flag == "--model") model = value;
    else if (flag == "--out") out_path = parse_path("out", value);
    else if (flag == "--seed") seed = parse_uint64("seed", value);
    else if (flag == "--prompts") prompts = parse_int32("prompts", value, 1, 100000);
    else if (flag == "--heldout") heldout = parse_int32("heldout", value, 1, 100000);
    else if (flag == "--labelled") labelled = parse_path("labelled", value);
    else if (flag == "--heldout-every") heldout_every = parse_int32("heldout-every", value, 2, 100000);
    else {
      std::cerr << "longshot calibrate: '" << flag << "' does not go with --train-router\n" << kCalibrateUsage << "\n";
      return 2;
    }
  }
  if (out_path.empty()) {
    std::cerr << "longshot calibrate: --train-router needs --out\n" << kCalibrateUsage << "\n";
    return 2;
  }
  if (!labelled.empty()) {
    pipeline::GenerationRequest request;
    request.model = model;
    const auto t = pipeline::train_prompt_router(request, calibrate::read_labelled_prompts(labelled), heldout_every);
    std::printf("router for %s: %d training prompts from %s, train accuracy %.1f%%, held-out %.1f%% on %d prompts "
                "(1 in %d), %.4f ms per routing\n",
                t.router.model.c_str(), t.router.examples, labelled.c_str(), 100.0 * t.router.train_accuracy,
                100.0 * t.heldout_accuracy, t.heldout, heldout_every, t.route_ms);
    calibrate::write_router(t.router, out_path);
    std::printf("wrote %s\n", out_path.c_str());
    return 0;
  }
  const auto t = pipeline::train_world_router(model, seed, prompts, heldout);
  std::printf("router for %s: %d training captions (%d per regime), train accuracy %.1f%%, held-out %.1f%% on %d "
              "captions, %.4f ms per routing\n",
              t.router.model.c_str(), t.router.examples, prompts, 100.0 * t.router.train_accuracy,
              100.0 * t.heldout_accuracy, t.heldout, t.route_ms);
  calibrate::write_router(t.router, out_path);
  std::printf("wrote %s\n", out_path.c_str());
  return 0;
}

// The flags of proxy (b); false when `flag` is none of them.
bool capture_flag(const std::string& flag, const std::string& value, pipeline::CaptureSpec& c) {
  if (flag == "--model") c.model = value;
  else if (flag == "--frames") c.frames = parse_int32("frames", value, 1, 4096);
  else if (flag == "--steps") c.steps = parse_int32("steps", value, 1, 1000);
  else if (flag == "--capture-step") c.capture_step = parse_int32("capture-step", value, 0, 999);
  else if (flag == "--prompts") c.prompts_per_regime = parse_int32("prompts", value, 1, 1000);
  else if (flag == "--device") c.device = value;  // auto, cpu or cuda: checked by the capture
  else if (flag == "--labelled") c.labelled = calibrate::read_labelled_prompts(value);
  else if (flag == "--size") {
    const auto x = value.find('x');
    if (x == std::string::npos) throw ParameterError("size", "expected WxH, got '" + value + "'");
    c.width = parse_int32("size", value.substr(0, x), 2, 8192);
    c.height = parse_int32("size", value.substr(x + 1), 2, 8192);
  } else if (flag == "--layers") {
    c.layers.clear();
    std::stringstream list(value);
    for (std::string item; std::getline(list, item, ',');) c.layers.push_back(parse_int32("layers", item, 0, 4096));
  } else {
    return false;
  }
  return true;
}

// Proxy (b): captures per regime, then the same search on them.
calibrate::CalibrationTable calibrate_on_model(const calibrate::ObjectiveSpec& objective,
                                              const std::vector<calibrate::Regime>& regimes,
                                              const pipeline::CaptureSpec& capture, int64_t block,
                                              const calibrate::SearchBox& box, const calibrate::TpeOptions& options,
                                              const calibrate::CalibrationProgress& progress) {
  auto proxies = pipeline::capture_regime_proxies(capture, regimes, [](const std::string& regime, const std::string& prompt) {
    std::printf("  capturing %-6s %s\n", regime.c_str(), prompt.c_str());
    std::fflush(stdout);
  });
  // Prompts are stacked outermost (qkv_capture.h): each is scored with its own mask.
  for (auto& p : proxies) p.groups = capture.prompts_per_regime;
  const auto& q = proxies.front().qkv.q;
  std::printf("captured %s tokens × %lld heads × %lld dims per regime\n", proxies.front().grid.to_string().c_str(),
              (long long)q.size(1), (long long)q.size(3));
  return calibrate::calibrate(objective, proxies, block, box, options, progress);
}

// Per regime: the best and the defaults' figures, the floor's refusals, the searched parameters.
void print_results(const calibrate::CalibrationTable& table, const calibrate::SearchBox& box) {
  for (const auto& r : table.regimes) {
    std::printf("%-6s drift %.2f: best loss %.3f (nmse %.5f, sparsity %.1f%%) after %zu trials in %.1f s%s; "
                "defaults: loss %.3f (nmse %.5f, sparsity %.1f%%)\n",
                r.regime.name.c_str(), r.regime.drift, r.best.loss, r.best.nmse, 100.0 * r.best.sparsity,
                r.search.trace.size(), r.search.seconds, r.search.stopped_by_budget ? " (time budget)" : "",
                r.defaults.loss, r.defaults.nmse, 100.0 * r.defaults.sparsity);
    std::string p;
    for (const auto& d : box) {
      char buf[96];
      std::snprintf(buf, sizeof buf, " %s=%g", d.name.c_str(), r.params.at(d.name));
      p += buf;
    }
    if (r.floor >= 0.0) {
      int refused = 0;
      for (const auto& t : r.search.trace) refused += t.outcome.metrics.at("refused") != 0.0;
      std::printf("        floor %.2f%%: %d of %zu trials refused%s\n", 100.0 * r.floor, refused, r.search.trace.size(),
                  r.kept_defaults ? "; no trial beat the defaults, the regime keeps them" : "");
    }
    std::printf("        params:%s\n", p.c_str());
  }
}

int run_calibrate(const std::vector<std::string>& args) {
  using namespace longshot::calibrate;
  if (has_flag(args, "--help") || has_flag(args, "-h")) {
    std::cout << kCalibrateUsage << "\n";
    return 0;
  }
  if (has_flag(args, "--train-router")) return run_train_router(args);
  if (has_flag(args, "--world-prompts")) return run_world_prompts(args);
  if (has_flag(args, "--combine")) return run_combine(args);
  ObjectiveSpec objective;
  ProxySpec proxy;
  proxy.grid = attention::TokenGrid{32, 8, 8};
  proxy.block_size = 32;
  TpeOptions options;
  std::vector<Regime> regimes = builtin_regimes();
  std::vector<std::string> bounds;
  std::string out_path;
  pipeline::CaptureSpec capture;
  bool model_proxy = false;
  std::string capture_seen;  // the last flag of proxy (b) given: refused with the drift proxy
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (i + 1 >= args.size()) {
      std::cerr << "longshot calibrate: '" << flag << "' needs a value\n" << kCalibrateUsage << "\n";
      return 2;
    }
    const std::string& value = args[++i];
    if (flag == "--mode") objective.mode = value;
    else if (flag == "--out") out_path = parse_path("out", value);
    else if (flag == "--regimes") regimes = parse_regimes(value);
    else if (flag == "--trials") options.trials = parse_int32("trials", value, 1, 100000);
    else if (flag == "--startup") options.startup_trials = parse_int32("startup", value, 1, 100000);
    else if (flag == "--seed") options.seed = proxy.seed = parse_uint64("seed", value);
    else if (flag == "--target-sparsity") {
      objective.target_sparsity = parse_double("target-sparsity", value);
      if (objective.target_sparsity < 0 || objective.target_sparsity > 1)
        throw ParameterError("target-sparsity", "must lie in [0, 1], got " + value);
    } else if (flag == "--min-sparsity") {
      parse_sparsity_floor(value, objective);
    } else if (flag == "--schedule-steps") {
      objective.schedule_steps = parse_int32("schedule-steps", value, 1, 100000);
    } else if (flag == "--budget-s") {
      options.budget_s = parse_double("budget-s", value);
      if (options.budget_s < 0) throw ParameterError("budget-s", "must be >= 0, got " + value);
    } else if (flag == "--search") bounds.push_back(value);
    else if (flag == "--param") attention::parse_param_assignment(value, objective.fixed);
    else if (flag == "--grid") proxy.grid = attention::TokenGrid::parse(value);
    else if (flag == "--heads") proxy.heads = parse_int("heads", value, 1, 4096);
    else if (flag == "--head-dim") proxy.head_dim = parse_int("head-dim", value, 8, 1024);
    else if (flag == "--block") proxy.block_size = parse_int("block", value, 1, 1 << 20);
    else if (flag == "--proxy" && (value == "drift" || value == "model")) model_proxy = value == "model";
    else if (flag == "--proxy") throw ParameterError("proxy", "must be drift or model, got '" + value + "'");
    else if (capture_flag(flag, value, capture)) capture_seen = flag;
    else {
      std::cerr << "longshot calibrate: unknown flag '" << flag << "'\n" << kCalibrateUsage << "\n";
      return 2;
    }
  }
  if (objective.mode.empty() || out_path.empty()) {
    std::cerr << "longshot calibrate: --mode and --out are required\n" << kCalibrateUsage << "\n";
    return 2;
  }
  // --frames, --device, … shape the model's capture: with the drift proxy they would do nothing.
  if (!model_proxy && !capture_seen.empty())
    throw ParameterError(capture_seen.substr(2), "goes with --proxy model only (the drift proxy is made on the CPU from --grid)");
  // The CPU reference scores every token pair per trial: refuse work that would take minutes per
  // trial (12 heads × 8192² × 64 ≈ a few seconds on 2 cores).
  const double work = double(proxy.heads) * double(proxy.grid.size()) * double(proxy.grid.size()) * double(proxy.head_dim);
  if (!model_proxy && work > 12.0 * 8192.0 * 8192.0 * 64.0)
    throw ParameterError("grid", proxy.grid.to_string() + " with " + std::to_string(proxy.heads) +
                                     " heads is too large for the CPU proxy; use fewer tokens or heads");
  const SearchBox box = search_box(objective.mode, bounds, objective.fixed);
  std::string box_text;
  for (const auto& d : box) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s%s∈[%g,%g]", box_text.empty() ? "" : " ", d.name.c_str(), d.lo, d.hi);
    box_text += buf;
  }
  char proxy_text[256];
  if (model_proxy)
    std::snprintf(proxy_text, sizeof proxy_text, "Q/K/V of %s (%d frames %dx%d, step %d of %d)", capture.model.c_str(),
                  capture.frames, capture.width, capture.height,
                  capture.capture_step < 0 ? capture.steps / 2 : capture.capture_step, capture.steps);
  else
    std::snprintf(proxy_text, sizeof proxy_text, "%s × %lld heads × %lld dims", proxy.grid.to_string().c_str(),
                  (long long)proxy.heads, (long long)proxy.head_dim);
  char floor_text[64] = "";
  if (objective.floor == SparsityFloor::Defaults && objective.schedule_steps > 0)
    std::snprintf(floor_text, sizeof floor_text, ", min sparsity: the defaults' over %d steps", objective.schedule_steps);
  else if (objective.floor == SparsityFloor::Defaults)
    std::snprintf(floor_text, sizeof floor_text, ", min sparsity: the defaults'");
  else if (objective.floor == SparsityFloor::Value)
    std::snprintf(floor_text, sizeof floor_text, ", min sparsity %.3f", objective.min_sparsity);
  std::printf("calibrate %s: %zu regime(s) × %d trials, proxy %s, block %lld, target sparsity %.2f%s\nsearch: %s\n",
              objective.mode.c_str(), regimes.size(), options.trials, proxy_text, (long long)proxy.block_size,
              objective.target_sparsity, floor_text, box_text.c_str());
  std::fflush(stdout);
  auto progress = [](const Regime& r, int i, int n, const Trial& t, const Trial& best) {
    const int width = 24, filled = (i + 1) * width / n;
    std::printf("\r  %-6s [%s%s] %3d/%d  loss %9.3f (nmse %.4f, sparsity %5.1f%%)  best %9.3f", r.name.c_str(),
                std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), i + 1, n, t.outcome.loss,
                t.outcome.metrics.at("nmse"), 100.0 * t.outcome.metrics.at("sparsity"), best.outcome.loss);
    std::fflush(stdout);
  };
  capture.seed = proxy.seed;
  const CalibrationTable table =
      model_proxy ? calibrate_on_model(objective, regimes, capture, proxy.block_size, box, options, progress)
                  : calibrate::calibrate(objective, regimes, proxy, box, options, progress);
  std::printf("\n");
  print_results(table, box);
  write_table(table, out_path);
  std::printf("wrote %s\n", out_path.c_str());
  return 0;
}

}  // namespace

Command calibrate_command() {
  return {"calibrate", "tune a mode's mask parameters per motion regime by Bayesian optimisation on a proxy",
          kCalibrateUsage, run_calibrate};
}

}  // namespace longshot::cli

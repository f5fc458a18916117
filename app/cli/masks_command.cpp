// `longshot masks`: builds each attention mode's mask on synthetic energy-decay Q/K/V and prints
// sparsity, attention recall and relative L2 error against dense attention; can write the mask as
// a trace file (docs/attention.md). The work itself lives in engine/attention/mask_eval.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "app/cli/command.h"
#include "engine/attention/mask_eval.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/mask_trace.h"
#include "engine/common/error.h"

namespace longshot::cli {
namespace {

const char* kMasksUsage =
    "Usage: longshot masks [--grid TxHxW] [--mode NAME|all] [--param key=value ...] [--heads N]\n"
    "                      [--head-dim D] [--block B] [--seed S] [--step N] [--layer N] [--out FILE]\n"
    "\n"
    "Builds the mask of one attention mode (or of every mode: --mode all) on seeded synthetic Q/K/V\n"
    "whose attention mass decays with 3D distance (plus a few long-range motion links), and prints\n"
    "block sparsity, token sparsity, attention recall (kept share of the dense softmax mass) and the\n"
    "relative L2 error of the block-sparse output against dense attention (CPU fp32 reference).\n"
    "\n"
    "  --grid TxHxW     latent token grid (default 8x16x16 = 2048 tokens; Wan 480p 81 frames: 21x30x52)\n"
    "  --mode NAME      a mode (dense, dynamicrad, dfsattn, lvsa, radial-ratio, radial-mass, dfs-adaptive,\n"
    "                   local-anchors; see longshot --help) or all (default all)\n"
    "  --param k=v      a mode parameter (repeatable); with --mode all it goes to the modes that have it\n"
    "  --heads N        attention heads (default 12)       --head-dim D   head dimension (default 64)\n"
    "  --block B        mask block size in tokens (default 64)\n"
    "  --seed S         synthetic input seed (default 1)\n"
    "  --sharpness X    synthetic attention peak logit (default 10; higher = more local attention)\n"
    "  --step N, --layer N   denoising step and layer the mask is built for (default 0, 0)\n"
    "  --out FILE       write the mask as a longshot-mask-trace JSON file (single mode only)\n"
    "Run 'longshot --help' for every mode's parameters. Exit codes: 0 ok, 1 invalid value, 2 bad usage.";

double parse_positive(const std::string& flag, const std::string& text) {
  const double v = parse_double(flag, text);
  if (!(v > 0)) throw ParameterError(flag, "expected a positive number, got '" + text + "'");
  return v;
}

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%6.2f%%", 100.0 * v);
  return buf;
}

std::string params_text(const attention::ParamValues& values) {
  std::string s;
  for (const auto& [k, v] : values) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s=%g", k.c_str(), v);
    s += (s.empty() ? "" : " ") + std::string(buf);
  }
  return s.empty() ? "-" : s;
}

int run_masks(const std::vector<std::string>& args) {
  using namespace longshot::attention;
  SyntheticSpec spec;
  spec.heads = 12;
  spec.head_dim = 64;
  std::string mode = "all", out_path;
  EvalSetup setup;
  ParamValues overrides;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (i + 1 >= args.size()) {
      std::cerr << "longshot masks: " << (flag.rfind("--", 0) == 0 ? "flag '" + flag + "' needs a value" : "unexpected argument '" + flag + "'")
                << "\n" << kMasksUsage << "\n";
      return 2;
    }
    const std::string& value = args[++i];
    if (flag == "--grid") spec.grid = TokenGrid::parse(value);
    else if (flag == "--mode") mode = value;
    else if (flag == "--param") parse_param_assignment(value, overrides);
    else if (flag == "--heads") spec.heads = parse_int("heads", value, 1);
    else if (flag == "--head-dim") spec.head_dim = parse_int("head-dim", value, 8);
    else if (flag == "--block") setup.block_size = parse_int("block", value, 1);
    else if (flag == "--seed") spec.seed = parse_uint64("seed", value);
    else if (flag == "--sharpness") spec.sharpness = parse_positive("sharpness", value);
    else if (flag == "--step") setup.step = parse_int32("step", value, 0, INT32_MAX - 1);  // num_steps = step + 1
    else if (flag == "--layer") setup.layer = parse_int32("layer", value, 0, INT32_MAX - 1);
    else if (flag == "--out") out_path = value;
    else {
      std::cerr << "longshot masks: unknown flag '" << flag << "'\n" << kMasksUsage << "\n";
      return 2;
    }
  }
  // The CPU reference scores every token pair of every head (several passes per mode): cap the
  // work at 12 heads × 16384² tokens × 64 dims (about a minute on 2 cores). Larger grids fit with
  // fewer heads, e.g. Wan's 21x30x52 with --heads 2.
  const double work = double(spec.heads) * double(spec.grid.size()) * double(spec.grid.size()) * double(spec.head_dim);
  if (work > 12.0 * 16384.0 * 16384.0 * 64.0) {
    throw ParameterError("grid", spec.grid.to_string() + " (" + std::to_string(spec.grid.size()) + " tokens) x " +
                                     std::to_string(spec.heads) + " heads x " + std::to_string(spec.head_dim) +
                                     " dims is too much for the CPU reference; use fewer --heads or a smaller grid");
  }
  setup.num_steps = setup.step + 1;
  setup.num_layers = setup.layer + 1;

  std::vector<std::string> modes;
  if (mode == "all") {
    for (const auto& info : registered_policies()) modes.push_back(info.name);
    if (!out_path.empty()) throw ParameterError("out", "writes one mode's mask; pick one with --mode NAME");
  } else {
    find_policy(mode);
    modes.push_back(mode);
  }
  // With several modes a parameter goes to the modes that declare it; one no mode knows is an error.
  std::set<std::string> used;
  auto overrides_for = [&](const std::string& name) {
    if (modes.size() == 1) return overrides;
    ParamValues mine;
    for (const auto& spec_param : find_policy(name).params) {
      const auto it = overrides.find(spec_param.name);
      if (it != overrides.end()) mine[it->first] = it->second, used.insert(it->first);
    }
    return mine;
  };
  if (modes.size() > 1) {
    for (const auto& name : modes) overrides_for(name);
    for (const auto& [k, v] : overrides) {
      if (!used.count(k)) throw ParameterError(k, "no attention mode has this parameter (see 'longshot --help')");
    }
  }

  // Every mode's parameters are checked before any work starts.
  for (const auto& name : modes) resolve_params(find_policy(name), overrides_for(name));

  const EvalInputs inputs = make_eval_inputs(spec);
  const int64_t nb = BlockMask::blocks_for(spec.grid.size(), setup.block_size);
  std::printf("longshot masks: grid %s (%lld tokens), %lld heads x %lld dims, block %lld (%lld blocks), seed %llu,\n"
              "                synthetic energy-decay inputs, step %d, layer %d, CPU fp32 reference\n\n",
              spec.grid.to_string().c_str(), (long long)spec.grid.size(), (long long)spec.heads,
              (long long)spec.head_dim, (long long)setup.block_size, (long long)nb,
              (unsigned long long)spec.seed, setup.step, setup.layer);
  std::printf("%-15s %-8s %9s %9s %9s %10s %8s  %s\n", "mode", "order", "sparsity", "token-sp", "recall", "rel-L2",
              "mask-ms", "params");
  for (const auto& name : modes) {
    const MaskEvaluation ev = evaluate_mode(name, overrides_for(name), inputs, setup);
    std::printf("%-15s %-8s %9s %9s %9s %10.2e %8.1f  %s\n", name.c_str(), to_string(ev.ordering),
                percent(ev.block_sparsity).c_str(), percent(ev.token_sparsity).c_str(), percent(ev.recall).c_str(),
                ev.rel_l2, ev.build_ms, params_text(ev.params).c_str());
    if (!out_path.empty()) {
      MaskTrace trace;
      trace.grid = spec.grid;
      trace.block_size = setup.block_size;
      trace.ordering = ev.ordering;
      trace.mode = name;
      trace.params = ev.params;
      trace.add(*ev.mask, setup.step, setup.layer);
      write_mask_trace(trace, out_path);
      std::printf("\nwrote %s (%zu entries, format %s v%d)\n", out_path.c_str(), trace.entries.size(), kMaskTraceFormat,
                  kMaskTraceVersion);
    }
  }
  return 0;
}

}  // namespace

Command masks_command() {
  return {"masks", "attention masks of every mode on synthetic inputs: sparsity, recall, error vs dense",
          kMasksUsage, run_masks};
}

}  // namespace longshot::cli

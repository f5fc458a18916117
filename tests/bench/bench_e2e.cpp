// End-to-end benchmark: time of one denoising step of wan2.1-t2v-1.3b (random bf16 weights; speed
// does not depend on weight values) per attention mode, at 81 frames 480p (21×30×52 latent tokens)
// and the 6× horizon (126×30×52). Prints a table and writes JSON.
//
// Method (stated in the output): a model with --layers L of the 30 blocks is timed over at least
// --reps forwards and at least 1.5 s (median) after one warm-up; a step is 2 forwards (classifier-free guidance), each extrapolated as
// 30/L × the L-block forward (this over-counts patch embedding / text MLP / head by 30/L, a few
// percent at most). The attention share f comes from per-layer timing with device syncs; Amdahl's
// ideal speedup at block sparsity s is 1 / ((1 − f) + f·(1 − s)) against the same run's dense.
// Peak memory: measured peak of the L-block run + (30 − L) blocks of bf16 weights.
// LONGSHOT_CUDA_GRAPHS=1: the timed forwards go through a CUDA graph (engine/model/graph_forward.h)
// where the mode allows (the rest run eagerly, the reason printed); a replay times nothing inside,
// so such a row's attention and mask times are the eager warm-up forward's.
#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "engine/attention/attention.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/presets.h"
#include "engine/common/cuda_memory.h"
#include "engine/model/dit.h"
#include "engine/model/graph_forward.h"
#include "tests/bench/bench_dit.h"

using namespace longshot;

namespace {

// The caching allocator's peak on `device` since the last reset_peak_cuda_memory: −1 on the CPU.
double peak_gib(const torch::Device& device) {
  const int64_t bytes = peak_cuda_memory(device);
  return bytes < 0 ? -1.0 : double(bytes) / (1ull << 30);
}

struct Row {
  std::string grid, mode;
  double sparsity = 0, forward_ms = 0, attention_ms = 0, mask_ms = 0, step_ms = 0, share = 0, ideal = 1, measured = 1,
         peak = -1;
  int reps = 0;
  double first_mask_ms = 0;  // mask building in the warm-up forward (one-shot masks are built there)
  bool cuda_graph = false;   // timed as graph replays (LONGSHOT_CUDA_GRAPHS=1)
};

struct Options {
  int layers = 2, reps = 2;
  std::vector<std::string> grids, modes;
  std::string json_path = "bench_e2e.json";
};

// A flag without its value ends the parsing; unknown flags are skipped with their value.
Options parse_options(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  Options o;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--all-modes") {  // kept for old scripts: every mode runs at every grid now
      continue;
    }
    if (i + 1 >= args.size()) break;
    if (args[i] == "--layers") o.layers = std::stoi(args[i + 1]);
    else if (args[i] == "--reps") o.reps = std::stoi(args[i + 1]);
    else if (args[i] == "--grid") o.grids.push_back(args[i + 1]);
    else if (args[i] == "--mode") o.modes.push_back(args[i + 1]);
    else if (args[i] == "--preset") o.modes.push_back("preset:" + args[i + 1]);
    else if (args[i] == "--json") o.json_path = args[i + 1];
    ++i;
  }
  return o;
}

// The attention plan of one row; the policy it points to is returned (the caller keeps it alive).
std::unique_ptr<attention::MaskPolicy> plan_mode(const std::string& mode, bool cuda, model::AttentionPlan& ctl) {
  std::unique_ptr<attention::MaskPolicy> policy;
  ctl.block_size = 128;
  if (mode == "dense-sdpa") {
    // No policy: every layer dense, through LibTorch's SDPA (the "best dense" baseline).
  } else if (mode.rfind("preset:", 0) == 0) {
    // A paper preset's mode, parameters and block. Its dense layers are switched off here:
    // with L of 30 blocks timed, layer 0 dense would weigh 1/L instead of 1/30 (its dense
    // steps are before the timed step 25 anyway); the row is the sparse layers' cost.
    const auto preset = attention::find_preset(mode.substr(7));
    auto params = preset.params;
    for (const char* key : {"dense_layers"})
      if (params.count(key)) params[key] = 0;
    policy = attention::create_policy(preset.mode, params);
    if (preset.block_size) ctl.block_size = *preset.block_size;
    ctl.policy = policy.get();
  } else {
    policy = attention::create_policy(mode);
    ctl.policy = policy.get();
  }
  // Our kernel in every other row (attend() would send a full mask to SDPA under Auto).
  ctl.backend = mode == "dense-sdpa" ? attention::Backend::Sdpa
                : cuda               ? attention::Backend::Cuda
                                     : attention::Backend::Auto;
  ctl.step = 25;  // a mid-run step: past every mode's own warm-up
  ctl.num_steps = 50;
  return policy;
}

// The model (random weights, --layers blocks), the rows measured so far and their JSON.
class E2EBench {
 public:
  E2EBench(const Options& opt, bool cuda) : opt_(opt), cuda_(cuda), model_(opt.layers, cuda) {
    std::printf("bench_e2e: wan2.1-t2v-1.3b, %d of %d blocks timed, random %s weights on %s, backend %s\n", opt.layers,
                model_.full_layers, cuda ? "bf16" : "fp32", cuda ? "CUDA" : "CPU (smoke run only)",
                attention::backend_description().c_str());
  }

  // The bytes of one block's weights (the peak estimate adds the blocks not run).
  void count_block_bytes() {
    for (const auto& p : model_.dit->blocks[0]->parameters()) block_bytes_ += p.numel() * p.element_size();
  }

  // Every mode on one grid, then the grid's speedups against its best dense.
  void run_grid(const std::string& gtext) {
    const auto in = bench::warmed_inputs(model_, attention::TokenGrid::parse(gtext), /*measure_time=*/true);
    double dense_step = 0;
    for (const auto& mode : opt_.modes) {
      model::AttentionPlan ctl;
      std::unique_ptr<attention::MaskPolicy> policy;  // outlives the timing: ctl points to it
      Row row;
      row.grid = gtext;
      row.mode = mode;
      try {
        policy = plan_mode(mode, cuda_, ctl);  // an unknown mode or preset fails its row only
        time_mode(in, ctl, row);
      } catch (const std::exception& e) {
        std::printf("  %s %s: failed: %s\n", gtext.c_str(), mode.c_str(), e.what());
        continue;
      }
      if (mode == "dense-sdpa" || (dense_step == 0 && mode == "dense")) dense_step = row.step_ms;
      rows_.push_back(row);
    }
    add_speedups(gtext, dense_step);
  }

  void report() const {
    std::printf("\n| latent grid | mode | block sparsity | step (s, est.) | attention share | mask build (ms/fwd) | "
                "speedup measured | Amdahl ideal | measured/ideal | peak GiB (est.) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : rows_)
      std::printf("| %s | %s | %.1f %% | %.2f | %.0f %% | %.1f | %.2f× | %.2f× | %.2f | %.1f |\n", r.grid.c_str(),
                  r.mode.c_str(), 100 * r.sparsity, r.step_ms / 1000, 100 * r.share, r.mask_ms, r.measured, r.ideal,
                  r.measured / r.ideal, r.peak);
    std::ofstream(opt_.json_path) << out_.dump(2) << "\n";
    std::printf("\nJSON: %s\n", opt_.json_path.c_str());
  }

 private:
  // One warm-up forward (mask caches), then the timed forwards; fills the row's times.
  void time_mode(const bench::GridInputs& in, const model::AttentionPlan& ctl, Row& row) {
    const auto first = model_.dit->forward_with_stats(in.x, in.t, in.text, ctl);  // warm-up (and mask caches)
    if (cuda_) torch::cuda::synchronize();
    row.first_mask_ms = first.stats.mask_ms;
    const char* env = std::getenv("LONGSHOT_CUDA_GRAPHS");
    std::unique_ptr<model::GraphForward> graphs;
    if (cuda_ && env && std::string(env) == "1") {
      graphs = std::make_unique<model::GraphForward>(model_.dit);
      graphs->forward_with_stats(in.x, in.t, in.text, ctl);  // the capture, untimed
      row.cuda_graph = graphs->last_replayed();
      std::printf("  %s %s: cuda graph %s\n", row.grid.c_str(), row.mode.c_str(),
                  row.cuda_graph ? "replayed" : ("refused: " + graphs->last_eager_reason()).c_str());
    }
    reset_peak_cuda_memory(model_.device);
    // At least --reps forwards and at least 1.5 s of them (short grids vary by ±20 % over
    // two forwards); the forward time is the median, attention and mask times the means.
    std::vector<double> fwd;
    double attn = 0, mask = 0, spent = 0;
    while (static_cast<int>(fwd.size()) < opt_.reps || (spent < 1500.0 && fwd.size() < 20)) {
      const double t0 = bench::now_ms();
      const auto out = graphs ? graphs->forward_with_stats(in.x, in.t, in.text, ctl)
                              : model_.dit->forward_with_stats(in.x, in.t, in.text, ctl);
      if (cuda_) torch::cuda::synchronize();
      fwd.push_back(bench::now_ms() - t0);
      spent += fwd.back();
      attn += row.cuda_graph ? first.stats.attention_ms : out.stats.attention_ms;
      mask += row.cuda_graph ? first.stats.mask_ms : out.stats.mask_ms;
      row.sparsity = out.stats.mean_sparsity();
    }
    const double n = static_cast<double>(fwd.size());
    std::sort(fwd.begin(), fwd.end());
    row.forward_ms = fwd[fwd.size() / 2];
    row.attention_ms = attn / n;
    row.mask_ms = mask / n;
    row.reps = static_cast<int>(fwd.size());
    row.step_ms = 2.0 * row.forward_ms * model_.full_layers / opt_.layers;
    row.share = row.attention_ms / row.forward_ms;
    const double unrun_gib = double(block_bytes_) * (model_.full_layers - opt_.layers) / (1ull << 30);
    row.peak = cuda_ ? peak_gib(model_.device) + unrun_gib : -1;
  }

  // Amdahl against the best dense of this grid (its attention share); the grid's JSON rows.
  void add_speedups(const std::string& gtext, double dense_step) {
    double f = 0;
    for (const auto& r : rows_)
      if (r.grid == gtext && r.step_ms == dense_step) f = r.share;
    for (auto& r : rows_) {
      if (r.grid != gtext) continue;
      r.ideal = 1.0 / ((1 - f) + f * (1 - r.sparsity));
      r.measured = dense_step / r.step_ms;
      out_.push_back({{"grid", r.grid}, {"mode", r.mode}, {"sparsity", r.sparsity}, {"forward_ms", r.forward_ms},
                      {"attention_ms", r.attention_ms}, {"mask_ms", r.mask_ms}, {"step_ms", r.step_ms},
                      {"attention_share", r.share}, {"amdahl_ideal", r.ideal}, {"measured_speedup", r.measured},
                      {"peak_gib", r.peak}, {"layers_timed", opt_.layers}, {"forwards_timed", r.reps},
                      {"first_forward_mask_ms", r.first_mask_ms}, {"cuda_graph", r.cuda_graph}});
    }
  }

  const Options& opt_;
  const bool cuda_;
  bench::BenchModel model_;
  int64_t block_bytes_ = 0;
  std::vector<Row> rows_;
  nlohmann::json out_ = nlohmann::json::array();
};

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_options(argc, argv);
  const bool cuda = torch::cuda::is_available();
  if (opt.grids.empty()) opt.grids = bench::default_grids(cuda);
  if (opt.modes.empty()) {
    opt.modes.push_back("dense-sdpa");
    for (const auto& p : attention::registered_policies()) opt.modes.push_back(p.name);
  }
  E2EBench bench(opt, cuda);
  torch::NoGradGuard no_grad;
  bench.count_block_bytes();
  for (const auto& gtext : opt.grids) bench.run_grid(gtext);
  bench.report();
  return 0;
}

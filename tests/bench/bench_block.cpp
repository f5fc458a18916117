// One Wan2.1-1.3B DiT block, op by op: where the time of our block goes (issue 22). A model with
// --layers L of the 30 blocks (random bf16 weights) runs one forward per repetition; the model's
// OpMarker hook (engine/model/dit.h) records a CUDA event after each op it enqueues, so each op's
// span is GPU-timeline wall time — kernels plus any GPU idle the host causes (a dynamic mode's
// host sync shows up in the op after it). Beside it: the host's time per op (enqueue + waits) and
// the caching allocator's requests and cudaMallocs per op (steady state: cudaMallocs should be 0).
// No device syncs for timing inside the forward (AttentionPlan::measure_time off).
//
//   bench_block [--grid TxHxW ...] [--mode NAME ...] [--layers 2] [--reps 3] [--fp8] [--cuda-graph]
//               [--residual fp32|bf16] [--export-masks DIR] [--json out.json]
// Modes: dense-sdpa (torch SDPA, cuDNN), dense (our kernel, full mask), radial90 (radial,
// keep_ratio 0.1: the ~90 % mask of the kernel bench), and any registered mode by name.
// --fp8 repeats dense-sdpa and radial90 with FP8 linear layers (Hopper + LibTorch >= 2.5; else
// the reason is printed and those rows are absent). --residual bf16 runs every row with the bf16
// residual stream (model::ResidualPrecision; rows labelled "res-bf16"). --export-masks writes radial90's layer-0
// mask per grid (int32 BSR row offsets then columns, as bench_attention) + masks.json for
// tests/bench/block_torch.py. The step estimate is 2 forwards (CFG) × (forward + (30 − L) blocks).
// --cuda-graph adds a table: per mode, the L-block forward eager (the unprofiled median) beside the
// same forward captured once in a CUDA graph and replayed (engine/model/graph_forward.h; median of
// --reps replays, input copies included), with the replay's max |difference| from eager; a mode
// the graph path refuses shows the reason instead.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#if defined(LONGSHOT_HAS_CUDA)
#include <cuda_runtime_api.h>

#include "engine/common/cuda/device_stream.h"
#endif
#if LONGSHOT_TORCH_CUDA && __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define BENCH_ALLOC_STATS 1
#endif

#include "engine/attention/mask_policy.h"
#include "engine/model/dit.h"
#include "engine/model/graph_forward.h"
#include "tests/bench/bench_dit.h"

using namespace longshot;

namespace {

// Cumulative allocator requests and cudaMallocs on device 0 (0 without a CUDA LibTorch).
std::pair<int64_t, int64_t> alloc_counts() {
#if defined(BENCH_ALLOC_STATS)
  const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  return {s.allocation[0].allocated, s.segment[0].allocated};  // [0]: StatType::AGGREGATE
#else
  return {0, 0};
#endif
}

// The OpMarker: one point per block start and per op; GPU times from CUDA events (host clock on
// the CPU), summed per op name over blocks and forwards.
class Profiler : public model::OpMarker {
 public:
  explicit Profiler(bool cuda) : cuda_(cuda) {}
  ~Profiler() override {
#if defined(LONGSHOT_HAS_CUDA)
    for (auto e : events_) cudaEventDestroy(e);
#endif
  }
  struct Op {
    double gpu_ms = 0, host_ms = 0;
    int64_t allocs = 0, mallocs = 0, count = 0;
  };
  void block(int) override { point(nullptr); }
  void mark(const char* op) override { point(op); }
  // After the forward (device synchronised): fold the points into per-op sums.
  void collect() {
    for (size_t i = 1; i < points_.size(); ++i) {
      const auto& p = points_[i];
      if (p.op.empty()) continue;  // a block start closes nothing
      auto& o = ops_[p.op];
      if (std::find(order_.begin(), order_.end(), p.op) == order_.end()) order_.push_back(p.op);
      o.gpu_ms += gpu_span(i - 1, i);
      o.host_ms += p.host - points_[i - 1].host;
      o.allocs += p.allocs - points_[i - 1].allocs;
      o.mallocs += p.mallocs - points_[i - 1].mallocs;
      ++o.count;
    }
    points_.clear();
    used_ = 0;
  }
  const std::map<std::string, Op>& ops() const { return ops_; }
  const std::vector<std::string>& order() const { return order_; }

 private:
  struct Point {
    std::string op;
    double host = 0;
    int64_t allocs = 0, mallocs = 0;
  };
  void point(const char* op) {
    Point p;
    p.op = op ? op : "";
    const auto [a, m] = alloc_counts();
    p.allocs = a, p.mallocs = m;
#if defined(LONGSHOT_HAS_CUDA)
    if (cuda_) {
      if (used_ == events_.size()) {
        cudaEvent_t e;
        cudaEventCreate(&e);
        events_.push_back(e);
      }
      cudaEventRecord(events_[used_++], ::longshot::cuda::DeviceStream(torch::Device(torch::kCUDA, 0)).get());
    }
#endif
    p.host = bench::now_ms();
    points_.push_back(std::move(p));
  }
  double gpu_span(size_t a, size_t b) const {
#if defined(LONGSHOT_HAS_CUDA)
    if (cuda_) {
      float ms = 0;
      cudaEventElapsedTime(&ms, events_[a], events_[b]);
      return ms;
    }
#endif
    return points_[b].host - points_[a].host;
  }
  bool cuda_;
  std::vector<Point> points_;
#if defined(LONGSHOT_HAS_CUDA)
  std::vector<cudaEvent_t> events_;
#endif
  size_t used_ = 0;
  std::map<std::string, Profiler::Op> ops_;
  std::vector<std::string> order_;
};

std::string fmt(double v, const char* f = "%.3f") {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

bool is_attention_op(const std::string& op) { return op == "self-attention" || op == "mask build"; }

void export_mask(const attention::BlockMask& m, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(m.row_offsets.data()), std::streamsize(m.row_offsets.size() * sizeof(int32_t)));
  f.write(reinterpret_cast<const char*>(m.col_indices.data()), std::streamsize(m.col_indices.size() * sizeof(int32_t)));
  if (!f) throw std::runtime_error("cannot write mask file '" + path + "'");
}

struct Options {
  std::vector<std::string> grids, modes;
  int layers = 2, reps = 3;
  bool fp8 = false, cuda_graph = false;
  std::string json_path = "bench_block.json", mask_dir, residual = "fp32";
};

// False (after saying why on stderr) for a bad command line.
bool parse_options(int argc, char** argv, Options& o) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--fp8") { o.fp8 = true; continue; }
    if (a == "--cuda-graph") { o.cuda_graph = true; continue; }
    if (i + 1 >= args.size()) { std::fprintf(stderr, "bench_block: %s needs a value\n", a.c_str()); return false; }
    const auto& v = args[++i];
    if (a == "--grid") o.grids.push_back(v);
    else if (a == "--mode") o.modes.push_back(v);
    else if (a == "--layers") o.layers = std::stoi(v);
    else if (a == "--reps") o.reps = std::stoi(v);
    else if (a == "--json") o.json_path = v;
    else if (a == "--export-masks") o.mask_dir = v;
    else if (a == "--residual") o.residual = v;
    else { std::fprintf(stderr, "bench_block: unknown option %s\n", a.c_str()); return false; }
  }
  return true;
}

// Per-block means over the profiled forwards of one row.
struct BlockTimes {
  double block = 0, attn = 0, allocs = 0, mallocs = 0;
};

// The model (random weights, --layers blocks) and what the rows add to the tables and the JSON.
class BlockBench {
 public:
  BlockBench(const Options& opt, bool cuda) : opt_(opt), cuda_(cuda), model_(opt.layers, cuda) {}

  // The --fp8 verdict and the run's header line; creates the mask folder.
  void announce() {
    model_.dit->set_residual_precision(model::parse_residual_precision(opt_.residual));
    if (opt_.residual != "fp32") std::printf("bench_block: residual stream in %s\n", opt_.residual.c_str());
    if (opt_.fp8) {
      fp8_skip_ = model::fp8_unsupported_reason(model_.device);
      if (!fp8_skip_.empty()) std::printf("bench_block: --fp8 rows skipped: %s\n", fp8_skip_.c_str());
    }
    std::printf("bench_block: wan2.1-t2v-1.3b, %d of %d blocks, random %s weights on %s, %d profiled forwards per row\n",
                opt_.layers, model_.full_layers, cuda_ ? "bf16" : "fp32", cuda_ ? "CUDA" : "CPU (smoke run only)",
                opt_.reps);
    if (!opt_.mask_dir.empty()) std::filesystem::create_directories(opt_.mask_dir);
  }

  // Every mode (and the FP8 repeats) on one grid.
  void run_grid(const std::string& gtext) {
    const auto grid = attention::TokenGrid::parse(gtext);
    const auto in = bench::warmed_inputs(model_, grid, /*measure_time=*/false);
    std::vector<std::pair<std::string, model::LinearPrecision>> runs;
    for (const auto& m : opt_.modes) runs.push_back({m, model::LinearPrecision::Native});
    if (opt_.fp8 && fp8_skip_.empty())
      for (const auto& m : {"dense-sdpa", "radial90"}) runs.push_back({m, model::LinearPrecision::Fp8});
    for (const auto& [mode, precision] : runs) {
      const std::string label = std::string(gtext) + " " + mode + (precision == model::LinearPrecision::Fp8 ? " fp8" : "") +
                                (opt_.residual == "fp32" ? "" : " res-" + opt_.residual);
      try {
        run_mode(gtext, grid, in, mode, precision, label);
      } catch (const std::exception& e) {
        std::printf("bench_block: %s failed: %s\n", label.c_str(), e.what());
        model_.dit->op_marker = nullptr;
      }
    }
    model_.dit->set_linear_precision(model::LinearPrecision::Native);
  }

  // Both tables on stdout, the JSON to --json.
  void report() const {
    std::printf("%s", summary_.c_str());
    std::printf("\nPer op (mean per block; GPU = CUDA-event span on the GPU timeline, host = enqueue + waits):\n\n"
                "| run | op | GPU ms | share | host ms | allocator requests | cudaMalloc |\n|---|---|---|---|---|---|---|\n%s",
                per_op_.c_str());
    if (opt_.cuda_graph)
      std::printf("\nCUDA graph (forward of %d blocks, median of %d; eager = the unprofiled median above):\n\n"
                  "| run | eager forward (ms) | graph replay (ms) | speedup | eager / block | graph / block | "
                  "max abs diff |\n|---|---|---|---|---|---|---|\n%s",
                  opt_.layers, opt_.reps, graph_rows_.c_str());
    std::ofstream(opt_.json_path) << out_.dump(2) << "\n";
    std::printf("\nJSON: %s\n", opt_.json_path.c_str());
  }

 private:
  void sync() const {
    if (cuda_) torch::cuda::synchronize();
  }

  // One row: a warm-up forward (and radial90's mask export), --reps unprofiled forwards (the
  // median is the model as it runs), then --reps forwards under the Profiler.
  void run_mode(const std::string& gtext, const attention::TokenGrid& grid, const bench::GridInputs& in,
                const std::string& mode, model::LinearPrecision precision, const std::string& label) {
    std::unique_ptr<attention::MaskPolicy> policy;
    model::AttentionPlan ctl;
    ctl.measure_time = false;
    ctl.backend = cuda_ ? attention::Backend::Cuda : attention::Backend::Auto;
    ctl.step = 25;
    ctl.num_steps = 50;
    if (mode == "dense-sdpa") ctl.backend = attention::Backend::Sdpa;  // no policy: every layer dense
    else if (mode == "radial90") policy = attention::create_policy("radial", {{"keep_ratio", 0.1}});
    else policy = attention::create_policy(mode);
    ctl.policy = policy.get();
    model_.dit->set_linear_precision(precision);
    model::AttentionProbe probe;
    probe.keep_masks = mode == "radial90" && !opt_.mask_dir.empty();
    // Warm-up (mask caches, FP8 weights).
    const auto first = model_.dit->forward_with_stats(in.x, in.t, in.text, ctl, probe);
    sync();
    if (probe.keep_masks && !first.stats.layer_masks.empty() && first.stats.layer_masks[0])
      export_first_mask(gtext, grid, *first.stats.layer_masks[0]);
    // Unprofiled forwards: the model as it runs (median).
    std::vector<double> fwd;
    for (int r = 0; r < opt_.reps; ++r) {
      const double t0 = bench::now_ms();
      model_.dit->forward(in.x, in.t, in.text, ctl);
      sync();
      fwd.push_back(bench::now_ms() - t0);
    }
    std::sort(fwd.begin(), fwd.end());
    if (opt_.cuda_graph && precision == model::LinearPrecision::Native) graph_row(label, in, ctl, fwd[fwd.size() / 2]);
    Profiler prof(cuda_);
    model_.dit->op_marker = &prof;
    for (int r = 0; r < opt_.reps; ++r) {
      model_.dit->forward(in.x, in.t, in.text, ctl);
      sync();
      prof.collect();
    }
    model_.dit->op_marker = nullptr;
    add_row(gtext, grid, mode, precision, label, prof, fwd[fwd.size() / 2], first.stats.mean_sparsity());
  }

  // The same forward through a CUDA graph: one capturing call, then --reps timed replays.
  void graph_row(const std::string& label, const bench::GridInputs& in, const model::AttentionPlan& ctl, double eager_ms) {
    model::GraphForward graphs(model_.dit);
    const auto eager = model_.dit->forward(in.x, in.t, in.text, ctl);
    const auto first = graphs.forward(in.x, in.t, in.text, ctl);
    sync();
    if (!graphs.last_replayed()) {
      graph_rows_ += "| " + label + " | " + fmt(eager_ms) + " | eager: " + graphs.last_eager_reason() + " | | | | |\n";
      out_["graph_rows"].push_back({{"run", label}, {"eager_ms", eager_ms}, {"refused", graphs.last_eager_reason()}});
      return;
    }
    const double diff = (first.to(torch::kFloat) - eager.to(torch::kFloat)).abs().max().item<double>();
    std::vector<double> ms;
    for (int r = 0; r < opt_.reps; ++r) {
      const double t0 = bench::now_ms();
      graphs.forward(in.x, in.t, in.text, ctl);
      sync();
      ms.push_back(bench::now_ms() - t0);
    }
    std::sort(ms.begin(), ms.end());
    const double graph_ms = ms[ms.size() / 2];
    graph_rows_ += "| " + label + " | " + fmt(eager_ms) + " | " + fmt(graph_ms) + " | " + fmt(eager_ms / graph_ms, "%.2fx") +
                   " | " + fmt(eager_ms / opt_.layers) + " | " + fmt(graph_ms / opt_.layers) + " | " + fmt(diff, "%.3g") + " |\n";
    out_["graph_rows"].push_back({{"run", label}, {"eager_ms", eager_ms}, {"graph_ms", graph_ms}, {"max_abs_diff", diff}});
    std::fprintf(stderr, "  %-34s cuda graph %.2f ms vs eager %.2f ms\n", label.c_str(), graph_ms, eager_ms);
  }

  void export_first_mask(const std::string& gtext, const attention::TokenGrid& grid, const attention::BlockMask& m) {
    const std::string name = "radial90_" + std::to_string(grid.size()) + ".bin";
    export_mask(m, opt_.mask_dir + "/" + name);
    out_["masks"].push_back({{"grid", gtext}, {"n", grid.size()}, {"file", name}, {"heads", m.num_heads},
                             {"block_size", m.block_size}, {"num_q_blocks", m.num_q_blocks},
                             {"num_k_blocks", m.num_k_blocks}, {"block_sparsity", m.block_sparsity()}});
  }

  BlockTimes block_times(const Profiler& prof) const {
    const double per = 1.0 / (double(opt_.layers) * opt_.reps);
    BlockTimes b;
    for (const auto& name : prof.order()) {
      const auto& o = prof.ops().at(name);
      b.block += o.gpu_ms * per;
      if (is_attention_op(name)) b.attn += o.gpu_ms * per;
      b.allocs += double(o.allocs) * per;
      b.mallocs += double(o.mallocs) * per;
    }
    return b;
  }

  // The row's per-op lines, its summary line and its JSON row (with the per-op list).
  void add_row(const std::string& gtext, const attention::TokenGrid& grid, const std::string& mode,
               model::LinearPrecision precision, const std::string& label, const Profiler& prof, double forward,
               double sparsity) {
    const double per = 1.0 / (double(opt_.layers) * opt_.reps);
    const BlockTimes b = block_times(prof);
    nlohmann::json jops = nlohmann::json::array();
    for (const auto& name : prof.order()) {
      const auto& o = prof.ops().at(name);
      per_op_ += "| " + label + " | " + name + " | " + fmt(o.gpu_ms * per) + " | " +
                 fmt(100 * o.gpu_ms * per / std::max(b.block, 1e-9), "%.0f %%") + " | " + fmt(o.host_ms * per) + " | " +
                 fmt(double(o.allocs) * per, "%.1f") + " | " + fmt(double(o.mallocs) * per, "%.2f") + " |\n";
      jops.push_back({{"op", name}, {"gpu_ms", o.gpu_ms * per}, {"host_ms", o.host_ms * per},
                      {"allocs", double(o.allocs) * per}, {"mallocs", double(o.mallocs) * per}});
    }
    const double step = 2.0 * (forward + double(model_.full_layers - opt_.layers) * b.block);
    char line[512];
    std::snprintf(line, sizeof line, "| %lld | %s | %s | %.1f %% | %.2f | %.2f | %.2f | %.2f | %.3f | %.0f | %.1f |\n",
                  static_cast<long long>(grid.size()), mode.c_str(), model::linear_precision_name(precision),
                  100 * sparsity, b.block, b.attn, b.block - b.attn, forward / opt_.layers, step / 1000, b.allocs,
                  b.mallocs);
    summary_ += line;
    out_["rows"].push_back({{"grid", gtext}, {"n", grid.size()}, {"mode", mode},
                            {"precision", model::linear_precision_name(precision)}, {"residual", opt_.residual},
                            {"sparsity", sparsity},
                            {"block_ms", b.block}, {"attention_ms", b.attn}, {"rest_ms", b.block - b.attn},
                            {"forward_ms", forward}, {"step_ms_est", step}, {"allocs_per_block", b.allocs},
                            {"mallocs_per_block", b.mallocs}, {"ops", jops}});
    std::fprintf(stderr, "  %-34s block %.2f ms (attention %.2f)\n", label.c_str(), b.block, b.attn);
  }

  const Options& opt_;
  const bool cuda_;
  bench::BenchModel model_;
  std::string fp8_skip_;  // why --fp8 rows cannot run here ("" when they can)
  nlohmann::json out_ = {{"layers_timed", opt_.layers}, {"reps", opt_.reps}, {"rows", nlohmann::json::array()},
                         {"masks", nlohmann::json::array()}};
  std::string summary_ = "\n| tokens | mode | linears | block sparsity | block (ms, GPU) | attention + mask (ms) | rest of block (ms) | "
                         "forward / L (ms, unprofiled) | step est. (s) | allocator requests / block | cudaMalloc / block |\n"
                         "|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::string per_op_;  // the per-op table's rows
  std::string graph_rows_;  // --cuda-graph's table rows
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_options(argc, argv, opt)) return 2;
  const bool cuda = torch::cuda::is_available();
  if (opt.grids.empty()) opt.grids = bench::default_grids(cuda);
  if (opt.modes.empty()) opt.modes = {"dense-sdpa", "dense", "radial90", "radial-dynamic", "dfs", "lvsa"};
  BlockBench bench(opt, cuda);
  torch::NoGradGuard no_grad;
  try {
    bench.announce();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_block: %s\n", e.what());
    return 2;
  }
  for (const auto& gtext : opt.grids) bench.run_grid(gtext);
  bench.report();
  return 0;
}

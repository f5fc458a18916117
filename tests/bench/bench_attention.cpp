// bench_attention: the block-sparse CUDA kernel on Wan2.1-1.3B attention shapes (bf16, B=1,
// H=12, D=128, N = F × 30 × 52), dense (full mask) and every mode at ≈50/80/90/95 % sparsity,
// with GPU mask-building time. Prints a table, writes JSON (--json) and exports every mask
// (--export-dir) so tests/bench/flex_baseline.py times torch SDPA backends and FlexAttention on
// the same masks in the same run and prints the side-by-side table.
//
//   bench_attention [--quick] [--json out.json] [--export-dir dir] [--iters n]
//
// Modes: radial and local-anchors (once called lvsa) masks come from their policies (policies.h, CPU,
// static per generation). The dynamic modes' CPU scorers do not scale to 196k tokens, so here
// they are built on the GPU with the adapter's builder (block-pooled Q/K scores → per-row top-k):
// "dfs-gpu" (per head, on Hilbert-ordered tokens) and "radial-dynamic-gpu" (top-k inside the
// radial candidate set of twice the budget). Their build time (block means of Q and K, one
// batched matmul, the top-k kernel) is measured three ways, as shares of the sparse attention
// time: from Q/K with the host in the loop (events around the calls); the same on the GPU alone
// (launches queued behind a spin kernel, gpu_queue.h); and as a generation step pays it, where
// the fused RMSNorm+RoPE kernel that writes Q/K takes the block means on the side: the GPU time
// that adds to those two kernels plus the selection from the means.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <stdexcept>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/attention/block_mask.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/policies.h"
#include "engine/attention/token_grid.h"
#include "engine/common/log.h"

#if LONGSHOT_HAS_CUDA
#include <cuda_runtime_api.h>

#include "engine/attention/cuda/torch_adapter.h"
#include "engine/common/cuda/cuda_check.h"
#include "engine/model/cuda/fused_ops.h"
#include "tests/bench/gpu_queue.h"
#endif

namespace la = longshot::attention;

namespace {

struct Options {
  bool quick = false;
  std::string json_path;
  std::string export_dir;
  int iters = 0;  // 0: by size
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) throw longshot::ParameterError(name, "needs a value");
      return argv[++i];
    };
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--json") {
      o.json_path = value("--json");
    } else if (a == "--export-dir") {
      o.export_dir = value("--export-dir");
    } else if (a == "--iters") {
      o.iters = std::stoi(value("--iters"));
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: bench_attention [--quick] [--json out.json] [--export-dir dir] [--iters n]\n");
      std::exit(0);
    } else {
      throw longshot::ParameterError(a, "unknown option (see --help)");
    }
  }
  return o;
}

#if LONGSHOT_HAS_CUDA
namespace lc = longshot::attention::cuda;

// RAII CUDA event pair on the legacy default stream (LibTorch's default current stream).
class EventTimer {
 public:
  EventTimer() {
    LONGSHOT_CUDA_CHECK(cudaEventCreate(&start_));
    LONGSHOT_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    LONGSHOT_CUDA_CHECK_LOG(cudaEventDestroy(start_));
    LONGSHOT_CUDA_CHECK_LOG(cudaEventDestroy(stop_));
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  // Median milliseconds of `iters` timed calls after `warmup` untimed ones (the host's launch
  // time included when the GPU waits for it).
  double median_ms(const std::function<void()>& fn, int warmup, int iters) { return timed(fn, warmup, iters, false); }
  // The same, each timed call queued behind a 2 ms spin: GPU time only (see gpu_queue.h).
  double gpu_median_ms(const std::function<void()>& fn, int warmup, int iters) { return timed(fn, warmup, iters, true); }

 private:
  double timed(const std::function<void()>& fn, int warmup, int iters, bool queue_ahead) {
    for (int i = 0; i < warmup; ++i) fn();
    std::vector<double> t;
    for (int i = 0; i < iters; ++i) {
      if (queue_ahead) longshot::bench::gpu_spin(2000.0, nullptr);
      LONGSHOT_CUDA_CHECK(cudaEventRecord(start_, nullptr));
      fn();
      LONGSHOT_CUDA_CHECK(cudaEventRecord(stop_, nullptr));
      LONGSHOT_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0;
      LONGSHOT_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }

  cudaEvent_t start_{}, stop_{};
};

struct Row {
  int64_t n = 0;
  std::string mode;
  double target = 0;
  double block_sparsity = 0;
  double token_sparsity = 0;
  double ms = 0;
  int64_t mask_heads = 1;
  double build_ms = -1;  // < 0: static mask (built once per generation, on the CPU)
  double build_gpu_ms = -1;    // the same build's GPU time (launches queued ahead)
  double build_model_ms = -1;  // what it adds in the model: pooling in RMSNorm+RoPE, selection from the means
  std::string mask_file;
};

void export_mask(const la::BlockMask& m, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw longshot::IoError("cannot write mask file '" + path + "'");
  f.write(reinterpret_cast<const char*>(m.row_offsets.data()), m.row_offsets.size() * sizeof(int32_t));
  f.write(reinterpret_cast<const char*>(m.col_indices.data()), m.col_indices.size() * sizeof(int32_t));
  if (!f) throw longshot::IoError("short write to mask file '" + path + "'");
}

std::string gpu_name() {
  cudaDeviceProp prop{};
  LONGSHOT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  return prop.name;
}

la::BlockMask policy_mask(const std::string& name, const la::ParamValues& params, const la::TokenGrid& grid,
                          int64_t heads) {
  auto policy = la::create_policy(name, params);
  la::MaskRequest req;
  req.grid = grid;
  req.block_size = 128;
  req.num_heads = heads;
  return *policy->build(req);
}

// local-anchors has no sparsity knob: pick the window that lands closest to the target.
la::BlockMask local_anchors_mask_near(double target, const la::TokenGrid& grid, int64_t heads) {
  la::BlockMask best;
  double best_gap = std::numeric_limits<double>::max();
  for (double wf : {0.0, 1.0, 2.0, 3.0, 5.0, 8.0})
    for (double sw : {2.0, 4.0, 8.0, 16.0, 1e6}) {
      auto m = policy_mask("local-anchors", {{"window_frames", wf}, {"spatial_window", sw}}, grid, heads);
      const double gap = std::abs(m.block_sparsity() - target);
      if (gap < best_gap) best_gap = gap, best = std::move(m);
    }
  return best;
}

// Wan2.1-1.3B attention: 12 heads of 128, the kernel's 128-token blocks.
constexpr int64_t kHeads = 12, kHeadDim = 128, kBlock = 128;
constexpr double kTargets[] = {0.5, 0.8, 0.9, 0.95};

// One token grid: its Q, K, V (seeded bf16) and the Q/K block means the fused RMSNorm+RoPE
// kernel writes; each mode measured here appends its row to `rows`.
class GridBench {
 public:
  GridBench(const la::TokenGrid& grid, const Options& opt, EventTimer& timer, std::vector<Row>& rows)
      : grid_(grid), opt_(opt), timer_(timer), rows_(rows), n_(grid.size()),
        iters_(opt.iters > 0 ? opt.iters : (n_ < 50000 ? 20 : n_ < 150000 ? 6 : 3)) {
    torch::manual_seed(0);
    const auto opts = bf16_cuda();
    q_ = torch::randn({1, kHeads, n_, kHeadDim}, opts);
    k_ = torch::randn({1, kHeads, n_, kHeadDim}, opts);
    v_ = torch::randn({1, kHeads, n_, kHeadDim}, opts);
    nb_ = la::BlockMask::blocks_for(n_, kBlock);
    std::fprintf(stderr, "N=%lld (%s): %lld blocks, %d iters\n", static_cast<long long>(n_),
                 grid_.to_string().c_str(), static_cast<long long>(nb_), iters_);
  }

  void run() {
    measure_fused_pooling();
    static_modes();
    dynamic_modes();
  }

 private:
  static torch::TensorOptions bf16_cuda() {
    return torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  }

  // In the model Q and K come out of the fused RMSNorm+RoPE kernel ([B, N, H·D] rows), which
  // takes the block means on the side for a dynamic mode (fused_ops.h). What a mask refresh adds
  // there: the GPU time the pooling adds to those two kernels (with the zeroing of the means;
  // 0 when the pooling variant is not slower) plus the selection from the means.
  void measure_fused_pooling() {
    const auto opts = bf16_cuda();
    const int64_t N = n_, C = kHeads * kHeadDim, D = kHeadDim;
    const auto y_q = torch::randn({1, N, C}, opts), y_k = torch::randn({1, N, C}, opts);
    const auto norm_w = torch::rand({C}, opts.dtype(torch::kFloat32)) + 0.5;
    const auto angles = torch::rand({N, D / 2}, opts.dtype(torch::kFloat32)) * 6.28;
    const auto rope_cos = torch::cos(angles), rope_sin = torch::sin(angles);
    auto out_q = torch::empty_like(y_q), out_k = torch::empty_like(y_k);
    qp_ = torch::zeros({1, kHeads, nb_, D}, opts.dtype(torch::kFloat32));
    kp_ = torch::zeros_like(qp_);
    auto norm_rope = [&](const torch::Tensor& y, torch::Tensor& out, float* pooled) {
      longshot::model::cuda::rmsnorm_rope(y.data_ptr(), norm_w.data_ptr<float>(), rope_cos.data_ptr<float>(),
                                          rope_sin.data_ptr<float>(), false, N, static_cast<int>(C), static_cast<int>(D), N,
                                          1e-6f, out.data_ptr(), nullptr, static_cast<int>(kBlock), pooled);
    };
    const double norm_ms = timer_.gpu_median_ms([&] { norm_rope(y_q, out_q, nullptr), norm_rope(y_k, out_k, nullptr); }, 2, 10);
    const double norm_pool_ms = timer_.gpu_median_ms(
        [&] {
          qp_.zero_(), kp_.zero_();
          norm_rope(y_q, out_q, qp_.data_ptr<float>()), norm_rope(y_k, out_k, kp_.data_ptr<float>());
        },
        2, 10);
    pool_added_ms_ = std::max(0.0, norm_pool_ms - norm_ms);
    std::fprintf(stderr, "  RMSNorm+RoPE of Q and K: %.3f ms; with the block means: %.3f ms (pooling adds %.3f ms)\n", norm_ms,
                 norm_pool_ms, pool_added_ms_);
    const auto means_check = lc::block_mean_pool(out_q.view({1, N, kHeads, D}).transpose(1, 2), kBlock);
    if (!torch::allclose(means_check, qp_, 1e-4, 1e-4)) throw std::runtime_error("fused block means differ from block_mean_pool");
  }

  // Times the kernel on `dm` (the device copy of `m`), exports the mask when asked, adds the row.
  void add(const std::string& mode, double target, const la::BlockMask& m, double build_ms, lc::DeviceBlockMask& dm,
           lc::KernelPath path = lc::KernelPath::Auto, double build_gpu_ms = -1, double build_model_ms = -1) {
    Row r;
    r.n = n_;
    r.mode = mode;
    r.target = target;
    r.block_sparsity = m.block_sparsity();
    r.token_sparsity = m.token_sparsity();
    r.build_ms = build_ms;
    r.build_gpu_ms = build_gpu_ms;
    r.build_model_ms = build_model_ms;
    r.mask_heads = m.num_heads;
    r.ms = timer_.median_ms([&] { lc::block_sparse_attention(q_, k_, v_, dm, 0.0, path); }, 2, iters_);
    if (!opt_.export_dir.empty()) {
      char name[128];
      std::snprintf(name, sizeof name, "mask_n%lld_%s_%02d.bsr", static_cast<long long>(n_), mode.c_str(),
                    static_cast<int>(std::lround(target * 100)));
      r.mask_file = name;
      export_mask(m, opt_.export_dir + "/" + name);
    }
    char build_note[128] = "";
    if (build_ms >= 0)
      std::snprintf(build_note, sizeof build_note, "  build %.3f ms (GPU alone %.3f, in model %.3f)", build_ms,
                    build_gpu_ms, build_model_ms);
    std::fprintf(stderr, "  %-20s target %.2f  sparsity %.3f  %9.3f ms%s\n", mode.c_str(), target, r.token_sparsity,
                 r.ms, build_note);
    rows_.push_back(r);
  }

  // Dense, then the static masks (radial, local-anchors) built once on the CPU.
  void static_modes() {
    {
      const auto full = la::BlockMask::full(n_, kBlock);
      auto dm = lc::upload_mask(full, torch::kCUDA, kHeads);
      add("dense", 0.0, full, -1, dm);
      // The portable mma.sync kernel on the same mask, for the record (the Hopper kernel is
      // "dense" wherever it applies).
      if (lc::hopper_kernel_applies(q_, kBlock)) add("dense-mma", 0.0, full, -1, dm, lc::KernelPath::Mma);
    }
    for (const double s : kTargets) {
      const auto m = policy_mask("radial", {{"keep_ratio", 1.0 - s}}, grid_, kHeads);
      auto dm = lc::upload_mask(m, torch::kCUDA, kHeads);
      add("radial", s, m, -1, dm);
    }
    for (const double s : kTargets) {
      const auto m = local_anchors_mask_near(s, grid_, kHeads);
      auto dm = lc::upload_mask(m, torch::kCUDA, kHeads);
      add("local-anchors", s, m, -1, dm);
    }
  }

  // A dynamic mode's per-head mask rebuilt from Q/K on the GPU, timed with the host in the loop
  // (build_ms), on the GPU alone, and as the model pays it (pooling fused, see above).
  void time_dynamic_build(const std::string& mode, double s, const torch::Tensor& cand) {
    const int64_t keep = std::max<int64_t>(1, std::llround((1.0 - s) * nb_));
    const auto ordering = mode == "dfs-gpu" ? la::OrderingKind::Hilbert : la::OrderingKind::Raster;
    lc::DeviceBlockMask dm;
    auto build = [&] {
      dm = lc::select_topk_from_means(lc::block_mean_pool(q_, kBlock), lc::block_mean_pool(k_, kBlock), keep, n_, kBlock,
                                      ordering, cand);
    };
    const double build_ms = timer_.median_ms(build, 1, std::min(iters_, 5));
    const double gpu_ms = timer_.gpu_median_ms(build, 1, std::min(iters_, 5));
    const double select_ms = timer_.gpu_median_ms(
        [&] { lc::select_topk_from_means(qp_, kp_, keep, n_, kBlock, ordering, cand); }, 1, std::min(iters_, 5));
    add(mode, s, lc::download_mask(dm), build_ms, dm, lc::KernelPath::Auto, gpu_ms, pool_added_ms_ + select_ms);
  }

  void dynamic_modes() {
    for (const double s : kTargets) time_dynamic_build("dfs-gpu", s, {});
    for (const double s : kTargets) {
      // Top-k inside the radial candidate set of twice the budget.
      const auto cand = policy_mask("radial", {{"keep_ratio", std::min(1.0, 2.0 * (1.0 - s))}}, grid_, 1);
      const auto cand_dense = cand.to_dense();
      const auto cand_keep =
          torch::from_blob(const_cast<uint8_t*>(cand_dense.data()), {nb_, nb_}, torch::kUInt8).to(torch::kCUDA);
      time_dynamic_build("radial-dynamic-gpu", s, cand_keep);
    }
  }

  const la::TokenGrid grid_;
  const Options& opt_;
  EventTimer& timer_;
  std::vector<Row>& rows_;
  const int64_t n_;
  const int iters_;
  int64_t nb_ = 0;
  torch::Tensor q_, k_, v_;
  torch::Tensor qp_, kp_;      // Q's and K's block means from the fused RMSNorm+RoPE kernel
  double pool_added_ms_ = 0;   // what the pooling adds to that kernel (GPU time)
};

// Table: speedup against our own dense kernel here; flex_baseline.py adds SDPA and Flex.
void print_table(const std::vector<Row>& rows) {
  std::printf("\n| N | mode | target | sparsity (token) | ours ms | TFLOP/s eff | speedup vs our dense | ratio to ideal | mask build %% (host in loop / GPU alone / in model) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  double dense_ms = 0;
  for (const auto& r : rows) {
    if (r.mode == "dense") dense_ms = r.ms;
    const double flops = 4.0 * kHeads * static_cast<double>(r.n) * r.n * kHeadDim * (1.0 - r.token_sparsity);
    const double speedup = dense_ms / r.ms;
    const double ideal = 1.0 / std::max(1e-9, 1.0 - r.token_sparsity);
    char build[64] = "static";
    if (r.build_ms >= 0)
      std::snprintf(build, sizeof build, "%.1f / %.1f / %.1f", 100.0 * r.build_ms / r.ms, 100.0 * r.build_gpu_ms / r.ms,
                    100.0 * r.build_model_ms / r.ms);
    std::printf("| %lld | %s | %.0f%% | %.1f%% | %.3f | %.0f | %.2f× | %.2f | %s |\n", static_cast<long long>(r.n),
                r.mode.c_str(), r.target * 100, r.token_sparsity * 100, r.ms, flops / (r.ms * 1e9), speedup,
                speedup / ideal, build);
  }
}

// The JSON that tests/bench/flex_baseline.py reads (its keys are that script's: keep them).
void write_json(const std::string& path, const std::vector<Row>& rows) {
  nlohmann::json j;
  j["gpu"] = gpu_name();
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  j["date"] = date;
  j["dtype"] = "bf16";
  j["batch"] = 1;
  j["heads"] = kHeads;
  j["head_dim"] = kHeadDim;
  j["block_size"] = kBlock;
  for (const auto& r : rows)
    j["results"].push_back({{"n", r.n}, {"mode", r.mode}, {"target_sparsity", r.target},
                            {"block_sparsity", r.block_sparsity}, {"token_sparsity", r.token_sparsity},
                            {"ours_ms", r.ms}, {"mask_build_ms", r.build_ms},
                            {"mask_build_gpu_ms", r.build_gpu_ms}, {"mask_build_model_ms", r.build_model_ms},
                            {"mask_heads", r.mask_heads}, {"mask_file", r.mask_file}});
  std::ofstream f(path);
  if (!f) throw longshot::IoError("cannot write --json file '" + path + "'");
  f << j.dump(2) << "\n";
}

int run(const Options& opt) {
  const std::vector<int64_t> frames = opt.quick ? std::vector<int64_t>{21} : std::vector<int64_t>{21, 63, 126};
  if (!opt.export_dir.empty()) std::filesystem::create_directories(opt.export_dir);
  EventTimer timer;
  std::vector<Row> rows;
  torch::NoGradGuard no_grad;
  for (const int64_t f : frames) GridBench(la::TokenGrid{f, 30, 52}, opt, timer, rows).run();
  print_table(rows);
  if (!opt.json_path.empty()) write_json(opt.json_path, rows);
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  longshot::init_logging();
  try {
    const Options opt = parse(argc, argv);
#if LONGSHOT_HAS_CUDA
    if (!lc::device_available()) {
      std::printf("bench_attention: skipped, %s\n", lc::unavailable_reason().c_str());
      return 0;
    }
    return run(opt);
#else
    (void)opt;
    std::printf("bench_attention: skipped, this build has no CUDA kernels (configure with -DLONGSHOT_CUDA=ON)\n");
    return 0;
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
}

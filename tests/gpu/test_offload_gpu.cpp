// GPU tests of the memory plan (issue 20; model/block_store.h): --offload (block swap from pinned
// host memory on a side stream, one block ahead) gives the resident model's output within bf16
// noise at a lower peak, also with fp8 block weights; --max-gpu-memory's cap makes an allocation
// beyond it fail. Wan2.1-1.3B-shaped blocks (dim 1536, ffn 8960, 12 heads), 8 of them, random
// weights, a 3 × 30 × 52 latent (1170 tokens). Skipped without a GPU. Prints peaks and times.
#include <gtest/gtest.h>

#ifdef LONGSHOT_HAS_CUDA

#include <chrono>
#include <cstdio>

#include <torch/cuda.h>

#include "engine/common/cuda_memory.h"
#include "engine/common/error.h"
#include "engine/model/block_store.h"
#include "engine/model/dit.h"
#include "engine/model/weights.h"
#include "tests/common/fp8_checkpoint.h"
#include "tests/common/temp_dir.h"
#include "tests/gpu/skip_without_gpu.h"

#if defined(LONGSHOT_TORCH_CUDA) && LONGSHOT_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using namespace longshot;
using namespace longshot::model;

namespace {

const torch::Device kCuda(torch::kCUDA, 0);

DiTConfig eight_blocks() {
  auto c = find_config("wan2.1-t2v-1.3b");
  c.name = "offload-test";
  c.num_layers = 8;
  return c;
}

struct Inputs {
  torch::Tensor x, t, text;
};

Inputs inputs(const DiTConfig& c) {
  auto gen = at::detail::createCPUGenerator(3);
  return {torch::randn({1, c.in_channels, 3, 30, 52}, gen, torch::kFloat).to(kCuda), torch::full({1}, 700.0).to(kCuda),
          torch::randn({1, 64, c.text_dim}, gen, torch::kFloat).to(kCuda)};
}

struct Timed {
  torch::Tensor out;
  int64_t peak = 0;
  double ms = 0;
};

// Two forwards (the second with the text K/V cached); the peak and time of the second.
Timed forward(WanDiT& m, const Inputs& in) {
  torch::NoGradGuard no_grad;
  m->forward(in.x, in.t, in.text, AttentionPlan{});
  torch::cuda::synchronize();
  reset_peak_cuda_memory(kCuda);
  const auto t0 = std::chrono::steady_clock::now();
  Timed r;
  r.out = m->forward(in.x, in.t, in.text, AttentionPlan{}).to(torch::kCPU, torch::kFloat);
  torch::cuda::synchronize();
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  r.peak = peak_cuda_memory(kCuda);
  return r;
}

double rel_l2(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>() /
         std::max(1e-30, b.to(torch::kDouble).norm().item<double>());
}

int64_t block_bytes(const WanDiT& m) {
  int64_t n = 0;
  for (const auto& p : m->blocks->parameters()) n += int64_t(p.numel()) * 2;  // bf16
  return n;
}

}  // namespace

TEST(OffloadGpu, SameOutputLowerPeak) {
  SKIP_WITHOUT_GPU();
  const auto c = eight_blocks();
  const auto in = inputs(c);
  Timed resident, offloaded;
  int64_t blocks = 0;
  {
    WanDiT m(c);
    m->init_random(11);
    m->eval();
    blocks = block_bytes(m);
    m->place(kCuda, torch::kBFloat16, /*offload=*/false);
    resident = forward(m, in);
  }
  WanDiT m(c);
  m->init_random(11);
  m->eval();
  // As run_job places it: "cuda" without an index.
  m->place(torch::Device(torch::kCUDA), torch::kBFloat16, /*offload=*/true);
  for (const auto& p : m->blocks->parameters()) {
    EXPECT_TRUE(p.device().is_cpu());
    EXPECT_TRUE(p.is_pinned());
  }
  offloaded = forward(m, in);
  const double err = rel_l2(offloaded.out, resident.out);
  std::printf("offload: resident peak %.3f GiB %.1f ms; offloaded peak %.3f GiB %.1f ms; blocks %.3f GiB; rel-L2 %.2e; "
              "prefetched %lld of %lld acquires\n",
              double(resident.peak) / (1 << 30), resident.ms, double(offloaded.peak) / (1 << 30), offloaded.ms,
              double(blocks) / (1 << 30), err, (long long)m->stored_blocks()->prefetched(),
              (long long)(m->stored_blocks()->prefetched() + m->stored_blocks()->built()));
  // The same bf16 arithmetic on the same weights: equal up to bf16 noise (in practice bit-equal).
  EXPECT_LE(err, 1e-2);
  // Resident: all 8 blocks; offloaded: about two at a time (the running one and the next).
  EXPECT_LT(offloaded.peak, resident.peak - blocks / 2);
  EXPECT_GT(m->stored_blocks()->prefetched(), 0);  // the side stream was used
  EXPECT_EQ(m->stored_blocks()->placements(), 1);  // never re-placed per block
}

TEST(OffloadGpu, Fp8BlockWeightsWithAndWithoutOffload) {
  SKIP_WITHOUT_GPU();
  const auto c = eight_blocks();
  const auto in = inputs(c);
  longshot::testing::TempDir dir("longshot_offload_gpu");
  WanDiT ref(c);
  ref->init_random(12);
  longshot::testing::fp8_checkpoint(*ref, 13).write(dir.file("fp8.safetensors"));
  ref->eval();
  ref->place(kCuda, torch::kBFloat16, false);
  const auto want = forward(ref, in);
  ref = nullptr;
  for (const bool offload : {false, true}) {
    WanDiT m(c);
    load_weights(*m, dir.file("fp8.safetensors"));
    m->eval();
    m->place(torch::Device(torch::kCUDA), torch::kBFloat16, offload);
    const auto got = forward(m, in);
    EXPECT_EQ(m->stored_blocks()->placements(), 1);
    const double err = rel_l2(got.out, want.out);
    std::printf("fp8 weights%s: peak %.3f GiB (bf16 model %.3f GiB), %.1f ms (bf16 %.1f ms), rel-L2 %.2e\n",
                offload ? " + offload" : "", double(got.peak) / (1 << 30), double(want.peak) / (1 << 30), got.ms, want.ms,
                err);
    // Each up-cast weight is the bf16 rounding of decode × scale, as the reference's.
    EXPECT_LE(err, 1e-2) << (offload ? "offload" : "resident");
    EXPECT_LT(got.peak, want.peak) << (offload ? "offload" : "resident");
  }
}

TEST(OffloadGpu, MemoryCapFailsBeyondIt) {
  SKIP_WITHOUT_GPU();
#if defined(LONGSHOT_TORCH_CUDA) && LONGSHOT_TORCH_CUDA
  // No cached segment left from earlier cases to serve the big allocation without a new one.
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  const int64_t total = limit_cuda_memory(kCuda, int64_t(2) << 30);  // 2 GiB
  EXPECT_GT(total, int64_t(2) << 30);
  bool failed = false;
  try {
    auto big = torch::empty({int64_t(3) << 30}, torch::TensorOptions().device(kCuda).dtype(torch::kByte));
  } catch (const c10::Error&) {
    failed = true;  // CUDA's out-of-memory error, as on a 2 GiB card
  }
  EXPECT_TRUE(failed);
  limit_cuda_memory(kCuda, 0);  // lifted: the same allocation works
  EXPECT_NO_THROW(torch::empty({int64_t(3) << 30}, torch::TensorOptions().device(kCuda).dtype(torch::kByte)));
  EXPECT_THROW(limit_cuda_memory(kCuda, total + 1), ParameterError);
  EXPECT_THROW(limit_cuda_memory(torch::kCPU, int64_t(1) << 30), ParameterError);
}

#endif  // LONGSHOT_HAS_CUDA

// Out of GPU memory mid-job (issue 20's bad input, issue 27's fault injection) on the real CUDA
// allocator: a job under a --max-gpu-memory cap too small for its activations fails in its first
// denoising step, after the model is on the device, with "out of GPU memory during denoising ...";
// the same Generator (the studio's worker, model cache and all) then runs a job with the cap lifted
// to the end. The CLI side (exit code, no file at --out, no *.tmp-*) is tests/gpu/oom_cli.sh; the
// CPU side is tests/pipeline/test_job_oom.cpp. Skipped without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include <torch/torch.h>

#include "engine/common/cuda_memory.h"
#include "engine/pipeline/generator.h"
#include "tests/common/job_events.h"
#include "tests/gpu/skip_without_gpu.h"

#if defined(LONGSHOT_TORCH_CUDA) && LONGSHOT_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using namespace longshot;
using namespace longshot::pipeline;

namespace {

const torch::Device kCuda(torch::kCUDA, 0);

// The cap is process-wide: lifted whatever way the test ends, so later cases run uncapped.
struct LiftCapAtExit {
  ~LiftCapAtExit() {
    try {
      limit_cuda_memory(kCuda, 0);
    } catch (...) {
    }
  }
};

// Events of one job until it ends (finished, failed or cancelled) or 120 s pass.
std::vector<Event> until_end(Generator& g) {
  return longshot::testing::events_until_job_end(g, std::chrono::seconds(120));
}

}  // namespace

TEST(OomGpu, CapTooSmallFailsMidJobThenTheWorkerRunsTheNextJob) {
  SKIP_WITHOUT_GPU();
  LiftCapAtExit lift;
#if defined(LONGSHOT_TORCH_CUDA) && LONGSHOT_TORCH_CUDA
  c10::cuda::CUDACachingAllocator::emptyCache();  // no segment of earlier cases to serve this one's
#endif
  // The tiny DiT (dim 64, pixel space, patch 1x2x2) at 256x256 x 64 frames: 64 x 128 x 128 = 1 Mi
  // tokens. Before sampling the GPU holds the model (< 1 MiB) and the noise (3 x 64 x 256 x 256
  // fp32 = 48 MiB): well under the 128 MiB cap. The first forward's patch embedding alone is
  // 1 Mi tokens x 64 x bf16 = 128 MiB, beside the noise: past the cap whatever else it allocates.
  GenerationRequest r;
  r.prompt = "a red ball";
  r.model = "tiny";
  r.device = "cuda";
  r.frames = 64;
  r.width = r.height = 256;
  r.steps = 2;
  r.previews = false;
  r.measure_recall = false;
  r.max_gpu_memory = int64_t(128) << 20;
  const int64_t noise_bytes = 3LL * r.frames * r.width * r.height * 4;
  const int64_t patch_bytes = 64LL * r.frames * (r.height / 2) * (r.width / 2) * 2;
  ASSERT_LT(noise_bytes, r.max_gpu_memory / 2);
  ASSERT_GT(noise_bytes + patch_bytes, r.max_gpu_memory);

  Generator g;
  g.submit(r);
  const auto first = until_end(g);
  ASSERT_FALSE(first.empty());
  EXPECT_TRUE(std::holds_alternative<JobStarted>(first.front()));  // the model was on the device
  ASSERT_TRUE(std::holds_alternative<JobFailed>(first.back()));
  const std::string message = std::get<JobFailed>(first.back()).message;
  std::printf("capped job: %s\n", message.c_str());
  EXPECT_EQ(message.rfind("out of GPU memory during denoising step 1 of 2 at 256x256, 64 frames (--max-gpu-memory 128 MiB): ",
                          0),
            0u)
      << message;
  EXPECT_NE(message.find("; try --offload, a smaller --size or --frames, a larger --max-gpu-memory, or --device cpu"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;  // no backtrace

  // The same worker and cached model, the cap lifted (0), a quarter of the frames (16 x 128 x 128
  // tokens: seconds of dense attention).
  auto next = r;
  next.max_gpu_memory = 0;
  next.frames = 16;
  g.submit(next);
  const auto second = until_end(g);
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(std::holds_alternative<JobFinished>(second.back()))
      << (std::holds_alternative<JobFailed>(second.back()) ? std::get<JobFailed>(second.back()).message : "no end");
  const auto& done = std::get<JobFinished>(second.back());
  ASSERT_TRUE(done.video);
  EXPECT_EQ(done.video->frames, 16);
  std::printf("uncapped job: %d frames, peak CUDA memory %.1f MiB (the cap was %.0f MiB)\n", done.video->frames,
              double(done.peak_memory_bytes) / (1 << 20), double(r.max_gpu_memory) / (1 << 20));
  EXPECT_GT(done.peak_memory_bytes, 0);
  // The second job lifted the cap: twice the old cap in one allocation works now.
  EXPECT_NO_THROW(torch::empty({2 * r.max_gpu_memory}, torch::TensorOptions().device(kCuda).dtype(torch::kByte)));
}

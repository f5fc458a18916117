// A tiny Wan model folder (umT5 + DiT + VAE, tests/common/tiny_model_folder.h) through run_job on
// the GPU: the memory plan's report (peak CUDA memory from the caching allocator, > 0 and below
// what the device holds) and the frames against the same job on the CPU (bf16 DiT on the GPU, so a
// loose bound). Skips where no GPU exists.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "engine/pipeline/run_job.h"
#include "tests/common/temp_dir.h"
#include "tests/common/tiny_model_folder.h"
#include "tests/gpu/skip_without_gpu.h"

using namespace longshot;

TEST(ModelFolderGpu, PeakMemoryAndFramesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  longshot::testing::TempDir d("longshot_models_gpu");
  const auto files = longshot::testing::write_tiny_model(d.file("wan"), longshot::testing::TinyLayout::Diffusers, 3);
  if (files.tokenizer.empty()) GTEST_SKIP() << "spm_train is not installed";
  ::setenv("LONGSHOT_CACHE_DIR", d.file("cache").c_str(), 1);
  pipeline::GenerationRequest r;
  r.model = files.root;
  r.prompt = "a cat walks along the beach";
  r.frames = 9, r.width = 64, r.height = 64, r.steps = 4, r.guidance = 5.0;
  r.previews = false;
  r.measure_recall = false;
  auto run = [&](const std::string& device, int64_t* peak) {
    r.device = device;
    VideoPtr video;
    std::string error;
    pipeline::JobContext ctx;
    ctx.publish = [&](pipeline::Event e) {
      if (auto* f = std::get_if<pipeline::JobFinished>(&e)) video = f->video, *peak = f->peak_memory_bytes;
      if (auto* f = std::get_if<pipeline::JobFailed>(&e)) error = f->message;
    };
    pipeline::run_job(r, ctx);
    EXPECT_TRUE(video) << error;
    return video;
  };
  int64_t peak_gpu = 0, peak_cpu = 0;
  const auto gpu = run("cuda", &peak_gpu);
  const auto cpu = run("cpu", &peak_cpu);
  ASSERT_TRUE(gpu && cpu);
  std::printf("tiny Wan folder on the GPU: peak CUDA memory %.2f MiB\n", double(peak_gpu) / (1 << 20));
  EXPECT_GT(peak_gpu, 0);
  EXPECT_LT(peak_gpu, int64_t(4) << 30);  // a tiny model: far below any card
  EXPECT_EQ(peak_cpu, -1);
  ASSERT_EQ(gpu->rgb.size(), cpu->rgb.size());
  double mse = 0;
  for (size_t i = 0; i < gpu->rgb.size(); ++i) mse += std::pow(double(gpu->rgb[i]) - double(cpu->rgb[i]), 2);
  mse /= double(gpu->rgb.size());
  const double db = 10 * std::log10(255.0 * 255.0 / std::max(mse, 1e-12));
  std::printf("GPU (bf16) vs CPU (fp32) frames: %.1f dB PSNR\n", db);
  EXPECT_GT(db, 20.0);  // bf16 DiT and VAE against fp32: near, not equal
  ::unsetenv("LONGSHOT_CACHE_DIR");
}

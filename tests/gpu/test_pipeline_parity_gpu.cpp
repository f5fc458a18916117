// Real Wan2.1 generation against diffusers' WanPipeline at the full 1.3B DiT and VAE shapes
// (random weights): tests/gpu/wan_pipeline_parity.py writes a diffusers folder and WanPipeline's
// outputs, then runs these cases with LONGSHOT_PIPELINE_PARITY_DIR set. Without that variable (CI)
// or a GPU they skip. fp32 with TF32 off on both sides; bounds are the acceptance.
// LONGSHOT_PIPELINE_PARITY_DEVICE=cpu runs the same cases on the CPU (e.g. on the committed tiny
// fixture, tests/fixtures/wan_pipeline_tiny, which has the same file names: CTest's
// pipeline/WanPipelineTinyVsDiffusers), where float32 on both sides is held to tighter bounds.
#include <gtest/gtest.h>

#include <cstdlib>

#include <ATen/Context.h>

#include "engine/model/dit.h"
#include "engine/model/model_source.h"
#include "engine/sampler/flow_matching.h"
#include "engine/sampler/sample_loop.h"
#include "engine/vae/wan_vae.h"
#include "tests/common/fixture_io.h"
#include "tests/gpu/skip_without_gpu.h"

using namespace longshot;
using longshot::testing::FixtureTensors;

namespace {

const char* parity_dir() { return std::getenv("LONGSHOT_PIPELINE_PARITY_DIR"); }
bool on_cpu() {
  const char* d = std::getenv("LONGSHOT_PIPELINE_PARITY_DEVICE");
  return d && std::string(d) == "cpu";
}

#define SKIP_WITHOUT_PARITY_DIR()                                                                  \
  do {                                                                                             \
    if (!parity_dir()) GTEST_SKIP() << "LONGSHOT_PIPELINE_PARITY_DIR not set (tests/gpu/wan_pipeline_parity.py sets it)"; \
    if (!on_cpu()) SKIP_WITHOUT_GPU();                                                             \
  } while (0)

struct Parity {
  std::string dir = parity_dir();
  FixtureTensors io{dir + "/io.safetensors"};
  model::WanDiT dit{nullptr};
  torch::Device cuda{on_cpu() ? torch::kCPU : torch::kCUDA};
  Parity() {
    if (!on_cpu()) {
      at::globalContext().setAllowTF32CuBLAS(false);
      at::globalContext().setAllowTF32CuDNN(false);
    }
    model::ModelSpec spec;
    spec.model = dir;
    const auto resolved = model::resolve_model(spec, {model::kComponentTokenizer, model::kComponentTextEncoder});
    dit = model::load_dit(resolved, 0, cuda, torch::kFloat);
    dit->eval();
  }
  torch::Tensor sample(sampler::Sampler& smp) {
    const auto cond = io.f32("prompt_embeds").to(cuda), uncond = io.f32("negative_prompt_embeds").to(cuda);
    sampler::SampleHooks hooks;
    hooks.cond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit->forward(x, t, cond); };
    hooks.uncond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit->forward(x, t, uncond); };
    hooks.guidance = 5.0;
    return sampler::sample(smp, io.f32("noise").to(cuda), hooks).x.cpu();
  }
  // Our VAE on our latents, in [0, 1] as diffusers' VideoProcessor gives them.
  torch::Tensor frames(const torch::Tensor& latents) {
    auto vae = vae::WanVAE::load(dir + "/vae/diffusion_pytorch_model.safetensors", {}, false);
    vae.to(cuda, torch::kFloat);
    vae::DecodeOptions o;
    o.space = vae::LatentSpace::Normalized;  // the DiT's latents; the VAE un-normalises them
    return ((vae.decode(latents[0], o) + 1) / 2).clamp(0, 1);
  }
};

}  // namespace

TEST(PipelineParityGpu, OneForwardFp32) {
  SKIP_WITHOUT_PARITY_DIR();
  torch::NoGradGuard no_grad;
  Parity p;
  const auto out = p.dit->forward(p.io.f32("noise").to(p.cuda), p.io.f32("forward_timestep").to(p.cuda),
                                  p.io.f32("prompt_embeds").to(p.cuda));
  const double rel = longshot::testing::rel_l2(out, p.io.f32("forward_output"));
  std::printf("pipeline parity, one DiT forward vs diffusers (fp32): relative L2 %.2e\n", rel);
  // Measured on an H100 at the full 1.3B shape (fp32, TF32 off on both sides): 2.8e-4 (the CPU's
  // tiny fixture: 1.1e-6). Held to the bound for final latents; the gap between the two
  // devices is not yet explained (fused kernels or SDPA's fp32 backend are the suspects).
  EXPECT_LT(rel, 1e-3);
  if (on_cpu()) EXPECT_LT(rel, 1e-4);
}

TEST(PipelineParityGpu, SixUniPCStepsAndFrames) {
  SKIP_WITHOUT_PARITY_DIR();
  torch::NoGradGuard no_grad;
  Parity p;
  sampler::FlowUniPC smp(6, 3.0);  // the folder's scheduler_config: flow_shift 3, diffusers' grid
  const auto latents = p.sample(smp);
  const double rel = longshot::testing::rel_l2(latents, p.io.f32("unipc_latents"));
  const double db = longshot::testing::psnr01(p.frames(latents).unsqueeze(0), p.io.f32("unipc_frames"));
  std::printf("pipeline parity, 6 UniPC steps vs WanPipeline (fp32): latents relative L2 %.2e, frames PSNR %.1f dB\n", rel, db);
  EXPECT_LT(rel, 1e-3);  // the acceptance bound
  if (on_cpu()) EXPECT_LT(rel, 1e-5);  // what float32 on both sides gives on the CPU
  EXPECT_GE(db, 40.0);
}

TEST(PipelineParityGpu, SixEulerStepsAndFrames) {
  SKIP_WITHOUT_PARITY_DIR();
  torch::NoGradGuard no_grad;
  Parity p;
  sampler::FlowMatchEuler smp(6, 3.0, sampler::Grid::Diffusers);  // FlowMatchEulerDiscreteScheduler(shift=3)
  const auto latents = p.sample(smp);
  const double rel = longshot::testing::rel_l2(latents, p.io.f32("euler_latents"));
  const double db = longshot::testing::psnr01(p.frames(latents).unsqueeze(0), p.io.f32("euler_frames"));
  std::printf("pipeline parity, 6 Euler steps vs WanPipeline (fp32): latents relative L2 %.2e, frames PSNR %.1f dB\n", rel, db);
  EXPECT_LT(rel, 1e-3);
  EXPECT_GE(db, 40.0);
  if (on_cpu()) {
    EXPECT_LT(rel, 1e-5);
    // Longshot's own Euler grid is not diffusers': the same run lands measurably elsewhere (on the
    // CPU only, where the agreement above is far tighter than this gap).
    sampler::FlowMatchEuler own(6, 3.0, sampler::Grid::Wan);
    EXPECT_GT(longshot::testing::rel_l2(p.sample(own), p.io.f32("euler_latents")), 1e-4);
  }
}

// The bf16 residual stream (model::ResidualPrecision) against diffusers' WanTransformer3DModel in
// bf16, whose hidden_states are bf16 between branches: tests/gpu/residual_stream_parity.py writes a
// DiT (1.3B widths, a few layers, random weights), the inputs, and diffusers' forward in fp32 (TF32
// off) and in bf16, then runs this case with LONGSHOT_RESIDUAL_PARITY_DIR set. Ours runs the model
// in bf16 with each stream; both must be at least as close to the fp32 answer as diffusers' own
// bf16 forward is (1.5× its distance: rounding noise differs run to run).
TEST(ResidualParityGpu, Bf16StreamAgainstDiffusersBf16) {
  const char* dir = std::getenv("LONGSHOT_RESIDUAL_PARITY_DIR");
  if (!dir) GTEST_SKIP() << "LONGSHOT_RESIDUAL_PARITY_DIR not set (tests/gpu/residual_stream_parity.py sets it)";
  SKIP_WITHOUT_GPU();
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  torch::NoGradGuard no_grad;
  const FixtureTensors io{std::string(dir) + "/io.safetensors"};
  model::ModelSpec spec;
  spec.model = dir;  // a diffusers folder holding transformer/ only
  const auto resolved =
      model::resolve_model(spec, {model::kComponentTokenizer, model::kComponentTextEncoder, model::kComponentVae});
  auto dit = model::load_dit(resolved, 0, torch::kCUDA, torch::kBFloat16);
  dit->eval();
  const auto x = io.f32("noise").to(torch::kCUDA), t = io.f32("timestep").to(torch::kCUDA);
  const auto text = io.f32("prompt_embeds").to(torch::kCUDA);
  const auto ours32 = dit->forward(x, t, text).to(torch::kCPU, torch::kFloat);
  dit->set_residual_precision(model::ResidualPrecision::Bf16);
  const auto ours16 = dit->forward(x, t, text).to(torch::kCPU, torch::kFloat);
  const auto ref32 = io.f32("forward_output"), ref16 = io.f32("forward_output_bf16");
  using longshot::testing::rel_l2;
  const double theirs = rel_l2(ref16, ref32), e16 = rel_l2(ours16, ref32), e32 = rel_l2(ours32, ref32);
  std::printf("residual stream parity (%s): diffusers bf16 vs its fp32 %.3e; ours bf16 stream %.3e, fp32 stream %.3e "
              "(vs diffusers bf16: %.3e and %.3e)\n",
              resolved.config.summary.c_str(), theirs, e16, e32, rel_l2(ours16, ref16), rel_l2(ours32, ref16));
  EXPECT_GT(theirs, 0.0);
  EXPECT_LT(e16, 1.5 * theirs);
  EXPECT_LT(e32, 1.5 * theirs);
}

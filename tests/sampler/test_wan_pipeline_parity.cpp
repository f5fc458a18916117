// The sampling loop with a real (tiny, random) Wan DiT against diffusers' WanPipeline
// (tests/fixtures/wan_pipeline_tiny/README.md): same prompt embeddings, noise and guidance, 6 steps
// of UniPC and of FlowMatchEuler; the final latents must agree. The text encoder and the VAE are
// not involved (the pipeline's end-to-end test covers them): this pins the DiT call, the
// timesteps, guidance and the samplers together.
#include <gtest/gtest.h>

#include "engine/model/dit.h"
#include "engine/model/model_source.h"
#include "engine/sampler/sample_loop.h"
#include "tests/common/fixture_io.h"

using namespace longshot;

namespace {

const std::string kFolder = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/wan_pipeline_tiny";

using longshot::testing::rel_l2;

struct Fixture {
  longshot::testing::FixtureTensors io{kFolder + "/io.safetensors"};
  model::WanDiT dit{nullptr};
  Fixture() {
    model::ModelSpec spec;
    spec.model = kFolder;
    // The fixture has no tokenizer (token ids are given); the sampler needs only the DiT.
    const auto resolved = model::resolve_model(spec, {model::kComponentTokenizer});
    dit = model::load_dit(resolved, 0, torch::kCPU, torch::kFloat);
    dit->eval();
  }
  torch::Tensor sample(sampler::Sampler& smp) {
    const auto cond = io.f32("prompt_embeds"), uncond = io.f32("negative_prompt_embeds");
    sampler::SampleHooks hooks;
    hooks.cond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit->forward(x, t, cond); };
    hooks.uncond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit->forward(x, t, uncond); };
    hooks.guidance = 5.0;
    return sampler::sample(smp, io.f32("noise"), hooks).x;
  }
};

}  // namespace

TEST(WanPipelineParity, DiTForward) {
  torch::NoGradGuard no_grad;
  Fixture f;
  const auto out = f.dit->forward(f.io.f32("noise"), f.io.f32("forward_timestep"),
                                  f.io.f32("prompt_embeds"));
  const double rel = rel_l2(out, f.io.f32("forward_output"));
  std::printf("one DiT forward vs diffusers: relative L2 %.2e\n", rel);
  EXPECT_LT(rel, 1e-4);
}

TEST(WanPipelineParity, UniPCSixSteps) {
  Fixture f;
  sampler::FlowUniPC smp(6, 3.0);  // the fixture's scheduler_config: flow_shift 3, diffusers' grid
  const double rel = rel_l2(f.sample(smp), f.io.f32("unipc_latents"));
  std::printf("6 UniPC steps vs WanPipeline: final latents relative L2 %.2e\n", rel);
  EXPECT_LT(rel, 1e-3);  // the acceptance bound
  EXPECT_LT(rel, 1e-5);  // what float32 on both sides gives
}

TEST(WanPipelineParity, EulerSixSteps) {
  Fixture f;
  sampler::FlowMatchEuler smp(6, 3.0, sampler::Grid::Diffusers);  // FlowMatchEulerDiscreteScheduler(shift=3)
  const double rel = rel_l2(f.sample(smp), f.io.f32("euler_latents"));
  std::printf("6 Euler steps vs WanPipeline: final latents relative L2 %.2e\n", rel);
  EXPECT_LT(rel, 1e-5);
  // Longshot's own Euler grid is not diffusers': the same run lands measurably elsewhere.
  sampler::FlowMatchEuler own(6, 3.0, sampler::Grid::Wan);
  EXPECT_GT(rel_l2(f.sample(own), f.io.f32("euler_latents")), 1e-4);
}

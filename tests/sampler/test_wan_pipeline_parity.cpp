// The sampling loop with a real (tiny, random) Wan DiT against diffusers' WanPipeline
// (tests/fixtures/wan_pipeline_tiny/README.md): same prompt embeddings, noise and guidance, 6 steps
// of UniPC and of FlowMatchEuler; the final latents must agree. The text encoder and the VAE are
// not involved (the pipeline's end-to-end test covers them): this pins the DiT call, the
// timesteps, guidance and the samplers together.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "engine/model/dit.h"
#include "engine/model/model_source.h"
#include "engine/sampler/sample_loop.h"

using namespace longshot;

namespace {

const std::string kFolder = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/wan_pipeline_tiny";

double rel_l2(const torch::Tensor& a, const torch::Tensor& b) { return ((a - b).norm() / b.norm()).item<double>(); }

// The F32 tensors of io.safetensors. Read here directly: the file also holds int64 token ids,
// which the engine's reader (weights only: F32/F16/BF16) refuses.
class IoTensors {
 public:
  explicit IoTensors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
    uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    header_ = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + long(n));
    data_ = 8 + size_t(n);
  }
  torch::Tensor load(const std::string& name, torch::ScalarType = torch::kFloat) const {
    const auto& h = header_.at(name);
    if (h.at("dtype") != "F32") throw std::runtime_error(name + " is not F32");
    const auto offsets = h.at("data_offsets").get<std::vector<size_t>>();
    auto t = torch::empty(h.at("shape").get<std::vector<int64_t>>(), torch::kFloat);
    if (size_t(t.nbytes()) != offsets[1] - offsets[0]) throw std::runtime_error(name + ": size mismatch");
    std::memcpy(t.data_ptr(), bytes_.data() + data_ + offsets[0], t.nbytes());
    return t;
  }

 private:
  std::vector<char> bytes_;
  nlohmann::json header_;
  size_t data_ = 0;
};

struct Fixture {
  IoTensors io{kFolder + "/io.safetensors"};
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
    const auto cond = io.load("prompt_embeds", torch::kFloat), uncond = io.load("negative_prompt_embeds", torch::kFloat);
    sampler::SampleHooks hooks;
    hooks.cond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit->forward(x, t, cond); };
    hooks.uncond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit->forward(x, t, uncond); };
    hooks.guidance = 5.0;
    return sampler::sample(smp, io.load("noise", torch::kFloat), hooks).x;
  }
};

}  // namespace

TEST(WanPipelineParity, DiTForward) {
  torch::NoGradGuard no_grad;
  Fixture f;
  const auto out = f.dit->forward(f.io.load("noise", torch::kFloat), f.io.load("forward_timestep", torch::kFloat),
                                  f.io.load("prompt_embeds", torch::kFloat));
  const double rel = rel_l2(out, f.io.load("forward_output", torch::kFloat));
  std::printf("one DiT forward vs diffusers: relative L2 %.2e\n", rel);
  EXPECT_LT(rel, 1e-4);
}

TEST(WanPipelineParity, UniPCSixSteps) {
  Fixture f;
  sampler::FlowUniPC smp(6, 3.0);  // the fixture's scheduler_config: flow_shift 3, diffusers' grid
  const double rel = rel_l2(f.sample(smp), f.io.load("unipc_latents", torch::kFloat));
  std::printf("6 UniPC steps vs WanPipeline: final latents relative L2 %.2e\n", rel);
  EXPECT_LT(rel, 1e-3);  // the acceptance bound
  EXPECT_LT(rel, 1e-5);  // what float32 on both sides gives
}

TEST(WanPipelineParity, EulerSixSteps) {
  Fixture f;
  sampler::FlowMatchEuler smp(6, 3.0, sampler::Grid::Diffusers);  // FlowMatchEulerDiscreteScheduler(shift=3)
  const double rel = rel_l2(f.sample(smp), f.io.load("euler_latents", torch::kFloat));
  std::printf("6 Euler steps vs WanPipeline: final latents relative L2 %.2e\n", rel);
  EXPECT_LT(rel, 1e-5);
  // Longshot's own Euler grid is not diffusers': the same run lands measurably elsewhere.
  sampler::FlowMatchEuler own(6, 3.0, sampler::Grid::Wan);
  EXPECT_GT(rel_l2(f.sample(own), f.io.load("euler_latents", torch::kFloat)), 1e-4);
}

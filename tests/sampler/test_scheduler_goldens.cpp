// Parity with diffusers' schedulers (tests/fixtures/schedulers/README.md): for every recorded case
// the timesteps and σ must match, and replaying the recorded model outputs through our sampler
// (on our own samples, so errors would compound) must reproduce every intermediate sample.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/sampler/flow_matching.h"

using namespace longshot::sampler;

namespace {

nlohmann::json load_goldens() {
  const std::string path = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/schedulers/flow_schedulers.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  return nlohmann::json::parse(in);
}

torch::Tensor tensor_of(const nlohmann::json& values, const std::vector<int64_t>& shape) {
  return torch::tensor(values.get<std::vector<float>>()).reshape(shape);
}

}  // namespace

TEST(SchedulerGoldens, MatchDiffusersStepByStep) {
  const auto goldens = load_goldens();
  const auto shape = goldens.at("shape").get<std::vector<int64_t>>();
  ASSERT_GE(goldens.at("cases").size(), 10u);
  double worst = 0;
  for (const auto& c : goldens.at("cases")) {
    const std::string name = c.at("sampler");
    const int steps = c.at("steps");
    const double shift = c.at("shift");
    const std::string label = name + " steps " + std::to_string(steps) + " shift " + std::to_string(shift);
    auto smp = make_sampler(name, steps, shift, Grid::Diffusers);

    const auto timesteps = c.at("timesteps").get<std::vector<double>>();
    const auto sigmas = c.at("sigmas").get<std::vector<double>>();
    ASSERT_EQ(timesteps.size(), size_t(steps)) << label;
    ASSERT_EQ(sigmas.size(), size_t(steps) + 1) << label;
    for (int i = 0; i < steps; ++i) {
      // UniPC/DPM++ hand the model ⌊1000σ⌋ (exact integers); Euler float32 1000σ.
      EXPECT_EQ(smp->timestep(i), timesteps[size_t(i)]) << label << " timestep " << i;
    }
    for (int i = 0; i <= steps; ++i) EXPECT_EQ(float(smp->sigma(i)), float(sigmas[size_t(i)])) << label << " σ " << i;

    auto x = tensor_of(c.at("x").at(0), shape);
    for (int i = 0; i < steps; ++i) {
      x = smp->step(x, tensor_of(c.at("v").at(size_t(i)), shape), i);
      const auto want = tensor_of(c.at("x").at(size_t(i) + 1), shape);
      const double rel = ((x - want).norm() / want.norm()).item<double>();
      worst = std::max(worst, rel);
      EXPECT_LT(rel, 1e-6) << label << " step " << i;
    }
  }
  std::printf("worst relative L2 difference to diffusers over all steps: %.2e\n", worst);
}

#include "engine/sampler/flow_matching.h"

#include <cmath>

#include "engine/common/error.h"

namespace longshot::sampler {

FlowMatchEuler::FlowMatchEuler(int steps, double shift, int train_timesteps) : train_timesteps_(train_timesteps) {
  if (steps < 1) throw ParameterError("steps", "must be at least 1, got " + std::to_string(steps));
  if (!(shift > 0) || !std::isfinite(shift)) throw ParameterError("shift", "must be positive, got " + std::to_string(shift));
  sigmas_.resize(size_t(steps) + 1);
  for (int i = 0; i <= steps; ++i) {
    const double s = 1.0 - double(i) / steps;
    sigmas_[size_t(i)] = shift * s / (1.0 + (shift - 1.0) * s);
  }
}

torch::Tensor FlowMatchEuler::step(const torch::Tensor& x, const torch::Tensor& velocity, int i) const {
  return x + (sigma(i + 1) - sigma(i)) * velocity.to(x.scalar_type());
}

torch::Tensor FlowMatchEuler::predict_x0(const torch::Tensor& x, const torch::Tensor& velocity, int i) const {
  return x - sigma(i) * velocity.to(x.scalar_type());
}

torch::Tensor classifier_free_guidance(const torch::Tensor& cond, const torch::Tensor& uncond, double guidance) {
  if (!(guidance >= 0) || !std::isfinite(guidance))
    throw ParameterError("guidance", "must be a finite value >= 0, got " + std::to_string(guidance));
  return uncond + guidance * (cond - uncond);
}

torch::Tensor seeded_noise(const std::vector<int64_t>& shape, uint64_t seed, torch::Device device) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat)).to(device);
}

}  // namespace longshot::sampler

// Flow-matching sampling (Wan's rectified flow): x_σ = (1 − σ)·x0 + σ·ε, the model predicts the
// velocity v = ε − x0, Euler steps along σ with Wan's timestep shift, classifier-free guidance.
// Sampler room: tensors only; knows neither the model nor the pipeline.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace longshot::sampler {

class FlowMatchEuler {
 public:
  // σ_i = shift(1 − i/steps), shift(σ) = s·σ / (1 + (s − 1)·σ); timestep_i = 1000·σ_i.
  // Throws ParameterError("steps"/"shift") for steps < 1 or shift <= 0.
  FlowMatchEuler(int steps, double shift, int train_timesteps = 1000);

  int num_steps() const { return int(sigmas_.size()) - 1; }
  double sigma(int step) const { return sigmas_.at(size_t(step)); }       // step in [0, steps]
  double timestep(int step) const { return sigma(step) * train_timesteps_; }
  const std::vector<double>& sigmas() const { return sigmas_; }

  // x_{i+1} = x_i + (σ_{i+1} − σ_i)·v
  torch::Tensor step(const torch::Tensor& x, const torch::Tensor& velocity, int step) const;
  // x0 = x − σ_i·v: the clean sample the model currently predicts (previews).
  torch::Tensor predict_x0(const torch::Tensor& x, const torch::Tensor& velocity, int step) const;

 private:
  std::vector<double> sigmas_;
  int train_timesteps_;
};

// v_uncond + g·(v_cond − v_uncond). Throws ParameterError("guidance") for negative or non-finite g.
torch::Tensor classifier_free_guidance(const torch::Tensor& cond, const torch::Tensor& uncond, double guidance);

// Standard normal noise from a CPU generator seeded with `seed`, so the same seed gives the same
// noise on any device; then moved to `device`.
torch::Tensor seeded_noise(const std::vector<int64_t>& shape, uint64_t seed, torch::Device device = torch::kCPU);

}  // namespace longshot::sampler

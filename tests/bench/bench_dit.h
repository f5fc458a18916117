// What the DiT benches (bench_block, bench_e2e) share: the host clock, the random-weight model
// with L of its blocks, and one latent grid's random inputs with the device warm-up. Test code
// only; it knows the model's public header and nothing of either bench's tables.
#pragma once
#include <chrono>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "engine/attention/token_grid.h"
#include "engine/model/dit.h"

namespace longshot::bench {

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// `config` (its num_layers already cut to the blocks timed) with random weights (seed 1) on
// `device` in `dtype`, in eval mode: speed does not depend on weight values.
inline model::WanDiT random_dit(const model::DiTConfig& config, const torch::Device& device, torch::ScalarType dtype) {
  model::WanDiT dit(config);
  dit->init_random(1);
  dit->to(device, dtype);
  dit->eval();
  return dit;
}

// The random input of one grid: latents, timestep, text states.
struct GridInputs {
  torch::Tensor x, t, text;
};

// One grid's random inputs, then two dense SDPA forwards on them before the first timed mode
// (cuBLAS/cuDNN handles, allocator growth, the text K/V cache: in the first GPU run the first
// mode alone paid them, see docs/benchmarks.md). `measure_time`: the plan's timing syncs.
inline GridInputs warmed_inputs(model::WanDiT& dit, const model::DiTConfig& config, const attention::TokenGrid& grid,
                                const torch::Device& device, torch::ScalarType dtype, bool measure_time) {
  const auto& p = config.patch;
  GridInputs in;
  in.x = torch::randn({1, config.in_channels, grid.t * p[0], grid.h * p[1], grid.w * p[2]}).to(device, dtype);
  in.t = torch::full({1}, 500.0).to(device);
  in.text = torch::randn({1, 512, config.text_dim}).to(device, dtype);
  model::AttentionPlan warm;
  warm.backend = attention::Backend::Sdpa;
  warm.measure_time = measure_time;
  for (int w = 0; w < 2; ++w) dit->forward(in.x, in.t, in.text, warm);
  if (device.is_cuda()) torch::cuda::synchronize();
  return in;
}

}  // namespace longshot::bench

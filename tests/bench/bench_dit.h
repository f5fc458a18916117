// What the DiT benches (bench_block, bench_e2e) share: the host clock, the random-weight model
// with L of its blocks, and one latent grid's random inputs with the device warm-up. Test code
// only; it knows the model's public header and nothing of either bench's tables.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "engine/attention/token_grid.h"
#include "engine/model/dit.h"

namespace longshot::bench {

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// wan2.1-t2v-1.3b with `layers` of its blocks, random weights (seed 1: speed does not depend on
// weight values), bf16 on the GPU when there is one, else fp32 on the CPU; eval mode.
struct BenchModel {
  BenchModel(int layers, bool cuda)
      : device(cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU)),
        dtype(cuda ? torch::kBFloat16 : torch::kFloat), config(model::find_config("wan2.1-t2v-1.3b")),
        full_layers(int(config.num_layers)), dit(nullptr) {
    config.num_layers = layers;
    dit = model::WanDiT(config);
    dit->init_random(1);
    dit->to(device, dtype);
    dit->eval();
  }

  const torch::Device device;
  const torch::ScalarType dtype;
  model::DiTConfig config;  // num_layers: the blocks timed
  const int full_layers;    // the model's own block count
  model::WanDiT dit;
};

// The latent grids timed when --grid is not given: 81 frames at 480p (21x30x52 tokens) and the 6x
// horizon on a GPU; a tiny smoke grid on the CPU.
inline std::vector<std::string> default_grids(bool cuda) {
  return cuda ? std::vector<std::string>{"21x30x52", "126x30x52"} : std::vector<std::string>{"2x8x8"};
}

// The random input of one grid: latents, timestep, text states.
struct GridInputs {
  torch::Tensor x, t, text;
};

// One grid's random inputs, then two dense SDPA forwards on them before the first timed mode
// (cuBLAS/cuDNN handles, allocator growth, the text K/V cache: in the first GPU run the first
// mode alone paid them, see docs/benchmarks.md). `measure_time`: the plan's timing syncs.
inline GridInputs warmed_inputs(BenchModel& m, const attention::TokenGrid& grid, bool measure_time) {
  const auto& config = m.config;
  const auto& device = m.device;
  const auto dtype = m.dtype;
  auto& dit = m.dit;
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

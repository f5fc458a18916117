// The tiny DiT and its inputs as the model tests use them: a deterministic random model in eval
// mode, and latents / timestep / text for it. Shared by tests/model's DiT and projection tests.
#pragma once
#include <cstdint>

#include <torch/torch.h>

#include "engine/model/dit.h"

namespace longshot::testing {

inline model::WanDiT tiny_dit(uint64_t seed = 1) {
  model::WanDiT m(model::find_config("tiny"));
  m->init_random(seed);
  m->eval();
  return m;
}

struct TinyInputs {
  torch::Tensor x, t, text;
};

// Latents [1, 3, 4, 8, 8], timestep 700, text [1, 5, 32], from their own generator.
inline TinyInputs tiny_inputs(uint64_t seed = 3) {
  auto gen = at::detail::createCPUGenerator(seed);
  return {torch::randn({1, 3, 4, 8, 8}, gen, torch::kFloat), torch::full({1}, 700.0),
          torch::randn({1, 5, 32}, gen, torch::kFloat)};
}

}  // namespace longshot::testing

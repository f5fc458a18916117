// Synthetic Q/K/V with spatiotemporal energy decay, for tests, benchmarks and the masks demo
// until a real model supplies Q/K. Seeded and deterministic.
#pragma once
#include <cstdint>

#include <torch/types.h>

#include "engine/attention/token_grid.h"

namespace longshot::attention {

struct SyntheticSpec {
  TokenGrid grid{8, 16, 16};
  int64_t heads = 4;
  int64_t head_dim = 64;
  uint64_t seed = 1;
  double spatial_length = 2.0;   // correlation length of a query's key neighbourhood, in patches
  double temporal_length = 1.5;  // same along time, in frames
  int64_t motion_links = 4;      // long-range token pairs per head that attend strongly
  double sharpness = 10.0;       // mean softmax logit of a query with itself (heads vary ±40%)
};

struct QKV {
  torch::Tensor q, k, v;  // [1, H, N, D] fp32, raster order
};

// Throws ParameterError naming a non-positive size, length or head count.
QKV make_synthetic_qkv(const SyntheticSpec& spec);

}  // namespace longshot::attention

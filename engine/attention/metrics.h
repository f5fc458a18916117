// Quality metrics of a mask against dense attention.
#pragma once
#include <torch/types.h>

#include "engine/attention/block_mask.h"

namespace longshot::attention {

// Share of the dense softmax mass that the mask keeps, averaged over heads and queries (in [0,1]).
// query_stride > 1 evaluates every query_stride-th query only (an unbiased estimate, cheaper).
double attention_recall(const torch::Tensor& q, const torch::Tensor& k, const BlockMask& mask,
                        int64_t query_stride = 1, double scale = 0.0);
// ||out − ref|| / ||ref|| (Frobenius, fp64 accumulation).
double relative_l2_error(const torch::Tensor& out, const torch::Tensor& ref);

}  // namespace longshot::attention

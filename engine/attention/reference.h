// LibTorch fp32 reference attention (on the CPU, or the inputs' GPU): the oracle every kernel is
// tested against.
// Layout: q, k, v are [B, H, N, D] (any strides); output [B, H, N, D].
#pragma once
#include <torch/types.h>

#include "engine/attention/block_mask.h"

namespace longshot::attention {

// softmax(q kᵀ · scale) v, computed in fp32; scale <= 0 means 1/sqrt(D).
torch::Tensor dense_attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, double scale = 0.0);
// Exactly the masked softmax: dense attention with −inf outside the mask's kept blocks.
// Mask heads must be 1 or H; mask.seq_len must equal N. Rows with no kept block output zeros.
torch::Tensor block_sparse_attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v, const BlockMask& mask,
                                               double scale = 0.0);

}  // namespace longshot::attention

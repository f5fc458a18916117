// The attention entry point the model calls: dispatches a BlockMask to the fastest backend that
// supports the inputs (CUDA kernel on a GPU, the LibTorch reference on CPU).
#pragma once
#include <string>

#include <torch/types.h>

#include "engine/attention/block_mask.h"

namespace longshot::attention {

enum class Backend { Auto, Reference, Cuda };

// q, k, v: [B, H, N, D] in the mask's ordering. A full mask takes the dense path.
torch::Tensor sparse_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const BlockMask& mask, Backend backend = Backend::Auto);
torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              Backend backend = Backend::Auto);
// True when this build has the CUDA kernels and a GPU is visible.
bool cuda_backend_available();
std::string backend_description();

}  // namespace longshot::attention

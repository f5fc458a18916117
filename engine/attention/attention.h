// The attention core's two routes under attend() (attend.h): a BlockMask through our CUDA kernel
// or the CPU reference. Backends here: Auto (kernel for CUDA tensors, reference on the CPU),
// Cuda, Reference; attend() is the call that also knows SDPA, the masked and the eager paths.
#pragma once
#include <string>

#include <torch/types.h>

#include "engine/attention/attend.h"
#include "engine/attention/block_mask.h"

namespace longshot::attention {

// q, k, v: [B, H, N, D] in the mask's ordering. A full mask takes the dense path. Another backend
// than Auto, Cuda or Reference is a ParameterError (attend() runs those).
torch::Tensor sparse_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const BlockMask& mask, Backend backend = Backend::Auto);
torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              Backend backend = Backend::Auto);
// True when this build has the CUDA kernels and a GPU is visible.
bool cuda_backend_available();
std::string backend_description();

}  // namespace longshot::attention

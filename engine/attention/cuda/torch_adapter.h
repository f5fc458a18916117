// The thin LibTorch adapter over the CUDA kernels: validates tensors (naming the offending one),
// then hands raw device pointers, strides and the current stream to the kernels.
// Compiled only when LONGSHOT_HAS_CUDA; callers guard with that macro.
#pragma once
#include <string>

#include <torch/types.h>

#include "engine/attention/block_mask.h"

namespace longshot::attention::cuda {

// True when a CUDA device is visible to this process.
bool device_available();
// Why not, in words (no device, driver too old, ...); empty when available.
std::string unavailable_reason();
// q, k, v: [B, H, N, D] CUDA tensors, bf16 or fp16, D in {64, 128}; mask block size 64 or 128.
// Throws ShapeError naming the tensor/parameter that is not supported.
torch::Tensor block_sparse_attention(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const BlockMask& mask);

}  // namespace longshot::attention::cuda

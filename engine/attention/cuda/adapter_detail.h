// Helpers the LibTorch adapter's files share (torch_adapter.cpp defines them): the checks and
// small conversions every entry point makes before a kernel sees a pointer. Internal to
// engine/attention/cuda/; include only from its .cpp files (LibTorch headers).
#pragma once
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace longshot::attention::cuda::detail {

// int32 tensors on `device`: the mask arrays the kernels read.
torch::TensorOptions int32_on(const torch::Device& device);
// Throws ParameterError / ShapeError, naming `who`, unless block_size is 64 or 128 (the kernels'
// tiles) and seq_len is positive.
void check_mask_geometry(int64_t seq_len, int64_t block_size, const char* who);
// An int32 tensor's values on the host (one device→host copy for a CUDA tensor).
std::vector<int32_t> host_ints(const torch::Tensor& t);
// The CUDA device index of `device` (the current device when it has none); ShapeError if it is
// not a CUDA device.
int device_index_of(const torch::Device& device);

}  // namespace longshot::attention::cuda::detail

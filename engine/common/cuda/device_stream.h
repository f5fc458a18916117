// One kernel launch from LibTorch code: makes the tensors' device current (restored when the scope
// ends) and names LibTorch's current stream on it. Shared by every room's LibTorch adapter (the
// attention kernels, the model's fused ops); knows no room. With a CPU LibTorch (Debian's, CI)
// no CUDA tensor exists, so no launch is reached; the stream is then the legacy one and no guard
// is held.
#pragma once
#include <cuda_runtime_api.h>

#include <torch/types.h>

#if LONGSHOT_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace longshot::cuda {

class DeviceStream {
 public:
#if LONGSHOT_TORCH_CUDA
  explicit DeviceStream(const torch::Device& device)
      : guard_(device), stream_(c10::cuda::getCurrentCUDAStream(device.index()).stream()) {}
#else
  explicit DeviceStream(const torch::Device&) {}
#endif
  cudaStream_t get() const { return stream_; }

 private:
#if LONGSHOT_TORCH_CUDA
  c10::cuda::CUDAGuard guard_;
#endif
  cudaStream_t stream_ = nullptr;
};

}  // namespace longshot::cuda

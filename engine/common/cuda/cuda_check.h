// CUDA error handling shared by every room's kernels and their LibTorch adapters: one macro that
// throws (host paths) and one that only logs (destructors, cleanup). Both carry file:line and the
// failing call. Knows nothing of LibTorch nor of any room.
#pragma once
#include <string>

#include <cuda_runtime_api.h>

#include "engine/common/error.h"

namespace longshot {

// A CUDA runtime call failed, or a kernel case is not supported.
class CudaError : public Error {
 public:
  using Error::Error;
};

namespace cuda::detail {

inline std::string cuda_error_message(const char* call, cudaError_t err, const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
         cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}
// Defined in cuda_check.cpp (spdlog stays out of nvcc's way); kernels' .cu files only throw.
void log_cuda_error(const std::string& message);

}  // namespace cuda::detail
}  // namespace longshot

#define LONGSHOT_CUDA_CHECK(call)                                                              \
  do {                                                                                         \
    const cudaError_t longshot_err_ = (call);                                                  \
    if (longshot_err_ != cudaSuccess)                                                          \
      throw ::longshot::CudaError(                                                             \
          ::longshot::cuda::detail::cuda_error_message(#call, longshot_err_, __FILE__, __LINE__)); \
  } while (0)

#define LONGSHOT_CUDA_CHECK_LOG(call)                                                          \
  do {                                                                                         \
    const cudaError_t longshot_err_ = (call);                                                  \
    if (longshot_err_ != cudaSuccess)                                                          \
      ::longshot::cuda::detail::log_cuda_error(                                                \
          ::longshot::cuda::detail::cuda_error_message(#call, longshot_err_, __FILE__, __LINE__)); \
  } while (0)

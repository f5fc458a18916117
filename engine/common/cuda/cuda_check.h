// CUDA error handling for the kernels and the adapter: one macro that throws (host paths) and
// one that only logs (destructors, cleanup). Both carry file:line and the failing call.
// Knows nothing of LibTorch.
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

namespace attention::cuda::detail {

inline std::string cuda_error_message(const char* call, cudaError_t err, const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
         cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}
// Defined in the adapter (spdlog lives there); kernels' .cu files only throw.
void log_cuda_error(const std::string& message);

}  // namespace attention::cuda::detail
}  // namespace longshot

#define LONGSHOT_CUDA_CHECK(call)                                                              \
  do {                                                                                         \
    const cudaError_t longshot_err_ = (call);                                                  \
    if (longshot_err_ != cudaSuccess)                                                          \
      throw ::longshot::CudaError(::longshot::attention::cuda::detail::cuda_error_message(     \
          #call, longshot_err_, __FILE__, __LINE__));                                          \
  } while (0)

#define LONGSHOT_CUDA_CHECK_LOG(call)                                                          \
  do {                                                                                         \
    const cudaError_t longshot_err_ = (call);                                                  \
    if (longshot_err_ != cudaSuccess)                                                          \
      ::longshot::attention::cuda::detail::log_cuda_error(                                     \
          ::longshot::attention::cuda::detail::cuda_error_message(#call, longshot_err_,        \
                                                                  __FILE__, __LINE__));        \
  } while (0)

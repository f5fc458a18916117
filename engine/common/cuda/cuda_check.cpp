// The logging half of cuda_check.h, compiled once by the host compiler so that no kernel file
// pulls spdlog through nvcc.
#include "engine/common/cuda/cuda_check.h"

#include <spdlog/spdlog.h>

namespace longshot::cuda::detail {

void log_cuda_error(const std::string& message) { spdlog::error("{}", message); }

}  // namespace longshot::cuda::detail

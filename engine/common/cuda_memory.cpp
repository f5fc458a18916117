#include "engine/common/cuda_memory.h"

#include <string>

#include "engine/common/error.h"

// Only a CUDA LibTorch has a usable c10/cuda (Debian's CPU package ships headers that do not compile).
#if defined(LONGSHOT_TORCH_CUDA) && LONGSHOT_TORCH_CUDA
#include <mutex>

#include <torch/torch.h>

#include <cuda_runtime_api.h>

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#define LONGSHOT_READS_CUDA_MEMORY 1
#endif

namespace longshot {

#ifdef LONGSHOT_READS_CUDA_MEMORY
namespace {

// The caching allocator is set up lazily, with CUDA, on the process's first CUDA allocation;
// before that its statistics calls throw "Invalid device argument" (torch 2.x). One byte on
// `device`, freed at once, sets it up for every device.
c10::DeviceIndex ready_index(const c10::Device& device) {
  static std::once_flag once;
  std::call_once(once, [&] { (void)torch::empty({1}, torch::TensorOptions().device(device).dtype(torch::kUInt8)); });
  return device.has_index() ? device.index() : c10::cuda::current_device();
}

}  // namespace
#endif

void reset_peak_cuda_memory(const c10::Device& device) {
#ifdef LONGSHOT_READS_CUDA_MEMORY
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(ready_index(device));
#else
  (void)device;
#endif
}

int64_t peak_cuda_memory(const c10::Device& device) {
#ifdef LONGSHOT_READS_CUDA_MEMORY
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(ready_index(device));
    return static_cast<int64_t>(stats.allocated_bytes[0].peak);  // [0]: StatType::AGGREGATE in every version
  }
#else
  (void)device;
#endif
  return -1;
}

int64_t limit_cuda_memory(const c10::Device& device, int64_t bytes) {
  if (bytes < 0) throw ParameterError("max-gpu-memory", "must be >= 0 bytes (0: no cap)");
#ifdef LONGSHOT_READS_CUDA_MEMORY
  if (!device.is_cuda()) {
    if (bytes == 0) return 0;
    throw ParameterError("max-gpu-memory", "caps CUDA memory; this job runs on " + device.str());
  }
  const auto index = ready_index(device);
  size_t free_bytes = 0, total = 0;
  {
    const c10::cuda::CUDAGuard on_device(index);
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess || total == 0)
      throw ParameterError("max-gpu-memory", "cannot read the memory size of " + device.str());
  }
  if (uint64_t(bytes) > total)
    throw ParameterError("max-gpu-memory", std::to_string(bytes) + " bytes is more than " + device.str() + " has (" +
                                               std::to_string(total) + ")");
  c10::cuda::CUDACachingAllocator::setMemoryFraction(bytes == 0 ? 1.0 : double(bytes) / double(total), index);
  return int64_t(total);
#else
  if (bytes == 0) return 0;
  throw ParameterError("max-gpu-memory", "caps CUDA memory; " +
                                             std::string(device.is_cuda() ? "this LibTorch has no CUDA"
                                                                          : "this job runs on " + device.str()));
#endif
}

}  // namespace longshot

// Peak CUDA memory as LibTorch's caching allocator counts it (what torch.cuda.max_memory_allocated
// reports): one reading for the pipeline's job report and the benchmarks. Knows no room; without
// a CUDA LibTorch (Debian's CPU package, CI) there is nothing to read.
#pragma once
#include <cstdint>

#include <c10/core/Device.h>

namespace longshot {

// Starts a new peak on `device` (the current CUDA device when it has no index); nothing for a
// CPU device or a CPU-only LibTorch.
void reset_peak_cuda_memory(const c10::Device& device);
// Bytes allocated at the peak since the last reset on `device`, all pools together; −1 for a CPU
// device or a CPU-only LibTorch.
int64_t peak_cuda_memory(const c10::Device& device);

// Caps what the caching allocator may hold on `device` at `bytes` (setMemoryFraction of the
// device's total memory): past it an allocation fails with CUDA's out-of-memory error, as on a
// card that size. 0 lifts the cap (fraction 1). The cap is process-wide state, so every job sets
// its own. Returns the device's total bytes. ParameterError("max-gpu-memory") for a cap on a CPU
// device or without a CUDA LibTorch, or above the device's memory.
int64_t limit_cuda_memory(const c10::Device& device, int64_t bytes);

}  // namespace longshot

// Queue-ahead timing for short GPU work: a busy-wait kernel holds the stream while the host
// enqueues the timed launches, so the events around them time the GPU's work and not the host's
// launch latency (which a generation step overlaps with the previous layer's kernels).
#pragma once
#include <cuda_runtime_api.h>

namespace longshot::bench {

// One thread spins for `microseconds` of the GPU's global timer on `stream`.
void gpu_spin(double microseconds, cudaStream_t stream);

}  // namespace longshot::bench

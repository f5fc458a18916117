#include "tests/bench/gpu_queue.h"

#include "engine/common/cuda/cuda_check.h"

namespace longshot::bench {

namespace {
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel(unsigned long long ns) {
  const unsigned long long start = global_ns();
  while (global_ns() - start < ns) {
  }
}
}  // namespace

void gpu_spin(double microseconds, cudaStream_t stream) {
  spin_kernel<<<1, 1, 0, stream>>>(static_cast<unsigned long long>(microseconds * 1000.0));
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::bench

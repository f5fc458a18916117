// Instance of the Hopper block-sparse forward kernel: bf16, head_dim 128, block 128. Its body is
// compiled only for sm_90a (an empty kernel elsewhere; the dispatch runs a probe kernel to tell).
#include "engine/attention/cuda/block_sparse_sm90.cuh"

namespace longshot::attention::cuda::sm90 {

template void launch_sm90<__nv_bfloat16, 128>(const BlockSparseParams&, const Maps&, cudaStream_t);

namespace {
// Compiled with the same flags as the kernels above: it reports whether the code the current
// device runs has the sm_90a features (a build for plain sm_90, e.g. from a LibTorch arch list
// of "9.0", has empty kernel bodies).
__global__ void has_sm90a_code(int* out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *out = 1;
#else
  *out = 0;
#endif
}
}  // namespace

// The dispatch asks once per device: true when the sm_90a kernel bodies are what runs here.
bool device_runs_sm90a_code() {
  int* flag = nullptr;
  if (cudaMalloc(&flag, sizeof(int)) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  int host = 0;
  has_sm90a_code<<<1, 1>>>(flag);
  const bool ok = cudaGetLastError() == cudaSuccess &&
                  cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess;
  cudaGetLastError();
  cudaFree(flag);
  return ok && host == 1;
}

}  // namespace longshot::attention::cuda::sm90

// Instance of the Hopper block-sparse forward kernel: bf16, head_dim 128, block 128. Its body is
// compiled only for sm_90a (an empty kernel elsewhere; the dispatch checks the binary version).
#include "engine/attention/cuda/block_sparse_sm90.cuh"

namespace longshot::attention::cuda::sm90 {

template void launch_sm90<__nv_bfloat16, 128>(const BlockSparseParams&, const Maps&, cudaStream_t);

// The dispatch asks this instance which SASS the current device would run (90 = sm_90a code).
cudaError_t kernel_attributes(cudaFuncAttributes* attr) {
  return cudaFuncGetAttributes(attr, block_sparse_fwd_sm90<__nv_bfloat16, 128>);
}

}  // namespace longshot::attention::cuda::sm90

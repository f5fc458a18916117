// Instance of the Hopper block-sparse forward kernel: fp16, head_dim 64, block 128. Its body is
// compiled only for sm_90a (an empty kernel elsewhere; the dispatch runs a probe kernel to tell).
#include "engine/attention/cuda/block_sparse_sm90.cuh"

namespace longshot::attention::cuda::sm90 {

template void launch_sm90<__half, 64>(const BlockSparseParams&, const Maps&, cudaStream_t);

}  // namespace longshot::attention::cuda::sm90

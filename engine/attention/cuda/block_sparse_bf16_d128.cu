// Instances of the block-sparse forward kernel: bf16, head_dim 128; block 64 with one m16 band
// per warp, block 128 with one or two. One dtype × head_dim per file so the build parallelises
// (STYLE 8).
#include "engine/attention/cuda/block_sparse_kernel.cuh"

namespace longshot::attention::cuda {

template void launch_block_sparse<__nv_bfloat16, 64, 128, 1>(const BlockSparseParams&, cudaStream_t);
template void launch_block_sparse<__nv_bfloat16, 128, 128, 1>(const BlockSparseParams&, cudaStream_t);
template void launch_block_sparse<__nv_bfloat16, 128, 128, 2>(const BlockSparseParams&, cudaStream_t);

}  // namespace longshot::attention::cuda

// Instances of the block-sparse forward kernel: fp16, head_dim 128, block 64 and 128.
// One dtype × head_dim per file so the build parallelises (STYLE 8).
#include "engine/attention/cuda/block_sparse_kernel.cuh"

namespace longshot::attention::cuda {

template void launch_block_sparse<__half, 64, 128>(const BlockSparseParams&, cudaStream_t);
template void launch_block_sparse<__half, 128, 128>(const BlockSparseParams&, cudaStream_t);

}  // namespace longshot::attention::cuda

// The one place where runtime values (dtype, head_dim, block size) become template arguments
// of the block-sparse kernel. An unsupported combination is an error, never a fallback.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/attention/cuda/block_sparse.h"
#include "engine/attention/cuda/cuda_check.h"

namespace longshot::attention::cuda {

template <typename T, int BLOCK_M, int D, int M_TILES>
void launch_block_sparse(const BlockSparseParams& p, cudaStream_t stream);

namespace {

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <typename T, int D>
void dispatch_block(const BlockSparseParams& p, cudaStream_t stream) {
  if (p.block_size == 64) {
    launch_block_sparse<T, 64, D, 1>(p, stream);
  } else if (p.m_tiles == 1) {
    launch_block_sparse<T, 128, D, 1>(p, stream);
  } else {
    launch_block_sparse<T, 128, D, 2>(p, stream);
  }
}

template <typename T>
void dispatch_head_dim(const BlockSparseParams& p, cudaStream_t stream) {
  if (p.head_dim == 64) {
    dispatch_block<T, 64>(p, stream);
  } else {
    dispatch_block<T, 128>(p, stream);
  }
}

}  // namespace

bool block_sparse_supported(const BlockSparseParams& p, std::string* why) {
  auto fail = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (p.dtype != DType::BFloat16 && p.dtype != DType::Float16) return fail("dtype must be bf16 or fp16");
  if (p.head_dim != 64 && p.head_dim != 128)
    return fail("head_dim " + std::to_string(p.head_dim) + " not in {64, 128}");
  if (p.block_size != 64 && p.block_size != 128)
    return fail("block_size " + std::to_string(p.block_size) + " not in {64, 128}");
  if (p.m_tiles != 0 && p.m_tiles != 1 && !(p.m_tiles == 2 && p.block_size == 128))
    return fail("m_tiles " + std::to_string(p.m_tiles) + " not built (0 = auto; 1; 2 with block 128)");
  if (p.mask_heads != 1 && p.mask_heads != p.heads)
    return fail("mask heads " + std::to_string(p.mask_heads) + " must be 1 or " + std::to_string(p.heads));
  if (p.batch <= 0 || p.heads <= 0 || p.seq_len <= 0) return fail("empty batch, heads or sequence");
  if (p.num_q_blocks != (p.seq_len + p.block_size - 1) / p.block_size || p.num_k_blocks != p.num_q_blocks)
    return fail("mask block counts do not match seq_len / block_size");
  if (p.num_items != p.heads * p.num_q_blocks) return fail("schedule must hold heads × query blocks items");
  // 16-byte vector loads: base pointers and every stride a multiple of 8 elements.
  for (const void* ptr : {p.q, p.k, p.v, static_cast<const void*>(p.o)})
    if (!aligned16(ptr)) return fail("q/k/v/o base pointers must be 16-byte aligned");
  for (int64_t s : {p.q_batch_stride, p.q_head_stride, p.q_row_stride, p.k_batch_stride,
                    p.k_head_stride, p.k_row_stride, p.v_batch_stride, p.v_head_stride,
                    p.v_row_stride, p.o_batch_stride, p.o_head_stride, p.o_row_stride})
    if (s % 8 != 0) return fail("batch/head/row strides must be multiples of 8 elements");
  if (!p.schedule) return fail("schedule not set");
  if ((p.row_offsets == nullptr) != (p.col_indices == nullptr))
    return fail("row_offsets and col_indices must both be set (or both null for the full mask)");
  return true;
}

void block_sparse_forward(const BlockSparseParams& p, cudaStream_t stream) {
  std::string why;
  if (!block_sparse_supported(p, &why)) throw CudaError("block_sparse_forward: unsupported case: " + why);
  if (p.dtype == DType::BFloat16) {
    dispatch_head_dim<__nv_bfloat16>(p, stream);
  } else {
    dispatch_head_dim<__half>(p, stream);
  }
}

}  // namespace longshot::attention::cuda

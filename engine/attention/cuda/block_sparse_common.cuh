// Device helpers both block-sparse kernels use (block_sparse_kernel.cuh: mma.sync;
// block_sparse_sm90.cuh: wgmma): shared-memory addresses, the base-2 exponential of the online
// softmax, packing two fp32 values into one 32-bit pair of 16-bit operands, and the decoding of
// a CTA's work item. Attention-only; helpers other rooms share live in engine/common/cuda/.
#pragma once
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/attention/cuda/block_sparse.h"

namespace longshot::attention::cuda {

namespace ptx {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace ptx

// A CTA's work item (p.schedule[blockIdx.x] = h * num_q_blocks + qb) decoded: head, query block
// and its mask row's kept key blocks, ascending (a shared mask, mask_heads 1, has one row per
// query block). No row arrays = the full mask (dense attention): key block i is simply i.
struct WorkItem {
  int h, qb;
  int num_blocks;     // kept key blocks of the row
  bool dense;
  const int* cols;    // the row's columns; null when dense
  __device__ __forceinline__ int key_block(int i) const { return dense ? i : cols[i]; }
};

__device__ __forceinline__ WorkItem work_item(const BlockSparseParams& p) {
  const int item = p.schedule[blockIdx.x];
  WorkItem w;
  w.h = item / p.num_q_blocks;
  w.qb = item - w.h * p.num_q_blocks;
  const int mask_row = p.mask_heads == 1 ? w.qb : item;
  w.dense = p.row_offsets == nullptr;
  const int row_begin = w.dense ? 0 : p.row_offsets[mask_row];
  w.num_blocks = w.dense ? p.num_k_blocks : p.row_offsets[mask_row + 1] - row_begin;
  w.cols = w.dense ? nullptr : p.col_indices + row_begin;
  return w;
}

// (lo, hi) rounded to T (bf16 or fp16), lo in the low half: the register layout of an MMA operand.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

}  // namespace longshot::attention::cuda

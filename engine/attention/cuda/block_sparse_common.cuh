// Device helpers both block-sparse kernels use (block_sparse_kernel.cuh: mma.sync;
// block_sparse_sm90.cuh: wgmma): shared-memory addresses, the base-2 exponential of the online
// softmax, packing two fp32 values into one 32-bit pair of 16-bit operands, and the decoding of
// a CTA's work item; and the CTA-wide reduction of the mask-selection kernels and the model's
// fused ops.
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

// Sum (MAX = false) or max over the calling thread's warp, complete in its lane 0. Any
// blockDim.x: in a partial last warp only its existing lanes shuffle, and a lane whose xor
// partner does not exist keeps its value (lane 0 still ends with the warp's whole result).
template <bool MAX>
__device__ __forceinline__ float warp_reduce(float v) {
  const int lane = threadIdx.x % 32;
  const int lanes = min(32, static_cast<int>(blockDim.x - (threadIdx.x - lane)));  // lanes of this warp
  const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(mask, v, o);
    if ((lane ^ o) < lanes) v = MAX ? fmaxf(v, other) : v + other;
  }
  return v;
}

// Sum (MAX = false) or max over the CTA, returned to every thread so they all take the same
// branches. scratch: ceil(blockDim.x / 32) floats of shared memory. Any blockDim.x (warp_reduce).
template <bool MAX>
__device__ __forceinline__ float block_allreduce(float v, float* scratch) {
  const int lane = threadIdx.x % 32;
  v = warp_reduce<MAX>(v);
  __syncthreads();  // scratch may still be read from the previous reduction
  if (lane == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float r = scratch[0];
  const int warps = (blockDim.x + 31) / 32;
  for (int w = 1; w < warps; ++w) r = MAX ? fmaxf(r, scratch[w]) : r + scratch[w];
  return r;
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

// Device helpers both block-sparse kernels use (block_sparse_kernel.cuh: mma.sync;
// block_sparse_sm90.cuh: wgmma): shared-memory addresses, the base-2 exponential of the online
// softmax, and packing two fp32 values into one 32-bit pair of 16-bit operands.
#pragma once
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

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

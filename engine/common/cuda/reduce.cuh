// Warp- and CTA-wide reductions shared by every room's kernels (the attention room's mask
// selection, the model's fused norms). Device code only; knows no room and no LibTorch.
#pragma once

namespace longshot::cuda {

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

}  // namespace longshot::cuda

// Per-row e4m3 quantisation (see fp8_quant.h). One CTA of 256 threads per row: the row (at most
// 8,960 values for Wan's FFN, ~35 per thread) is read twice — once for its amax, once to convert —
// and the second read hits L1/L2, so DRAM sees it once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <string>

#include "engine/common/cuda/cuda_check.h"
#include "engine/model/cuda/fp8_quant.h"

namespace longshot::model::cuda {

namespace {

constexpr int kThreads = 256;
constexpr float kE4m3Max = 448.f;

__device__ __forceinline__ float gelu_tanh(float v) {
  const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
  return 0.5f * v * (1.f + tanhf(u));
}

template <typename T>
__device__ __forceinline__ void load8(const T* p, bool gelu, float (&f)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) f[i] = gelu ? gelu_tanh(static_cast<float>(e[i])) : static_cast<float>(e[i]);
}

template <typename T>
__global__ void quantize_rows_kernel(const T* __restrict__ x, int K, int64_t ld, bool gelu, uint8_t* __restrict__ out,
                                     float* __restrict__ scale) {
  __shared__ float warp_max[kThreads / 32];
  const int64_t row = blockIdx.x;
  const T* src = x + row * ld;
  float amax = 0.f;
  for (int k = threadIdx.x * 8; k < K; k += kThreads * 8) {
    float f[8];
    load8(src + k, gelu, f);
#pragma unroll
    for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(f[i]));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = warp_max[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
  const float s = fmaxf(amax, 1e-12f) / kE4m3Max;
  if (threadIdx.x == 0) scale[row] = s;
  const float inv = 1.f / s;
  uint8_t* dst = out + row * static_cast<int64_t>(K);
  for (int k = threadIdx.x * 8; k < K; k += kThreads * 8) {
    float f[8];
    load8(src + k, gelu, f);
    uint2 packed;
    uint8_t* b = reinterpret_cast<uint8_t*>(&packed);
#pragma unroll
    for (int i = 0; i < 8; ++i) b[i] = __nv_cvt_float_to_fp8(f[i] * inv, __NV_SATFINITE, __NV_E4M3);
    *reinterpret_cast<uint2*>(dst + k) = packed;
  }
}

}  // namespace

void quantize_rows_e4m3(const void* x, bool fp16, int64_t rows, int K, int64_t ld, bool gelu, uint8_t* out,
                        float* scale, cudaStream_t stream) {
  if (K <= 0 || K % 8 != 0 || ld < K || ld % 8 != 0)
    throw ::longshot::CudaError("quantize_rows_e4m3: K " + std::to_string(K) + " and row stride " + std::to_string(ld) +
                                " must be multiples of 8 with stride >= K");
  if (rows <= 0) return;
  if (fp16)
    quantize_rows_kernel<__half><<<rows, kThreads, 0, stream>>>(static_cast<const __half*>(x), K, ld, gelu, out, scale);
  else
    quantize_rows_kernel<__nv_bfloat16><<<rows, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), K, ld, gelu,
                                                                       out, scale);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::model::cuda

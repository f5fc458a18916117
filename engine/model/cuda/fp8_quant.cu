// Per-row e4m3 quantisation (see fp8_quant.h). One CTA of 256 threads per row. Rows of at most
// 10,240 values (Wan's FFN hidden is 8,960: ~35 per thread) stay in registers between the amax and
// the conversion; longer rows are read twice, the second read hitting L1/L2.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <string>

#include "engine/common/cuda/cuda_check.h"
#include "engine/common/cuda/reduce.cuh"
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

// The CTA's amax (each thread's partial in `amax`) → the row's scale, stored by thread 0 at *scale;
// returns 1 / scale to every thread.
__device__ __forceinline__ float row_scale(float amax, float* scale) {
  __shared__ float warp_max[kThreads / 32];
  amax = ::longshot::cuda::block_allreduce<true>(amax, warp_max);
  const float s = fmaxf(amax, 1e-12f) / kE4m3Max;
  if (threadIdx.x == 0) *scale = s;
  return 1.f / s;
}

template <typename T>
__global__ void quantize_rows_kernel(const T* __restrict__ x, int K, int64_t ld, bool gelu, uint8_t* __restrict__ out,
                                     float* __restrict__ scale) {
  const int64_t row = blockIdx.x;
  const T* src = x + row * ld;
  float amax = 0.f;
  for (int k = threadIdx.x * 8; k < K; k += kThreads * 8) {
    float f[8];
    load8(src + k, gelu, f);
#pragma unroll
    for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(f[i]));
  }
  const float inv = row_scale(amax, scale + row);
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

// The same with the row held in registers (at most kMaxChunks chunks of 8 per thread: K ≤ 10,240, as
// Wan's FFN hidden 8,960 and every model width): one read of x and one GELU per value. The kernel
// above reads the row twice and evaluates GELU(tanh) twice per value; at Wan2.1-1.3B's FFN down
// input (32,760 × 8,960) its row was most of the FP8 down projection's gap to the bf16 one (1.42
// against 1.17 ms on an H100, 2026-12-07).
constexpr int kMaxChunks = 5;

template <typename T, int CHUNKS>
__global__ void __launch_bounds__(kThreads)
    quantize_rows_reg_kernel(const T* __restrict__ x, int K, int64_t ld, bool gelu, uint8_t* __restrict__ out,
                             float* __restrict__ scale) {
  const int64_t row = blockIdx.x;
  const T* src = x + row * ld;
  float f[CHUNKS][8];
  float amax = 0.f;
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) {
    const int k = (threadIdx.x + j * kThreads) * 8;
    if (k < K) {
      load8(src + k, gelu, f[j]);
#pragma unroll
      for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(f[j][i]));
    }
  }
  const float inv = row_scale(amax, scale + row);
  uint8_t* dst = out + row * static_cast<int64_t>(K);
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) {
    const int k = (threadIdx.x + j * kThreads) * 8;
    if (k < K) {
      uint2 packed;
      uint8_t* b = reinterpret_cast<uint8_t*>(&packed);
#pragma unroll
      for (int i = 0; i < 8; ++i) b[i] = __nv_cvt_float_to_fp8(f[j][i] * inv, __NV_SATFINITE, __NV_E4M3);
      *reinterpret_cast<uint2*>(dst + k) = packed;
    }
  }
}

}  // namespace

void quantize_rows_e4m3(const void* x, bool fp16, int64_t rows, int K, int64_t ld, bool gelu, uint8_t* out,
                        float* scale, cudaStream_t stream, bool rows_in_registers) {
  if (K <= 0 || K % 8 != 0 || ld < K || ld % 8 != 0)
    throw ::longshot::CudaError("quantize_rows_e4m3: K " + std::to_string(K) + " and row stride " + std::to_string(ld) +
                                " must be multiples of 8 with stride >= K");
  if (rows <= 0) return;
  const int chunks = (K / 8 + kThreads - 1) / kThreads;  // chunks of 8 per thread
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    const T* src = static_cast<const T*>(x);
    switch (chunks) {
      case 1: quantize_rows_reg_kernel<T, 1><<<rows, kThreads, 0, stream>>>(src, K, ld, gelu, out, scale); return true;
      case 2: quantize_rows_reg_kernel<T, 2><<<rows, kThreads, 0, stream>>>(src, K, ld, gelu, out, scale); return true;
      case 3: quantize_rows_reg_kernel<T, 3><<<rows, kThreads, 0, stream>>>(src, K, ld, gelu, out, scale); return true;
      case 4: quantize_rows_reg_kernel<T, 4><<<rows, kThreads, 0, stream>>>(src, K, ld, gelu, out, scale); return true;
      case 5: quantize_rows_reg_kernel<T, 5><<<rows, kThreads, 0, stream>>>(src, K, ld, gelu, out, scale); return true;
      default: return false;
    }
  };
  static_assert(kMaxChunks == 5, "the switch above covers 1 .. kMaxChunks");
  if (rows_in_registers && (fp16 ? launch(__half{}) : launch(__nv_bfloat16{}))) {
    LONGSHOT_CUDA_CHECK(cudaGetLastError());
    return;
  }
  if (fp16)
    quantize_rows_kernel<__half><<<rows, kThreads, 0, stream>>>(static_cast<const __half*>(x), K, ld, gelu, out, scale);
  else
    quantize_rows_kernel<__nv_bfloat16><<<rows, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), K, ld, gelu,
                                                                       out, scale);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::model::cuda

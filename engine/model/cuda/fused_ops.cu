// Fused DiT-block kernels (see fused_ops.h). One CTA per token row for the norms (C / 8 threads,
// 8 elements and one 16-byte load each), a grid-stride loop for the residual update.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "engine/attention/cuda/cuda_check.h"
#include "engine/attention/cuda/kernel_common.cuh"
#include "engine/model/cuda/fused_ops.h"

namespace longshot::model::cuda {

namespace {

constexpr int kMaxThreads = 1024;  // C <= 8192

// Streaming multiprocessors of the current device, read once per device (the grid-stride
// kernel's grid: 16 CTAs of 256 threads per SM keep every SM full).
int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> counts[kMaxDevices];  // 0 = not read yet
  int device = 0;
  LONGSHOT_CUDA_CHECK(cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices) return 132;
  int n = counts[device].load(std::memory_order_relaxed);
  if (n == 0) {
    LONGSHOT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    n = n > 0 ? n : 132;
    counts[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

template <typename T>
struct Vec8 {
  uint4 raw;
  __device__ __forceinline__ void to_float(float (&f)[8]) const {
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = static_cast<float>(e[i]);
  }
  __device__ __forceinline__ static uint4 from_float(const float (&f)[8]) {
    uint4 out;
    T* e = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = static_cast<T>(f[i]);
    return out;
  }
};

template <typename T>
__global__ void rmsnorm_rope_kernel(const T* __restrict__ y, const float* __restrict__ weight,
                                    const float* __restrict__ cos, const float* __restrict__ sin, int C, int head_dim,
                                    int64_t tokens, float eps, T* __restrict__ out) {
  __shared__ float scratch[kMaxThreads / 32];
  const int64_t row = blockIdx.x;
  const int c0 = threadIdx.x * 8;
  float v[8];
  Vec8<T> in{*reinterpret_cast<const uint4*>(y + row * C + c0)};
  in.to_float(v);
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) ss += v[i] * v[i];
  const float inv = rsqrtf(::longshot::attention::cuda::block_allreduce<false>(ss, scratch) / static_cast<float>(C) + eps);
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = v[i] * inv * weight[c0 + i];
  if (cos != nullptr) {
    const int64_t n = row % tokens;
    const int pair0 = (c0 % head_dim) / 2;  // 8 elements = 4 pairs of one head (head_dim % 8 == 0)
    const float* cr = cos + n * (head_dim / 2) + pair0;
    const float* sr = sin + n * (head_dim / 2) + pair0;
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const float a = v[2 * p], b = v[2 * p + 1], c = cr[p], s = sr[p];
      v[2 * p] = a * c - b * s;
      v[2 * p + 1] = a * s + b * c;
    }
  }
  *reinterpret_cast<uint4*>(out + row * C + c0) = Vec8<T>::from_float(v);
}

template <typename T>
__global__ void layernorm_modulate_kernel(const float* __restrict__ x, const float* __restrict__ shift,
                                          const float* __restrict__ scale, int C, int64_t tokens, float eps,
                                          T* __restrict__ out) {
  __shared__ float scratch[kMaxThreads / 32];
  const int64_t row = blockIdx.x;
  const int c0 = threadIdx.x * 8;
  const float4* src = reinterpret_cast<const float4*>(x + row * C + c0);
  const float4 a = src[0], b = src[1];
  float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s += v[i];
  const float mean = ::longshot::attention::cuda::block_allreduce<false>(s, scratch) / static_cast<float>(C);
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) sq += (v[i] - mean) * (v[i] - mean);
  const float inv = rsqrtf(::longshot::attention::cuda::block_allreduce<false>(sq, scratch) / static_cast<float>(C) + eps);
  const int64_t bi = row / tokens;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    v[i] = (v[i] - mean) * inv;
    if (scale != nullptr) v[i] = v[i] * (1.f + scale[bi * C + c0 + i]) + shift[bi * C + c0 + i];
  }
  *reinterpret_cast<uint4*>(out + row * C + c0) = Vec8<T>::from_float(v);
}

template <typename T>
__global__ void gated_residual_add_kernel(float* __restrict__ x, const T* __restrict__ y, const float* __restrict__ gate,
                                          int64_t rows, int C, int64_t tokens) {
  const int64_t chunks = rows * (C / 8);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < chunks;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / (C / 8);
    const int c0 = static_cast<int>(i % (C / 8)) * 8;
    float v[8];
    Vec8<T> in{*reinterpret_cast<const uint4*>(y + row * C + c0)};
    in.to_float(v);
    float4* dst = reinterpret_cast<float4*>(x + row * C + c0);
    float4 a = dst[0], b = dst[1];
    if (gate != nullptr) {
      const float* g = gate + (row / tokens) * C + c0;
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] *= g[k];
    }
    a.x += v[0], a.y += v[1], a.z += v[2], a.w += v[3];
    b.x += v[4], b.y += v[5], b.z += v[6], b.w += v[7];
    dst[0] = a, dst[1] = b;
  }
}

void check_dims(int C, const char* who) {
  if (C <= 0 || C % 8 != 0 || C / 8 > kMaxThreads)
    throw ::longshot::CudaError(std::string(who) + ": dim " + std::to_string(C) + " must be a positive multiple of 8, at most 8192");
}

}  // namespace

void rmsnorm_rope(const void* y, const float* weight, const float* cos, const float* sin, bool fp16, int64_t rows,
                  int C, int head_dim, int64_t tokens, float eps, void* out, cudaStream_t stream) {
  check_dims(C, "rmsnorm_rope");
  if (cos != nullptr && (head_dim % 8 != 0 || C % head_dim != 0))
    throw ::longshot::CudaError("rmsnorm_rope: head_dim " + std::to_string(head_dim) + " must divide dim and be a multiple of 8");
  if (rows <= 0) return;
  if (fp16)
    rmsnorm_rope_kernel<__half><<<rows, C / 8, 0, stream>>>(static_cast<const __half*>(y), weight, cos, sin, C, head_dim,
                                                           tokens, eps, static_cast<__half*>(out));
  else
    rmsnorm_rope_kernel<__nv_bfloat16><<<rows, C / 8, 0, stream>>>(static_cast<const __nv_bfloat16*>(y), weight, cos, sin,
                                                                  C, head_dim, tokens, eps, static_cast<__nv_bfloat16*>(out));
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

void layernorm_modulate(const float* x, const float* shift, const float* scale, bool fp16, int64_t rows, int C,
                        int64_t tokens, float eps, void* out, cudaStream_t stream) {
  check_dims(C, "layernorm_modulate");
  if (rows <= 0) return;
  if (fp16)
    layernorm_modulate_kernel<__half><<<rows, C / 8, 0, stream>>>(x, shift, scale, C, tokens, eps, static_cast<__half*>(out));
  else
    layernorm_modulate_kernel<__nv_bfloat16><<<rows, C / 8, 0, stream>>>(x, shift, scale, C, tokens, eps,
                                                                        static_cast<__nv_bfloat16*>(out));
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

void gated_residual_add(float* x, const void* y, const float* gate, bool fp16, int64_t rows, int C, int64_t tokens,
                        cudaStream_t stream) {
  check_dims(C, "gated_residual_add");
  if (rows <= 0) return;
  const int64_t chunks = rows * (C / 8);
  const int blocks = static_cast<int>(std::min<int64_t>((chunks + 255) / 256, 16 * sm_count()));
  if (fp16)
    gated_residual_add_kernel<__half><<<blocks, 256, 0, stream>>>(x, static_cast<const __half*>(y), gate, rows, C, tokens);
  else
    gated_residual_add_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(x, static_cast<const __nv_bfloat16*>(y), gate,
                                                                        rows, C, tokens);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::model::cuda

// Fused DiT-block kernels (see fused_ops.h). One CTA per token row for the norms (C / 8 threads,
// 8 elements and one 16-byte load each), a grid-stride loop for the residual update.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>

#include "engine/common/cuda/cuda_check.h"
#include "engine/common/cuda/reduce.cuh"
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

// RoPE on a thread's 8 elements c0 .. c0 + 7 of one token: 4 pairs of one head (head_dim % 8 == 0),
// each rotated by its angle; cr/sr point at the token's [head_dim / 2] cos/sin.
__device__ __forceinline__ void rotate_pairs(float (&v)[8], const float* cr, const float* sr, int head_dim, int c0) {
  const int pair0 = (c0 % head_dim) / 2;
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const float a = v[2 * p], b = v[2 * p + 1], c = cr[pair0 + p], s = sr[pair0 + p];
    v[2 * p] = a * c - b * s;
    v[2 * p + 1] = a * s + b * c;
  }
}

template <typename T>
__global__ void rmsnorm_rope_kernel(const T* __restrict__ y, const float* __restrict__ weight,
                                    const float* __restrict__ cos, const float* __restrict__ sin, int C, int head_dim,
                                    int64_t tokens, float eps, T* __restrict__ out, int64_t ld) {
  __shared__ float scratch[kMaxThreads / 32];
  const int64_t row = blockIdx.x;
  const int c0 = threadIdx.x * 8;
  float v[8];
  Vec8<T> in{*reinterpret_cast<const uint4*>(y + row * ld + c0)};
  in.to_float(v);
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) ss += v[i] * v[i];
  const float inv = rsqrtf(::longshot::cuda::block_allreduce<false>(ss, scratch) / static_cast<float>(C) + eps);
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = v[i] * inv * weight[c0 + i];
  if (cos != nullptr) {
    const int64_t n = row % tokens;
    rotate_pairs(v, cos + n * (head_dim / 2), sin + n * (head_dim / 2), head_dim, c0);
  }
  *reinterpret_cast<uint4*>(out + row * C + c0) = Vec8<T>::from_float(v);
}

// The same rows with the outputs' group means on the side (the block means a dynamic mask scores).
// A CTA takes kPoolRows consecutive rows in batches of kPoolBatch: the next batch's loads are in
// flight while one is normalised, a batch's sums of squares meet in one shared-memory exchange,
// and the rows' RoPE angles are staged in shared memory up front. Each thread sums its 8 outputs
// (as stored, rounded to T) · 1 / |group| in registers while the rows stay in one (batch, group)
// cell and adds them to `pooled` when the cell changes (float4 atomics on sm_90). Measured on an
// H100 at 32,760 × 1536 bf16: 91.5 µs against 101.8 µs for the one-row-per-CTA kernel without
// pooling; keeping all rows' loads in registers instead (low occupancy) or flushing every 4 rows
// (50 MB of atomics) cost 15–25 µs more.
constexpr int kPoolBatch = 2, kPoolRows = 32;
constexpr int kMaxRopeHalf = 64;  // head_dim <= 128 stages its angles (16 KB); wider heads read them from memory

template <typename T>
__global__ void rmsnorm_rope_pool_kernel(const T* __restrict__ y, const float* __restrict__ weight,
                                         const float* __restrict__ cos, const float* __restrict__ sin, int C,
                                         int head_dim, int64_t rows, int64_t tokens, float eps, int group,
                                         T* __restrict__ out, float* __restrict__ pooled, int64_t ld) {
  __shared__ float part[2][kPoolBatch][kMaxThreads / 32];
  __shared__ float rope_cs[2][kPoolRows][kMaxRopeHalf];
  const int c0 = threadIdx.x * 8;
  const int heads = C / head_dim, h = c0 / head_dim, d0 = c0 % head_dim, half = head_dim / 2;
  const int64_t groups = (tokens + group - 1) / group;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kPoolRows;
  const int count = static_cast<int>(r0 + kPoolRows < rows ? kPoolRows : rows - r0);
  float wt[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) wt[i] = weight[c0 + i];
  uint4 raw[kPoolBatch], next[kPoolBatch];
#pragma unroll
  for (int r = 0; r < kPoolBatch; ++r)
    if (r < count) next[r] = *reinterpret_cast<const uint4*>(y + (r0 + r) * ld + c0);
  // Position of the first row: one 64-bit division per CTA, the rows then step through it.
  int64_t b = r0 / tokens, n = r0 % tokens, g = n / group, g_end = (g + 1) * group < tokens ? (g + 1) * group : tokens;
  const bool stage = cos != nullptr && half <= kMaxRopeHalf;
  if (stage) {
    for (int e = threadIdx.x; e < count * half; e += blockDim.x) {
      const int r = e / half, p = e % half;
      int64_t m = n + r;
      while (m >= tokens) m -= tokens;
      rope_cs[0][r][p] = cos[m * half + p];
      rope_cs[1][r][p] = sin[m * half + p];
    }
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  float w = 1.f / static_cast<float>(g_end - g * group);  // 1 / |group|
  auto flush = [&] {
    float* p = pooled + ((b * heads + h) * groups + g) * head_dim + d0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float4*>(p), make_float4(acc[0], acc[1], acc[2], acc[3]));
    atomicAdd(reinterpret_cast<float4*>(p + 4), make_float4(acc[4], acc[5], acc[6], acc[7]));
#else
#pragma unroll
    for (int i = 0; i < 8; ++i) atomicAdd(p + i, acc[i]);
#endif
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] = 0.f;
  };
  for (int bt = 0; bt * kPoolBatch < count; ++bt) {
    const int base = bt * kPoolBatch;
#pragma unroll
    for (int r = 0; r < kPoolBatch; ++r) raw[r] = next[r];
#pragma unroll
    for (int r = 0; r < kPoolBatch; ++r)
      if (base + kPoolBatch + r < count) next[r] = *reinterpret_cast<const uint4*>(y + (r0 + base + kPoolBatch + r) * ld + c0);
#pragma unroll
    for (int r = 0; r < kPoolBatch; ++r) {
      float v[8];
      Vec8<T>{raw[r]}.to_float(v);
      float ss = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) ss += v[i] * v[i];
      ss = ::longshot::cuda::warp_reduce<false>(ss);
      if (lane == 0) part[bt & 1][r][warp] = ss;  // double-buffered: the last batch may still be reading the other
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kPoolBatch; ++r) {
      const int rr = base + r;
      if (rr >= count) break;
      float ss = 0.f;
      for (int k = 0; k < warps; ++k) ss += part[bt & 1][r][k];
      const float inv = rsqrtf(ss / static_cast<float>(C) + eps);
      float v[8];
      Vec8<T>{raw[r]}.to_float(v);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = v[i] * inv * wt[i];
      if (stage) rotate_pairs(v, rope_cs[0][rr], rope_cs[1][rr], head_dim, c0);
      else if (cos != nullptr) rotate_pairs(v, cos + n * half, sin + n * half, head_dim, c0);
      const uint4 packed = Vec8<T>::from_float(v);
      *reinterpret_cast<uint4*>(out + (r0 + rr) * C + c0) = packed;
      float f[8];
      Vec8<T>{packed}.to_float(f);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] += f[i] * w;
      if (++n == g_end) {  // the cell ends: hand its sums over, step to the next group / sequence
        flush();
        if (n == tokens) n = 0, ++b, g = 0;
        else ++g;
        g_end = (g + 1) * group < tokens ? (g + 1) * group : tokens;
        w = 1.f / static_cast<float>(g_end - g * group);
      }
    }
  }
  if (n != g * group) flush();  // a cell left open at the CTA's end
}

// A thread's 8 residual values as fp32: the stream is fp32 (two 16-byte loads) or 16-bit (one).
__device__ __forceinline__ void load_row8(const float* p, float (&v)[8]) {
  const float4* src = reinterpret_cast<const float4*>(p);
  const float4 a = src[0], b = src[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
template <typename T>
__device__ __forceinline__ void load_row8(const T* p, float (&v)[8]) {
  Vec8<T>{*reinterpret_cast<const uint4*>(p)}.to_float(v);
}

// X: the residual stream's element type (float, or T itself for a 16-bit stream).
template <typename X, typename T>
__global__ void layernorm_modulate_kernel(const X* __restrict__ x, const float* __restrict__ shift,
                                          const float* __restrict__ scale, int C, int64_t tokens, float eps,
                                          T* __restrict__ out) {
  __shared__ float scratch[kMaxThreads / 32];
  const int64_t row = blockIdx.x;
  const int c0 = threadIdx.x * 8;
  float v[8];
  load_row8(x + row * C + c0, v);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s += v[i];
  const float mean = ::longshot::cuda::block_allreduce<false>(s, scratch) / static_cast<float>(C);
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) sq += (v[i] - mean) * (v[i] - mean);
  const float inv = rsqrtf(::longshot::cuda::block_allreduce<false>(sq, scratch) / static_cast<float>(C) + eps);
  const int64_t bi = row / tokens;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    v[i] = (v[i] - mean) * inv;
    if (scale != nullptr) v[i] = v[i] * (1.f + scale[bi * C + c0 + i]) + shift[bi * C + c0 + i];
  }
  *reinterpret_cast<uint4*>(out + row * C + c0) = Vec8<T>::from_float(v);
}

// The same LayerNorm with one warp per row, for C = 256 · N (Wan2.1-1.3B: 1536, N = 6): each lane
// holds N chunks of 8 (coalesced: chunk c of lane l is columns (32 · c + l) · 8 ..), issues all N
// loads at once and reduces with shuffles only. The CTA-per-row kernel above keeps one 16-byte load
// in flight per thread between two CTA-wide reductions and reads shift/scale element by element
// after them; measured on an H100 at 32,760 × 1536 it ran at ≈ 1.4 TB/s (0.147 ms per norm with a
// bf16 stream) against ≈ 3 TB/s for a copy. shift/scale are read as float4 (from L1: every row of a
// sample reads the same [C]).
// The warp's sum (common/cuda's warp_reduce, complete in lane 0) handed to every lane.
__device__ __forceinline__ float warp_allsum(float v) {
  return __shfl_sync(0xffffffffu, ::longshot::cuda::warp_reduce<false>(v), 0);
}

constexpr int kWarpRowsPerCta = 8;

template <int N, typename X, typename T>
__global__ void __launch_bounds__(32 * kWarpRowsPerCta)
    layernorm_modulate_warp_kernel(const X* __restrict__ x, const float* __restrict__ shift,
                                   const float* __restrict__ scale, int64_t rows, int64_t tokens, float eps,
                                   T* __restrict__ out) {
  constexpr int C = 256 * N;
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpRowsPerCta + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp: the shuffles below see full warps only
  float v[N][8];
#pragma unroll
  for (int c = 0; c < N; ++c) load_row8(x + row * C + (32 * c + lane) * 8, v[c]);
  float s = 0.f;
#pragma unroll
  for (int c = 0; c < N; ++c)
#pragma unroll
    for (int i = 0; i < 8; ++i) s += v[c][i];
  const float mean = warp_allsum(s) / static_cast<float>(C);
  float sq = 0.f;
#pragma unroll
  for (int c = 0; c < N; ++c)
#pragma unroll
    for (int i = 0; i < 8; ++i) sq += (v[c][i] - mean) * (v[c][i] - mean);
  const float inv = rsqrtf(warp_allsum(sq) / static_cast<float>(C) + eps);
  const int64_t bi = row / tokens;
#pragma unroll
  for (int c = 0; c < N; ++c) {
    const int c0 = (32 * c + lane) * 8;
    float o[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] = (v[c][i] - mean) * inv;
    if (scale != nullptr) {
      const float4* sc = reinterpret_cast<const float4*>(scale + bi * C + c0);
      const float4* sh = reinterpret_cast<const float4*>(shift + bi * C + c0);
      const float4 a = __ldg(sc), b = __ldg(sc + 1), d = __ldg(sh), e = __ldg(sh + 1);
      const float m[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
      const float t[8] = {d.x, d.y, d.z, d.w, e.x, e.y, e.z, e.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) o[i] = o[i] * (1.f + m[i]) + t[i];
    }
    *reinterpret_cast<uint4*>(out + row * C + c0) = Vec8<T>::from_float(o);
  }
}

template <typename X, typename T>
__global__ void gated_residual_add_kernel(X* __restrict__ x, const T* __restrict__ y, const float* __restrict__ gate,
                                          int64_t rows, int C, int64_t tokens) {
  const int64_t chunks = rows * (C / 8);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < chunks;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / (C / 8);
    const int c0 = static_cast<int>(i % (C / 8)) * 8;
    float v[8];
    Vec8<T> in{*reinterpret_cast<const uint4*>(y + row * C + c0)};
    in.to_float(v);
    if (gate != nullptr) {
      const float* g = gate + (row / tokens) * C + c0;
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] *= g[k];
    }
    if constexpr (std::is_same_v<X, float>) {
      float4* dst = reinterpret_cast<float4*>(x + row * C + c0);
      float4 a = dst[0], b = dst[1];
      a.x += v[0], a.y += v[1], a.z += v[2], a.w += v[3];
      b.x += v[4], b.y += v[5], b.z += v[6], b.w += v[7];
      dst[0] = a, dst[1] = b;
    } else {  // a 16-bit stream: the sum in fp32, rounded once (diffusers' (x.float() + y · gate).type_as(x))
      float r[8];
      load_row8(x + row * C + c0, r);
#pragma unroll
      for (int k = 0; k < 8; ++k) r[k] += v[k];
      *reinterpret_cast<uint4*>(x + row * C + c0) = Vec8<X>::from_float(r);
    }
  }
}

void check_dims(int C, const char* who) {
  if (C <= 0 || C % 8 != 0 || C / 8 > kMaxThreads)
    throw ::longshot::CudaError(std::string(who) + ": dim " + std::to_string(C) + " must be a positive multiple of 8, at most 8192");
}

}  // namespace

void rmsnorm_rope(const void* y, const float* weight, const float* cos, const float* sin, bool fp16, int64_t rows,
                  int C, int head_dim, int64_t tokens, float eps, void* out, cudaStream_t stream, int pool_group,
                  float* pooled, int64_t y_row_stride) {
  check_dims(C, "rmsnorm_rope");
  const int64_t ld = y_row_stride == 0 ? C : y_row_stride;
  if (ld < C || ld % 8 != 0)
    throw ::longshot::CudaError("rmsnorm_rope: row stride " + std::to_string(ld) + " must be >= C and a multiple of 8");
  if ((cos != nullptr || pooled != nullptr) && (head_dim <= 0 || head_dim % 8 != 0 || C % head_dim != 0))
    throw ::longshot::CudaError("rmsnorm_rope: head_dim " + std::to_string(head_dim) + " must divide dim and be a multiple of 8");
  if (pooled != nullptr && pool_group <= 0)
    throw ::longshot::CudaError("rmsnorm_rope: pool group " + std::to_string(pool_group) + " must be positive");
  if (rows <= 0) return;
  if (tokens <= 0 || rows % tokens != 0)
    throw ::longshot::CudaError("rmsnorm_rope: " + std::to_string(rows) + " rows are not whole sequences of " + std::to_string(tokens));
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    if (pooled == nullptr) {
      rmsnorm_rope_kernel<T><<<rows, C / 8, 0, stream>>>(static_cast<const T*>(y), weight, cos, sin, C, head_dim, tokens,
                                                         eps, static_cast<T*>(out), ld);
    } else {
      const auto ctas = static_cast<unsigned>((rows + kPoolRows - 1) / kPoolRows);
      rmsnorm_rope_pool_kernel<T><<<ctas, C / 8, 0, stream>>>(static_cast<const T*>(y), weight, cos, sin, C, head_dim,
                                                              rows, tokens, eps, pool_group, static_cast<T*>(out), pooled, ld);
    }
  };
  if (fp16) launch(__half{});
  else launch(__nv_bfloat16{});
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

namespace {

// N = C / 256 as a template argument (1 .. 8), or false where C is not such a width.
template <typename F>
bool with_row_chunks(int C, F&& f) {
  if (C % 256 != 0) return false;
  switch (C / 256) {
    case 1: f(std::integral_constant<int, 1>{}); return true;
    case 2: f(std::integral_constant<int, 2>{}); return true;
    case 3: f(std::integral_constant<int, 3>{}); return true;
    case 4: f(std::integral_constant<int, 4>{}); return true;
    case 5: f(std::integral_constant<int, 5>{}); return true;
    case 6: f(std::integral_constant<int, 6>{}); return true;
    case 7: f(std::integral_constant<int, 7>{}); return true;
    case 8: f(std::integral_constant<int, 8>{}); return true;
    default: return false;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void layernorm_modulate(const void* x, bool x16, const float* shift, const float* scale, bool fp16, int64_t rows, int C,
                        int64_t tokens, float eps, void* out, cudaStream_t stream, bool row_per_warp) {
  check_dims(C, "layernorm_modulate");
  if (rows <= 0) return;
  const bool vec_mod = scale == nullptr || (aligned16(shift) && aligned16(scale));
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    const auto ctas = static_cast<unsigned>((rows + kWarpRowsPerCta - 1) / kWarpRowsPerCta);
    if (row_per_warp && vec_mod && with_row_chunks(C, [&](auto n) {
          constexpr int N = decltype(n)::value;
          if (x16)
            layernorm_modulate_warp_kernel<N, T, T><<<ctas, 32 * kWarpRowsPerCta, 0, stream>>>(
                static_cast<const T*>(x), shift, scale, rows, tokens, eps, static_cast<T*>(out));
          else
            layernorm_modulate_warp_kernel<N, float, T><<<ctas, 32 * kWarpRowsPerCta, 0, stream>>>(
                static_cast<const float*>(x), shift, scale, rows, tokens, eps, static_cast<T*>(out));
        }))
      return;
    if (x16)
      layernorm_modulate_kernel<T, T><<<rows, C / 8, 0, stream>>>(static_cast<const T*>(x), shift, scale, C, tokens, eps,
                                                                  static_cast<T*>(out));
    else
      layernorm_modulate_kernel<float, T><<<rows, C / 8, 0, stream>>>(static_cast<const float*>(x), shift, scale, C,
                                                                      tokens, eps, static_cast<T*>(out));
  };
  if (fp16) launch(__half{});
  else launch(__nv_bfloat16{});
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

void gated_residual_add(void* x, bool x16, const void* y, const float* gate, bool fp16, int64_t rows, int C,
                        int64_t tokens, cudaStream_t stream) {
  check_dims(C, "gated_residual_add");
  if (rows <= 0) return;
  const int64_t chunks = rows * (C / 8);
  const int blocks = static_cast<int>(std::min<int64_t>((chunks + 255) / 256, 16 * sm_count()));
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    if (x16)
      gated_residual_add_kernel<T, T><<<blocks, 256, 0, stream>>>(static_cast<T*>(x), static_cast<const T*>(y), gate,
                                                                  rows, C, tokens);
    else
      gated_residual_add_kernel<float, T><<<blocks, 256, 0, stream>>>(static_cast<float*>(x), static_cast<const T*>(y),
                                                                      gate, rows, C, tokens);
  };
  if (fp16) launch(__half{});
  else launch(__nv_bfloat16{});
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::model::cuda

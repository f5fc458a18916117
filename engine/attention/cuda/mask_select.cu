// Mask-building kernels (see mask_select.h for each contract):
//   cumulative_keep  radial-dynamic's cumulative-mass selection. Replaces a float64 segmented sort
//                    over [H, nb, nb] (86 ms per layer at nb = 1536 on an H100) with one pass: each
//                    CTA keeps its row in registers and bisects on θ with block reductions.
//   block_mean_pool  block means of Q or K in one 16-byte-load pass.
//   topk_cols        top-k key blocks per row straight into ascending BSR columns (a warp per row).
//   keep_counts      a keep bitmap's kept count per row (a warp per row), for the BSR offsets.
//   keep_cols        a [rows, nb] keep bitmap's kept columns into BSR (replaces nonzero, which
//                    writes two int64 per kept block and syncs to size its output).
#include <cfloat>
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/attention/cuda/mask_select.h"
#include "engine/common/cuda/cuda_check.h"
#include "engine/common/cuda/reduce.cuh"

namespace longshot::attention::cuda {

namespace {

using ::longshot::cuda::block_allreduce;

constexpr int kThreads = 128;
constexpr int kPerThread = kCumulativeKeepMaxBlocks / kThreads;

__global__ void __launch_bounds__(kThreads) cumulative_keep_kernel(const float* __restrict__ logits,
                                                                   const float* __restrict__ log_len,
                                                                   const uint8_t* __restrict__ cand,
                                                                   const uint8_t* __restrict__ forced, float tau,
                                                                   int nb, uint8_t* __restrict__ keep) {
  __shared__ float scratch[kThreads / 32];
  const int64_t row = blockIdx.x;
  const int i = static_cast<int>(row % nb);
  const float* lg = logits + row * nb;
  const uint8_t* c_row = cand + static_cast<int64_t>(i) * nb;
  const uint8_t* f_row = forced + static_cast<int64_t>(i) * nb;

  float m[kPerThread];
  uint8_t kind[kPerThread];  // 0 not a candidate, 1 open candidate, 2 forced
  float peak = -FLT_MAX;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int j = threadIdx.x + k * kThreads;
    kind[k] = 0;
    m[k] = -FLT_MAX;
    if (j < nb && c_row[j]) {
      kind[k] = f_row[j] ? 2 : 1;
      m[k] = lg[j] + log_len[j];
      peak = fmaxf(peak, m[k]);
    }
  }
  peak = block_allreduce<true>(peak, scratch);
  float total = 0.f, forced_mass = 0.f;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    m[k] = kind[k] ? __expf(m[k] - peak) : 0.f;
    total += m[k];
    if (kind[k] == 2) forced_mass += m[k];
  }
  total = block_allreduce<false>(total, scratch);
  forced_mass = block_allreduce<false>(forced_mass, scratch);
  const float need = tau * total;

  // F(θ) = forced + Σ open masses ≥ θ reaches `need`: true at θ = 0, false above 1 (the peak's
  // mass) unless the forced mass alone reaches it. Invariant F(lo), !F(hi).
  float theta = FLT_MAX;  // no open block
  if (forced_mass < need) {
    uint32_t lo = 0, hi = __float_as_uint(1.0f) + 1;
    while (hi - lo > 1) {
      const uint32_t mid = lo + (hi - lo) / 2;
      const float th = __uint_as_float(mid);
      float s = 0.f;
#pragma unroll
      for (int k = 0; k < kPerThread; ++k)
        if (kind[k] == 1 && m[k] >= th) s += m[k];
      s = block_allreduce<false>(s, scratch);
      if (forced_mass + s >= need) lo = mid;
      else hi = mid;
    }
    theta = __uint_as_float(lo);
  }
  uint8_t* out = keep + row * nb;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int j = threadIdx.x + k * kThreads;
    if (j < nb) out[j] = kind[k] == 2 || (kind[k] == 1 && m[k] >= theta) ? 1 : 0;
  }
}

// ---- block_mean_pool: one CTA per (b, h, block); thread = (16-byte column chunk, row group).
template <typename T, int D>
__global__ void __launch_bounds__(128) block_mean_pool_kernel(const T* __restrict__ x, int H, int N, int64_t bs,
                                                              int64_t hs, int64_t rs, int block, int nb,
                                                              float* __restrict__ out) {
  constexpr int kChunks = D / 8;            // 16-byte chunks per row
  constexpr int kGroups = 128 / kChunks;    // rows read in parallel
  __shared__ float partial[kGroups][D];
  const int cell = blockIdx.x;              // (b * H + h) * nb + blk
  const int blk = cell % nb;
  const int bh = cell / nb;
  const int b = bh / H, h = bh % H;
  const int chunk = threadIdx.x % kChunks, group = threadIdx.x / kChunks;
  const int row0 = blk * block;
  const int rows = min(block, N - row0);
  const T* base = x + b * bs + h * hs + static_cast<int64_t>(row0) * rs + chunk * 8;
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int r = group; r < rows; r += kGroups) {
    const uint4 v = *reinterpret_cast<const uint4*>(base + static_cast<int64_t>(r) * rs);
    const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] += static_cast<float>(e[i]);
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) partial[group][chunk * 8 + i] = acc[i];
  __syncthreads();
  const float inv = 1.f / static_cast<float>(rows);
  for (int d = threadIdx.x; d < D; d += 128) {
    float s = 0.f;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) s += partial[g][d];
    out[static_cast<int64_t>(cell) * D + d] = s * inv;
  }
}

// ---- topk_cols: one CTA per row; thread t owns the contiguous columns [t·P, t·P + P) so a
// block-wide exclusive scan of kept flags gives each kept column its ascending slot.
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);  // unsigned order = float order
}

// Exclusive prefix sum over the CTA (thread order); `total` gets the sum.
__device__ __forceinline__ int block_exclusive_scan(int v, int* scratch, int& total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inc;
  __syncthreads();
  int before = 0;
  total = 0;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) {
    if (w < warp) before += scratch[w];
    total += scratch[w];
  }
  return before + inc - v;
}

// Exclusive prefix sum over the warp's lanes (all 32 active).
__device__ __forceinline__ int warp_exclusive_scan(int v) {
  const int lane = threadIdx.x % 32;
  int inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  return inc - v;
}

// Warps (rows) per CTA of the warp-per-row kernels (topk_cols, keep_counts).
constexpr int kRowWarps = 4;

// One warp per row (a row's selection needs no CTA barrier: counts are one __reduce_add_sync),
// lane l owning the contiguous columns [l·per, l·per + per), per = ceil(nb / 32) <= P.

template <int P>
__global__ void __launch_bounds__(kRowWarps * 32) topk_cols_kernel(const float* __restrict__ scores,
                                                                   const uint8_t* __restrict__ cand, int64_t rows,
                                                                   int nb, int k, int32_t* __restrict__ cols,
                                                                   int32_t* __restrict__ row_offsets,
                                                                   int32_t* __restrict__ schedule) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowWarps + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp
  const int lane = threadIdx.x % 32;
  const int i = static_cast<int>(row % nb);
  const float* s = scores + row * nb;
  const uint8_t* c_row = cand != nullptr ? cand + static_cast<int64_t>(i) * nb : nullptr;
  if (lane == 0 && row_offsets != nullptr) {  // every row keeps k: offsets and natural schedule
    row_offsets[row + 1] = static_cast<int32_t>((row + 1) * k);
    if (row == 0) row_offsets[0] = 0;
    schedule[row] = static_cast<int32_t>(row);
  }
  const int per = (nb + 31) / 32;
  const int j0 = lane * per;
  uint32_t key[P];
#pragma unroll
  for (int t = 0; t < P; ++t) {
    const int j = j0 + t;
    key[t] = 0;  // below every real key: never selected
    // A non-candidate ranks 1: below every float (order_key(-inf) > 1), still taken last by index.
    if (t < per && j < nb) key[t] = j == i ? 0xFFFFFFFFu : c_row != nullptr && !c_row[j] ? 1u : order_key(s[j]);
  }
  auto count_ge = [&](uint32_t th) {
    unsigned c = 0;
#pragma unroll
    for (int t = 0; t < P; ++t) c += key[t] >= th ? 1u : 0u;
    return static_cast<int>(__reduce_add_sync(0xffffffffu, c));
  };
  // T = the largest key with count(key >= T) >= k (the k-th largest key).
  uint32_t lo = 1, hi = 0xFFFFFFFFu;  // count(>= lo) >= k always (every real key >= 1)
  if (count_ge(hi) >= k) {
    lo = hi;
  } else {
    while (hi - lo > 1) {  // invariant: count(>= lo) >= k, count(>= hi) < k
      const uint32_t mid = lo + (hi - lo) / 2;
      if (count_ge(mid) >= k) lo = mid;
      else hi = mid;
    }
  }
  const uint32_t T = lo;
  // Keep every key > T (fewer than k of them), then the lowest-index keys == T up to k in all.
  int gt = 0, eq = 0;
#pragma unroll
  for (int t = 0; t < P; ++t) gt += key[t] > T, eq += key[t] == T;
  const int total_gt = static_cast<int>(__reduce_add_sync(0xffffffffu, static_cast<unsigned>(gt)));
  int eq_seen = warp_exclusive_scan(eq);  // keys == T in lower lanes
  const int eq_room = k - total_gt;
  bool take[P];
  int keep_here = 0;
#pragma unroll
  for (int t = 0; t < P; ++t) {
    take[t] = key[t] > T || (key[t] == T && eq_seen++ < eq_room);
    keep_here += take[t];
  }
  int slot = warp_exclusive_scan(keep_here);
  int32_t* out = cols + row * k;
#pragma unroll
  for (int t = 0; t < P; ++t)
    if (take[t]) out[slot++] = j0 + t;
}

// ---- keep_cols: one CTA per row; each thread owns a contiguous run of columns, so one block scan
// of the per-thread counts gives every kept column its ascending slot.
__global__ void __launch_bounds__(kThreads) keep_cols_kernel(const uint8_t* __restrict__ keep,
                                                             const int32_t* __restrict__ row_offsets, int nb,
                                                             bool diagonal, int32_t* __restrict__ cols) {
  __shared__ int scratch[kThreads / 32];
  const int64_t row = blockIdx.x;
  const int i = diagonal ? static_cast<int>(row % nb) : -1;  // forced column, if any
  const uint8_t* k_row = keep + row * nb;
  const int per = (nb + kThreads - 1) / kThreads;
  const int j0 = min(nb, static_cast<int>(threadIdx.x) * per), j1 = min(nb, j0 + per);
  int here = 0;
  for (int j = j0; j < j1; ++j) here += k_row[j] != 0 || j == i;
  int total = 0;
  int slot = row_offsets[row] + block_exclusive_scan(here, scratch, total);
  for (int j = j0; j < j1; ++j)
    if (k_row[j] || j == i) cols[slot++] = j;
}

// ---- keep_counts: one warp per row, the kept count (with the forced diagonal) of a keep bitmap.
__global__ void __launch_bounds__(kRowWarps * 32) keep_counts_kernel(const uint8_t* __restrict__ keep, int64_t rows,
                                                                     int nb, bool diagonal,
                                                                     int32_t* __restrict__ counts) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowWarps + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp
  const int lane = threadIdx.x % 32;
  const int i = diagonal ? static_cast<int>(row % nb) : -1;
  const uint8_t* k_row = keep + row * nb;
  unsigned c = 0;
  for (int j = lane; j < nb; j += 32) c += k_row[j] != 0 || j == i;
  c = __reduce_add_sync(0xffffffffu, c);
  if (lane == 0) counts[row] = static_cast<int32_t>(c);
}

}  // namespace

void keep_cols(const uint8_t* keep, const int32_t* row_offsets, int rows, int nb, int32_t* cols, cudaStream_t stream,
               bool diagonal) {
  if (nb <= 0) throw CudaError("keep_cols: " + std::to_string(nb) + " blocks per row");
  if (rows <= 0) return;
  keep_cols_kernel<<<rows, kThreads, 0, stream>>>(keep, row_offsets, nb, diagonal, cols);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

void keep_counts(const uint8_t* keep, int64_t rows, int nb, bool diagonal, int32_t* counts, cudaStream_t stream) {
  if (nb <= 0) throw CudaError("keep_counts: " + std::to_string(nb) + " blocks per row");
  if (rows <= 0) return;
  const auto ctas = static_cast<unsigned>((rows + kRowWarps - 1) / kRowWarps);
  keep_counts_kernel<<<ctas, kRowWarps * 32, 0, stream>>>(keep, rows, nb, diagonal, counts);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

void block_mean_pool(const void* x, bool fp16, int B, int H, int N, int D, int64_t batch_stride, int64_t head_stride,
                     int64_t row_stride, int block, float* out, cudaStream_t stream) {
  if (D != 64 && D != 128) throw CudaError("block_mean_pool: head_dim " + std::to_string(D) + " not in {64, 128}");
  if (block <= 0 || N <= 0 || B <= 0 || H <= 0) throw CudaError("block_mean_pool: empty input or block");
  const int nb = (N + block - 1) / block;
  const int64_t cells = static_cast<int64_t>(B) * H * nb;
  const dim3 grid(static_cast<unsigned>(cells));
  if (fp16) {
    if (D == 64) block_mean_pool_kernel<__half, 64><<<grid, 128, 0, stream>>>(static_cast<const __half*>(x), H, N, batch_stride, head_stride, row_stride, block, nb, out);
    else block_mean_pool_kernel<__half, 128><<<grid, 128, 0, stream>>>(static_cast<const __half*>(x), H, N, batch_stride, head_stride, row_stride, block, nb, out);
  } else {
    if (D == 64) block_mean_pool_kernel<__nv_bfloat16, 64><<<grid, 128, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), H, N, batch_stride, head_stride, row_stride, block, nb, out);
    else block_mean_pool_kernel<__nv_bfloat16, 128><<<grid, 128, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), H, N, batch_stride, head_stride, row_stride, block, nb, out);
  }
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

void topk_cols(const float* scores, int rows, int nb, int k, int32_t* cols, cudaStream_t stream, const uint8_t* cand,
               int32_t* row_offsets, int32_t* schedule) {
  if ((row_offsets == nullptr) != (schedule == nullptr))
    throw CudaError("topk_cols: row_offsets and schedule come together");
  if (nb <= 0 || nb > kCumulativeKeepMaxBlocks)
    throw CudaError("topk_cols: " + std::to_string(nb) + " blocks per row (1.." + std::to_string(kCumulativeKeepMaxBlocks) + " supported)");
  if (k < 1 || k > nb) throw CudaError("topk_cols: k " + std::to_string(k) + " not in 1.." + std::to_string(nb));
  if (rows <= 0) return;
  const unsigned ctas = static_cast<unsigned>((rows + kRowWarps - 1) / kRowWarps);
  const auto launch = [&](auto per_lane) {
    topk_cols_kernel<decltype(per_lane)::value><<<ctas, kRowWarps * 32, 0, stream>>>(scores, cand, rows, nb, k, cols,
                                                                                      row_offsets, schedule);
  };
  if (nb <= 32 * 8) launch(std::integral_constant<int, 8>{});
  else if (nb <= 32 * 16) launch(std::integral_constant<int, 16>{});
  else if (nb <= 32 * 32) launch(std::integral_constant<int, 32>{});
  else launch(std::integral_constant<int, 64>{});
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

void cumulative_keep(const float* logits, const float* log_len, const uint8_t* cand, const uint8_t* forced,
                     float tau, int rows, int nb, uint8_t* keep, cudaStream_t stream) {
  if (nb <= 0 || nb > kCumulativeKeepMaxBlocks)
    throw CudaError("cumulative_keep: " + std::to_string(nb) + " blocks per row (1.." +
                    std::to_string(kCumulativeKeepMaxBlocks) + " supported)");
  if (rows <= 0) return;
  cumulative_keep_kernel<<<rows, kThreads, 0, stream>>>(logits, log_len, cand, forced, tau, nb, keep);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::attention::cuda

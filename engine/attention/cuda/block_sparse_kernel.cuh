// The block-sparse FlashAttention-2 style forward kernel (mma.sync m16n8k16, sm_80+), included
// only by the per-instance .cu files. No LibTorch. Sections:
//   [tiles]    tile sizes and their shared-memory / register limits
//   [ptx]      cp.async, ldmatrix and mma wrappers (exp2, pack2: block_sparse_common.cuh)
//   [kernel]   one CTA = one (batch, head, query block row of the mask); K/V tiles double-buffered
//   [launch]   the host-side launcher of one instance
#pragma once
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/attention/cuda/block_sparse.h"
#include "engine/attention/cuda/block_sparse_common.cuh"
#include "engine/common/cuda/cuda_check.h"

namespace longshot::attention::cuda {

// ---------------------------------------------------------------------------------------[tiles]
// Query tile = the mask's block size; each CTA owns exactly one mask row. A warp owns M_TILES
// m16 row bands: with 2 bands every K/V fragment read from shared memory (ldmatrix) feeds twice
// the MMAs, at the price of twice the S/O registers, so Q is then re-read from shared memory
// instead of held in registers. Measured on an H100 (D=128, block 128): 2 bands (4 warps) are
// 4–7 % faster than 1 band (8 warps).
constexpr int warps_for(int block_m, int m_tiles) { return block_m / (16 * m_tiles); }
// Key tile of 64. Registers per thread and band: S 16×64 fp32 = 32, O 16×D fp32 = D/2; one band
// also holds Q's fragments (D/4). At D=128 that is ~225–240 registers for 1 band and the full 255
// (with an 80-byte spill) for 2 bands, so a 128-key tile (S doubled) does not fit.
constexpr int kKeyTile = 64;
// Shared memory: Q tile + two stages of (K, V) tiles, 16-bit elements. block 128 / D 128:
// 32 KiB + 64 KiB = 96 KiB (needs the >48 KiB opt-in; sm_80 allows 163 KiB, sm_90 227 KiB, so
// two CTAs fit per SM on Hopper).
constexpr int smem_bytes_for(int block_m, int head_dim) {
  return (block_m * head_dim + 2 * 2 * kKeyTile * head_dim) * 2;
}

// -----------------------------------------------------------------------------------------[ptx]
namespace ptx {

// 16-byte async copy; src_bytes 0 writes zeros (rows past the sequence end).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                            uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1,
                                                  uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

template <typename T>
struct Mma;

template <>
struct Mma<__nv_bfloat16> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct Mma<__half> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

}  // namespace ptx

// Shared-memory tile of `rows` × D 16-bit elements stored as 16-byte chunks with the chunk index
// XOR-ed by (row % 8): the 8 rows one ldmatrix phase reads then hit 8 different bank groups.
template <int D>
__device__ __forceinline__ int swizzled(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Copies rows [row0, row0 + ROWS) of one head (rows >= seq_len are zero-filled) into a swizzled
// tile; every thread of the CTA takes part.
template <typename T, int ROWS, int D, int THREADS>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int64_t row_stride, int row0,
                                          int seq_len) {
  constexpr int kChunks = D / 8;
  constexpr int kTotal = ROWS * kChunks;
  static_assert(kTotal % THREADS == 0, "tile chunks must split evenly over the CTA");
#pragma unroll
  for (int i = 0; i < kTotal / THREADS; ++i) {
    const int idx = i * THREADS + threadIdx.x;
    const int r = idx / kChunks;
    const int c = idx % kChunks;
    const int row = row0 + r;
    const bool in = row < seq_len;
    const T* src = gmem + (in ? static_cast<int64_t>(row) * row_stride + c * 8 : 0);
    ptx::cp_async16(ptx::smem_addr(smem + swizzled<D>(r, c)), src, in ? 16 : 0);
  }
}

// --------------------------------------------------------------------------------------[kernel]
template <typename T, int BLOCK_M, int D, int M_TILES>
__global__ void __launch_bounds__(warps_for(BLOCK_M, M_TILES) * 32)
    block_sparse_fwd_kernel(const BlockSparseParams p) {
  constexpr int kWarps = warps_for(BLOCK_M, M_TILES);
  constexpr int MT = M_TILES;
  constexpr bool kQInRegs = MT == 1;
  constexpr int kThreads = kWarps * 32;
  constexpr int kN = kKeyTile;
  constexpr int kDSteps = D / 16;     // k-steps of S = Q·Kᵀ
  constexpr int kSTiles = kN / 8;     // n8 tiles of S
  constexpr int kOTiles = D / 8;      // n8 tiles of O
  constexpr int kSubTiles = BLOCK_M / kN;  // key tiles per mask block (block == BLOCK_M)
  using M = ptx::Mma<T>;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + BLOCK_M * D;          // 2 stages
  T* sV = sK + 2 * kN * D;           // 2 stages

  const int b = blockIdx.y;
  const WorkItem w = work_item(p);
  const int h = w.h, qb = w.qb;
  const int row_blocks = w.num_blocks;

  const T* gQ = static_cast<const T*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
  const T* gK = static_cast<const T*>(p.k) + b * p.k_batch_stride + h * p.k_head_stride;
  const T* gV = static_cast<const T*>(p.v) + b * p.v_batch_stride + h * p.v_head_stride;
  T* gO = static_cast<T*>(p.o) + b * p.o_batch_stride + h * p.o_head_stride;

  const int q0 = qb * BLOCK_M;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;  // row within the m16 band (and +8)
  const int t = lane % 4;  // column pair within an n8 tile

  // Key tiles: kSubTiles per kept block, minus the empty tail of the ragged last block.
  int num_tiles = row_blocks * kSubTiles;
  if (row_blocks > 0 && (w.dense || w.cols[row_blocks - 1] == p.num_k_blocks - 1)) {
    const int last_len = p.seq_len - (p.num_k_blocks - 1) * BLOCK_M;
    num_tiles -= kSubTiles - (last_len + kN - 1) / kN;
  }
  auto tile_start = [&](int tile) {
    const int kb = w.key_block(tile / kSubTiles);
    return kb * BLOCK_M + (tile % kSubTiles) * kN;
  };

  float acc_o[MT][kOTiles][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int i = 0; i < kOTiles; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc_o[m][i][j] = 0.f;
  float row_max[MT][2], row_sum[MT][2];  // row_sum: per-thread partials, quad-reduced at the end
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int h2 = 0; h2 < 2; ++h2) row_max[m][h2] = -INFINITY, row_sum[m][h2] = 0.f;
  const int warp_row0 = warp * 16 * MT;

  if (num_tiles > 0) {
    load_tile<T, BLOCK_M, D, kThreads>(sQ, gQ, p.q_row_stride, q0, p.seq_len);
    const int k0 = tile_start(0);
    load_tile<T, kN, D, kThreads>(sK, gK, p.k_row_stride, k0, p.seq_len);
    load_tile<T, kN, D, kThreads>(sV, gV, p.v_row_stride, k0, p.seq_len);
    ptx::cp_async_commit();
    ptx::cp_async_wait<0>();
    __syncthreads();

    auto load_q = [&](int m, int kk, uint32_t (&a)[4]) {
      const int r = warp_row0 + m * 16 + (lane % 16);
      const int c = kk * 2 + lane / 16;
      ptx::ldmatrix_x4(ptx::smem_addr(sQ + swizzled<D>(r, c)), a[0], a[1], a[2], a[3]);
    };
    // One band: Q fragments stay in registers for the whole row.
    uint32_t frag_q[kQInRegs ? kDSteps : 1][4];
    if constexpr (kQInRegs) {
#pragma unroll
      for (int kk = 0; kk < kDSteps; ++kk) load_q(0, kk, frag_q[kk]);
    }

    for (int tile = 0; tile < num_tiles; ++tile) {
      const int stage = tile & 1;
      const int key0 = tile_start(tile);
      if (tile + 1 < num_tiles) {
        // The other stage was last read in iteration tile-1, which ended with a barrier.
        const int next = tile_start(tile + 1);
        load_tile<T, kN, D, kThreads>(sK + (stage ^ 1) * kN * D, gK, p.k_row_stride, next, p.seq_len);
        load_tile<T, kN, D, kThreads>(sV + (stage ^ 1) * kN * D, gV, p.v_row_stride, next, p.seq_len);
        ptx::cp_async_commit();
      }
      const T* k_tile = sK + stage * kN * D;
      const T* v_tile = sV + stage * kN * D;

      // S = Q Kᵀ for this warp's MT×16 rows × 64 keys.
      float s[MT][kSTiles][4];
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int i = 0; i < kSTiles; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) s[m][i][j] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kDSteps; ++kk) {
        uint32_t a[MT][4];
        if constexpr (kQInRegs) {
#pragma unroll
          for (int j = 0; j < 4; ++j) a[0][j] = frag_q[kk][j];
        } else {
#pragma unroll
          for (int m = 0; m < MT; ++m) load_q(m, kk, a[m]);
        }
#pragma unroll
        for (int np = 0; np < kSTiles / 2; ++np) {
          const int r = np * 16 + (lane % 8) + (lane / 16) * 8;
          const int c = kk * 2 + (lane / 8) % 2;
          uint32_t b0, b1, b2, b3;
          ptx::ldmatrix_x4(ptx::smem_addr(k_tile + swizzled<D>(r, c)), b0, b1, b2, b3);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            M::run(s[m][2 * np], a[m], b0, b1);
            M::run(s[m][2 * np + 1], a[m], b2, b3);
          }
        }
      }

      // Keys past the sequence end exist only in the last, ragged tile.
      if (key0 + kN > p.seq_len) {
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
          for (int i = 0; i < kSTiles; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
              if (key0 + i * 8 + t * 2 + (j & 1) >= p.seq_len) s[m][i][j] = -INFINITY;
      }

      // Online softmax in base 2; rows g (j = 0, 1) and g + 8 (j = 2, 3) of each band.
#pragma unroll
      for (int m = 0; m < MT; ++m) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          float mx = -INFINITY;
#pragma unroll
          for (int i = 0; i < kSTiles; ++i)
            mx = fmaxf(mx, fmaxf(s[m][i][2 * half], s[m][i][2 * half + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float new_max = fmaxf(row_max[m][half], mx * p.scale_log2);
          // A row that has seen only masked keys keeps max −inf: subtract 0 instead (no NaN).
          const float base = new_max == -INFINITY ? 0.f : new_max;
          const float alpha = ptx::exp2_approx(row_max[m][half] - base);
          row_max[m][half] = new_max;
          float sum = 0.f;
#pragma unroll
          for (int i = 0; i < kSTiles; ++i) {
            s[m][i][2 * half] = ptx::exp2_approx(s[m][i][2 * half] * p.scale_log2 - base);
            s[m][i][2 * half + 1] = ptx::exp2_approx(s[m][i][2 * half + 1] * p.scale_log2 - base);
            sum += s[m][i][2 * half] + s[m][i][2 * half + 1];
          }
          row_sum[m][half] = row_sum[m][half] * alpha + sum;
#pragma unroll
          for (int i = 0; i < kOTiles; ++i) {
            acc_o[m][i][2 * half] *= alpha;
            acc_o[m][i][2 * half + 1] *= alpha;
          }
        }
      }

      // O += P V: the S accumulator layout of two n8 tiles is the A layout of one k16 step.
#pragma unroll
      for (int ks = 0; ks < kN / 16; ++ks) {
        uint32_t frag_p[MT][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          frag_p[m][0] = pack2<T>(s[m][2 * ks][0], s[m][2 * ks][1]);
          frag_p[m][1] = pack2<T>(s[m][2 * ks][2], s[m][2 * ks][3]);
          frag_p[m][2] = pack2<T>(s[m][2 * ks + 1][0], s[m][2 * ks + 1][1]);
          frag_p[m][3] = pack2<T>(s[m][2 * ks + 1][2], s[m][2 * ks + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < kOTiles / 2; ++dp) {
          const int r = ks * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
          const int c = dp * 2 + lane / 16;
          uint32_t b0, b1, b2, b3;
          ptx::ldmatrix_x4_trans(ptx::smem_addr(v_tile + swizzled<D>(r, c)), b0, b1, b2, b3);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            M::run(acc_o[m][2 * dp], frag_p[m], b0, b1);
            M::run(acc_o[m][2 * dp + 1], frag_p[m], b2, b3);
          }
        }
      }

      if (tile + 1 < num_tiles) ptx::cp_async_wait<0>();
      __syncthreads();
    }
  }

  // Epilogue: normalise and store; a row with no kept key (empty mask row) stores zeros.
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float l = row_sum[m][half];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int row = q0 + warp_row0 + m * 16 + g + half * 8;
      if (row < p.seq_len) {
        T* dst = gO + static_cast<int64_t>(row) * p.o_row_stride + t * 2;
#pragma unroll
        for (int i = 0; i < kOTiles; ++i) {
          const uint32_t packed = pack2<T>(acc_o[m][i][2 * half] * inv, acc_o[m][i][2 * half + 1] * inv);
          *reinterpret_cast<uint32_t*>(dst + i * 8) = packed;
        }
      }
    }
  }
}

// --------------------------------------------------------------------------------------[launch]
template <typename T, int BLOCK_M, int D, int M_TILES>
void launch_block_sparse(const BlockSparseParams& p, cudaStream_t stream) {
  constexpr int kSmem = smem_bytes_for(BLOCK_M, D);
  auto kernel = &block_sparse_fwd_kernel<T, BLOCK_M, D, M_TILES>;
  // Setting the opt-in is cheap; doing it per launch avoids per-device state here.
  LONGSHOT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const dim3 grid(static_cast<unsigned>(p.num_items), static_cast<unsigned>(p.batch));
  kernel<<<grid, warps_for(BLOCK_M, M_TILES) * 32, kSmem, stream>>>(p);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::attention::cuda

// The Hopper (sm_90a) block-sparse forward kernel: TMA loads into 128-byte-swizzled shared
// memory, wgmma tensor-core products, a producer warpgroup and two consumer warpgroups. Included
// only by the block_sparse_sm90_*.cu instance files. No LibTorch. Sections:
//   [layout]   tile sizes, shared-memory plan, wgmma descriptors
//   [ptx]      mbarrier, TMA, wgmma fences, setmaxnreg
//   [kernel]   one CTA = one (batch, head, 128-row query block row of the mask)
//   [launch]   tensor maps and the launcher of one instance
//
// Work split (the FlashAttention-3 structure, written from the PTX ISA and the Hopper tuning
// guide): warpgroup 0 only issues TMA copies (Q once, then K and V tile by tile into a ring of
// stages guarded by full/empty mbarriers) and gives its registers away with setmaxnreg; warpgroups
// 1 and 2 each own 64 query rows and run S = Q Kᵀ (wgmma, both operands in shared memory),
// the online softmax in registers, then O += P V (wgmma, P from registers). The two consumer
// warpgroups are not synchronised with each other, so one's softmax overlaps the other's products.
#pragma once
#include <cstdint>

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/attention/cuda/block_sparse.h"
#include "engine/attention/cuda/block_sparse_common.cuh"
#include "engine/common/cuda/cuda_check.h"
#include "engine/attention/cuda/wgmma_ops.cuh"

namespace longshot::attention::cuda::sm90 {

// --------------------------------------------------------------------------------------[layout]
constexpr int kBlock = 128;          // query rows per CTA = keys per tile = the mask's block size
constexpr int kConsumers = 2;        // consumer warpgroups, 64 query rows each
constexpr int kThreads = 128 * (1 + kConsumers);
constexpr int kSlabCols = 64;        // a 128-byte swizzle row holds 64 16-bit elements
constexpr int kSlabBytes = kBlock * 128;  // one 64-column slab of a 128-row tile: 16 KiB

// Shared memory: Q tile, then `stages` K tiles and `stages` V tiles (each D/64 slabs), then the
// mbarriers. Every tile starts on a 1024-byte boundary (the swizzle atom: 8 rows × 128 bytes).
template <int D>
struct Plan {
  static constexpr int kSlabs = D / kSlabCols;
  static constexpr int kTileBytes = kSlabs * kSlabBytes;
  // D = 128: 32 KiB tiles, 2 stages → 160 KiB; D = 64: 16 KiB tiles, 4 stages → 144 KiB.
  static constexpr int kStages = D == 128 ? 2 : 4;
  static constexpr int kQ = 0;
  static constexpr int kK = kQ + kTileBytes;
  static constexpr int kV = kK + kStages * kTileBytes;
  static constexpr int kBarriers = kV + kStages * kTileBytes;
  static constexpr int kNumBarriers = 1 + 3 * kStages;  // q_full, k_full[], v_full[], empty[]
  static constexpr int kBytes = kBarriers + 8 * kNumBarriers + 1024;  // + alignment slack
};

// A wgmma shared-memory matrix descriptor for a 128-byte-swizzled operand: start address,
// leading- and stride-dimension byte offsets (all >> 4), swizzle mode 1 (128 B) in bits 62–63.
__device__ __forceinline__ uint64_t make_desc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>((lbo >> 4) & 0x3FFF) << 16;
  d |= static_cast<uint64_t>((sbo >> 4) & 0x3FFF) << 32;
  d |= static_cast<uint64_t>(1) << 62;
  return d;
}

// -----------------------------------------------------------------------------------------[ptx]
namespace ptx {

using cuda::ptx::exp2_approx;  // shared with the mma.sync kernel (block_sparse_common.cuh)
using cuda::ptx::smem_addr;
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Waits until the phase with this parity has completed.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}
// One box of a 4-D tensor map (coordinates innermost first) into shared memory; completion
// is counted in bytes on `bar`. Rows past the tensor's end arrive as zeros.
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0,
                                            int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
      "%4, %5}], [%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads/writes across an asynchronous product.
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int REGS>
__device__ __forceinline__ void setmaxnreg_inc() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
#endif
}
template <int REGS>
__device__ __forceinline__ void setmaxnreg_dec() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
#endif
}
}  // namespace ptx

// Tensor maps of Q, K and V: [B, H, N, D] seen as 4-D (D, N, H, B), box 64 × 128 × 1 × 1.
struct Maps {
  CUtensorMap q, k, v;
};

// --------------------------------------------------------------------------------------[kernel]
template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1)
    block_sparse_fwd_sm90(const __grid_constant__ CUtensorMap map_q, const __grid_constant__ CUtensorMap map_k,
                          const __grid_constant__ CUtensorMap map_v, const BlockSparseParams p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using P = Plan<D>;
  constexpr int S = P::kStages;
  constexpr int kSRegs = kBlock / 2;  // S tile 64 × 128 fp32 per warpgroup
  constexpr int kORegs = D / 2;       // O tile 64 × D fp32 per warpgroup

  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (ptx::smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base + P::kQ;
  const uint32_t sK = base + P::kK;
  const uint32_t sV = base + P::kV;
  const uint32_t bar_q = base + P::kBarriers;
  auto bar_k = [&](int s) { return bar_q + 8u * (1 + s); };
  auto bar_v = [&](int s) { return bar_q + 8u * (1 + S + s); };
  auto bar_empty = [&](int s) { return bar_q + 8u * (1 + 2 * S + s); };

  const int b = blockIdx.y;
  const WorkItem w = work_item(p);
  const int h = w.h, qb = w.qb;
  const int num_tiles = w.num_blocks;  // one tile per kept block (kBlock keys)

  const int wg = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    ptx::mbar_init(bar_q, 1);
    for (int s = 0; s < S; ++s) {
      ptx::mbar_init(bar_k(s), 1);
      ptx::mbar_init(bar_v(s), 1);
      ptx::mbar_init(bar_empty(s), 4 * kConsumers);  // one arrival per consumer warp
    }
    ptx::mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    // ---- Producer: one thread issues every copy; the rest of the warpgroup idles.
    ptx::setmaxnreg_dec<24>();
    if (threadIdx.x == 0 && num_tiles > 0) {
      ptx::mbar_expect_tx(bar_q, P::kTileBytes);
#pragma unroll
      for (int s = 0; s < P::kSlabs; ++s)
        ptx::tma_load_4d(sQ + s * kSlabBytes, &map_q, bar_q, s * kSlabCols, qb * kBlock, h, b);
      for (int tile = 0; tile < num_tiles; ++tile) {
        const int stage = tile % S;
        const uint32_t phase = (tile / S) & 1;
        ptx::mbar_wait(bar_empty(stage), phase ^ 1);  // passes at once on a fresh barrier
        const int key0 = w.key_block(tile) * kBlock;
        const uint32_t k_dst = sK + stage * P::kTileBytes, v_dst = sV + stage * P::kTileBytes;
        ptx::mbar_expect_tx(bar_k(stage), P::kTileBytes);
#pragma unroll
        for (int s = 0; s < P::kSlabs; ++s)
          ptx::tma_load_4d(k_dst + s * kSlabBytes, &map_k, bar_k(stage), s * kSlabCols, key0, h, b);
        ptx::mbar_expect_tx(bar_v(stage), P::kTileBytes);
#pragma unroll
        for (int s = 0; s < P::kSlabs; ++s)
          ptx::tma_load_4d(v_dst + s * kSlabBytes, &map_v, bar_v(stage), s * kSlabCols, key0, h, b);
      }
    }
    return;
  }

  // ---- Consumers: warpgroup c owns query rows [64c, 64c + 64) of the tile.
  ptx::setmaxnreg_inc<240>();
  const int c = wg - 1;
  const int tid = threadIdx.x % 128;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int g = lane / 4;  // accumulator row within the warp's 16 (and +8)
  const int t = lane % 4;  // accumulator column pair within each group of 8

  float acc_o[kORegs];
#pragma unroll
  for (int i = 0; i < kORegs; ++i) acc_o[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};

  if (num_tiles > 0) {
    ptx::mbar_wait(bar_q, 0);
    const uint32_t q_rows = sQ + c * 64 * 128;  // this warpgroup's 64 rows in every slab
    for (int tile = 0; tile < num_tiles; ++tile) {
      const int stage = tile % S;
      const uint32_t phase = (tile / S) & 1;
      const uint32_t k_tile = sK + stage * P::kTileBytes, v_tile = sV + stage * P::kTileBytes;
      const int key0 = w.key_block(tile) * kBlock;

      // S = Q Kᵀ: D/16 k-steps; a k-step is 32 bytes inside one 128-byte swizzled row.
      float s[kSRegs];
      ptx::mbar_wait(bar_k(stage), phase);
      ptx::fence_regs(s);
      ptx::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t off = (kk / 4) * kSlabBytes + (kk % 4) * 32;
        Wgmma<T, kBlock>::ss(s, make_desc(q_rows + off, 16, 1024), make_desc(k_tile + off, 16, 1024), kk > 0);
      }
      ptx::wgmma_commit();
      ptx::wgmma_wait<0>();
      ptx::fence_regs(s);

      // Keys past the sequence end exist only in the ragged last block. Register 4i + j holds
      // row g + 8 (j / 2), key 8i + 2t + (j % 2).
      if (key0 + kBlock > p.seq_len) {
#pragma unroll
        for (int i = 0; i < kSRegs / 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j)
            if (key0 + 8 * i + 2 * t + (j & 1) >= p.seq_len) s[4 * i + j] = -INFINITY;
      }

      // Online softmax in base 2, rows g (half 0) and g + 8 (half 1).
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < kSRegs / 4; ++i) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * half], s[4 * i + 2 * half + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float new_max = fmaxf(row_max[half], mx * p.scale_log2);
        const float base_max = new_max == -INFINITY ? 0.f : new_max;
        const float alpha = ptx::exp2_approx(row_max[half] - base_max);
        row_max[half] = new_max;
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < kSRegs / 4; ++i) {
          float& a = s[4 * i + 2 * half];
          float& bb = s[4 * i + 2 * half + 1];
          a = ptx::exp2_approx(a * p.scale_log2 - base_max);
          bb = ptx::exp2_approx(bb * p.scale_log2 - base_max);
          sum += a + bb;
        }
        row_sum[half] = row_sum[half] * alpha + sum;
#pragma unroll
        for (int i = 0; i < kORegs / 4; ++i) {
          acc_o[4 * i + 2 * half] *= alpha;
          acc_o[4 * i + 2 * half + 1] *= alpha;
        }
      }

      // P in the A-fragment layout: k-step ks covers keys 16ks..16ks+15 = S groups 2ks, 2ks+1.
      uint32_t frag_p[kBlock / 16][4];
#pragma unroll
      for (int ks = 0; ks < kBlock / 16; ++ks) {
        frag_p[ks][0] = pack2<T>(s[8 * ks + 0], s[8 * ks + 1]);
        frag_p[ks][1] = pack2<T>(s[8 * ks + 2], s[8 * ks + 3]);
        frag_p[ks][2] = pack2<T>(s[8 * ks + 4], s[8 * ks + 5]);
        frag_p[ks][3] = pack2<T>(s[8 * ks + 6], s[8 * ks + 7]);
      }

      // O += P V: V is [keys][D] (MN-major for this product); a k-step is 16 key rows = 2 KiB,
      // the D slabs are kSlabBytes apart (leading byte offset), 8-row groups 1 KiB (stride).
      ptx::mbar_wait(bar_v(stage), phase);
      ptx::fence_regs(acc_o);
      ptx::wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kBlock / 16; ++ks)
        Wgmma<T, D>::rs(acc_o, frag_p[ks], make_desc(v_tile + ks * 16 * 128, kSlabBytes, 1024), 1);
      ptx::wgmma_commit();
      ptx::wgmma_wait<0>();
      ptx::fence_regs(acc_o);
      if (lane == 0) ptx::mbar_arrive(bar_empty(stage));
    }
  }

  // Epilogue: normalise and store; a row with no kept key (empty mask row) stores zeros.
  T* gO = static_cast<T*>(p.o) + b * p.o_batch_stride + h * p.o_head_stride;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float l = row_sum[half];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int row = qb * kBlock + c * 64 + warp * 16 + g + half * 8;
    if (row < p.seq_len) {
      T* dst = gO + static_cast<int64_t>(row) * p.o_row_stride + t * 2;
#pragma unroll
      for (int i = 0; i < kORegs / 4; ++i)
        *reinterpret_cast<uint32_t*>(dst + i * 8) = pack2<T>(acc_o[4 * i + 2 * half] * inv, acc_o[4 * i + 2 * half + 1] * inv);
    }
  }
#endif
}

// --------------------------------------------------------------------------------------[launch]
// Encodes the three tensor maps; false (with `why`) when the driver refuses a layout.
bool encode_maps(const BlockSparseParams& p, Maps& maps, std::string* why);

template <typename T, int D>
void launch_sm90(const BlockSparseParams& p, const Maps& maps, cudaStream_t stream) {
  constexpr int kSmem = Plan<D>::kBytes;
  auto kernel = &block_sparse_fwd_sm90<T, D>;
  LONGSHOT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const dim3 grid(static_cast<unsigned>(p.num_items), static_cast<unsigned>(p.batch));
  kernel<<<grid, kThreads, kSmem, stream>>>(maps.q, maps.k, maps.v, p);
  LONGSHOT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace longshot::attention::cuda::sm90

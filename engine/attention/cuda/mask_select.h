// Mask-building kernels that LibTorch ops do poorly: per-row selections over [rows, nb] block
// scores. Plain CUDA runtime types; the LibTorch adapter wraps them (cumulative_keep).
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace longshot::attention::cuda {

// Largest block count per row the cumulative selection kernel holds in registers.
constexpr int kCumulativeKeepMaxBlocks = 2048;

// radial-dynamic's selection, one CTA per row r = h * nb + i (rows of head h, query block i):
//   m_j = logits[r, j] + log_len[j] for candidate j (cand[i, j]), mass_j = exp(m_j − max m),
//   keep the forced blocks (forced[i, j]; a subset of the candidates) and the open candidates of
//   mass ≥ θ, θ the largest mass whose open prefix (in decreasing mass) plus the forced mass
//   reaches tau × the row's total (no open block when the forced mass alone reaches it).
// θ is found by bisection on the bit pattern of the positive float masses (monotone in the value),
// so it is exactly one row's mass value: the sorted loop of the CPU path, ties kept together.
// logits: [rows, nb] fp32; log_len: [nb] fp32; cand, forced: [nb, nb] bytes (0/1); keep: [rows, nb]
// bytes (0/1), every element written. nb <= kCumulativeKeepMaxBlocks.
void cumulative_keep(const float* logits, const float* log_len, const uint8_t* cand, const uint8_t* forced,
                     float tau, int rows, int nb, uint8_t* keep, cudaStream_t stream);

// Block means of x [B, H, N, D] (16-bit, D in {64, 128}, D contiguous, rows 16-byte aligned):
// out [B, H, ceil(N / block), D] fp32 contiguous, the ragged last block averaged over its real
// rows. One pass over x with 16-byte loads (LibTorch's strided reduction reads it at about half
// the bandwidth). Strides in elements.
void block_mean_pool(const void* x, bool fp16, int B, int H, int N, int D, int64_t batch_stride,
                     int64_t head_stride, int64_t row_stride, int block, float* out, cudaStream_t stream);

// Top-k selection of key blocks per row: scores [rows, nb] fp32 (row r = h * nb + i) → cols
// [rows, k] int32, ascending within each row, the diagonal (i, i) always among them (it ranks
// first) and ties at the k-th value broken by the lower block index. nb <= kCumulativeKeepMaxBlocks,
// 1 <= k <= nb. Replaces topk + sort (two passes, 64-bit indices).
// cand (optional, [nb, nb] bytes 0/1, shared by the heads): non-candidates rank below every
// candidate (still taken, lowest index first, when a row has fewer than k). row_offsets
// ([rows + 1]) and schedule ([rows]), optional together, get the BSR offsets (r · k) and the
// natural schedule (r), so the mask needs no other launch.
void topk_cols(const float* scores, int rows, int nb, int k, int32_t* cols, cudaStream_t stream,
               const uint8_t* cand = nullptr, int32_t* row_offsets = nullptr, int32_t* schedule = nullptr);

// The kept columns of a keep bitmap [rows, nb] (bytes, 0/1) in BSR form: row r's ascending
// column indices go to cols[row_offsets[r] ..), row_offsets the exclusive prefix sum of the
// rows' kept counts (computed by the caller, e.g. from keep_counts). Any nb. `diagonal`: block
// (r % nb) of every row counts as kept whatever the bitmap says (no copy of the bitmap to force it).
void keep_cols(const uint8_t* keep, const int32_t* row_offsets, int rows, int nb, int32_t* cols, cudaStream_t stream,
               bool diagonal = false);
// counts[r] = the kept blocks of row r of a keep bitmap [rows, nb] (the diagonal forced with `diagonal`).
void keep_counts(const uint8_t* keep, int64_t rows, int nb, bool diagonal, int32_t* counts, cudaStream_t stream);

}  // namespace longshot::attention::cuda

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

}  // namespace longshot::attention::cuda

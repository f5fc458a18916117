// Fused elementwise kernels of the DiT block (CUDA runtime only; engine/model/fused_ops.h wraps
// them for LibTorch). Each replaces a chain of eager LibTorch ops that each read and write the
// whole [tokens, dim] activation in fp32. Rows are tokens; C = model dim, a multiple of 8; every
// pointer 16-byte aligned and contiguous.
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace longshot::model::cuda {

// out[r, :] = RMSNorm(y[r, :]) · weight, then (when cos/sin are given) each head's pairs
// (2i, 2i + 1) rotated by the angle of token n = r % tokens: cos/sin [tokens, head_dim / 2] fp32.
// y, out: 16-bit (fp16 when `fp16`, else bf16), [rows, C]; weight fp32 [C]; rows = batch · tokens.
// With `pooled` (fp32 [batch, C / head_dim, ceil(tokens / pool_group), head_dim], zeroed by the
// caller): the means of the outputs (as stored) over groups of pool_group consecutive tokens are
// added to it — the block means the dynamic masks score, with no second pass over Q/K.
// y_row_stride (elements, 0 = C, else >= C and a multiple of 8): y's rows may lie apart, as the q or
// k slice of one fused q/k/v GEMM output does; out stays contiguous.
void rmsnorm_rope(const void* y, const float* weight, const float* cos, const float* sin, bool fp16, int64_t rows,
                  int C, int head_dim, int64_t tokens, float eps, void* out, cudaStream_t stream, int pool_group = 0,
                  float* pooled = nullptr, int64_t y_row_stride = 0);

// out[r, :] = LayerNorm(x[r, :]) (no affine) · (1 + scale[b]) + shift[b], b = r / tokens, in fp32;
// x [rows, C] fp32, or 16-bit of out's type when `x16` (a 16-bit residual stream); shift/scale fp32
// [batch, C] (null: no modulation), out 16-bit [rows, C]. Widths C = 256 · N (N ≤ 8) run one warp
// per row when `row_per_warp` (and shift/scale are 16-byte aligned), others one CTA per row; the
// two differ only in the order of the mean's and variance's sums.
void layernorm_modulate(const void* x, bool x16, const float* shift, const float* scale, bool fp16, int64_t rows, int C,
                        int64_t tokens, float eps, void* out, cudaStream_t stream, bool row_per_warp = true);

// x[r, :] += y[r, :] · gate[b] (gate null: 1), b = r / tokens; y 16-bit, gate fp32 [batch, C]; x
// fp32, or 16-bit of y's type when `x16` (the sum in fp32, rounded once).
void gated_residual_add(void* x, bool x16, const void* y, const float* gate, bool fp16, int64_t rows, int C,
                        int64_t tokens, cudaStream_t stream);

}  // namespace longshot::model::cuda

// Fused DiT-block steps on the GPU (inference): the eager LibTorch chains for "LayerNorm ·
// (1 + scale) + shift → 16-bit", "RMSNorm (· RoPE) → 16-bit" and "x += y · gate" each become one
// kernel (engine/model/cuda/fused_ops.cu) that reads and writes the activation once. The model
// uses them only where applies() holds; the LibTorch chains stay the reference (CPU, training).
#pragma once
#include <torch/types.h>

namespace longshot::model::fused {

// True for a CUDA tensor in a build with the kernels, with autograd off (the kernels have no
// backward), unless LONGSHOT_FUSED=0 in the environment (A/B runs).
bool applies(const torch::Tensor& x);
// applies(x), unless LONGSHOT_FFN_EPILOGUE=0: the FFN's GELU in its up projection's GEMM epilogue
// (FusedLinear::forward_gelu), switchable on its own for an A/B of that one fusion.
bool ffn_epilogue_applies(const torch::Tensor& x);
// applies(x), unless LONGSHOT_RESIDUAL_EPILOGUE=0: the o projections and the FFN's down projection
// write into the residual stream from their GEMM (linear_residual_add_), switchable on its own for
// an A/B of that one fusion.
bool residual_epilogue_applies(const torch::Tensor& x);
// FP8 GEMMs through cuBLASLt's own per-token/per-channel scaling (engine/model/cuda/lt_gemm.h),
// which also writes into the fp32 residual, unless LONGSHOT_FP8_LT=0: then at::_scaled_mm (bf16
// out, and a separate residual pass), for A/B runs (projections.cpp).
bool fp8_cublaslt_on();
// The LayerNorm kernels' one-warp-per-row form for widths of 256 · N (engine/model/cuda/fused_ops.h),
// unless LONGSHOT_NORM_WARP=0: then one CTA per row, the form before it, for A/B runs.
bool norm_row_per_warp();
// The FP8 activation quantisation with each row held in registers (engine/model/cuda/fp8_quant.h),
// unless LONGSHOT_FP8_QUANT_REG=0: then each row is read (and GELU'd) twice, for A/B runs.
bool fp8_quant_rows_in_registers();
// v [B, 1, C] or [B, C] (a modulation or gate) as contiguous fp32 [B, C] on x's device, x being
// [B, N, C]; undefined stays undefined. ShapeError where it does not fit x.
torch::Tensor per_batch(const torch::Tensor& v, const torch::Tensor& x);

// y [B, N, C] 16-bit contiguous → RMSNorm(y)·weight, then RoPE per head of head_dim when cos/sin
// ([N, head_dim/2] fp32) are defined; same shape and dtype as y. With `pooled`, it also gets the
// output's means over groups of pool_group consecutive tokens, [B, C / head_dim, ceil(N / pool_group),
// head_dim] fp32 — the block means a dynamic mask scores (MaskRequest::q_pooled), from the same pass.
torch::Tensor rmsnorm_rope(const torch::Tensor& y, const torch::Tensor& weight, const torch::Tensor& cos,
                           const torch::Tensor& sin, double eps, int64_t head_dim, int64_t pool_group = 0,
                           torch::Tensor* pooled = nullptr);
// x [B, N, C] fp32 (or `dtype` itself: a 16-bit residual stream) → LayerNorm(x) (no affine) ·
// (1 + scale) + shift in `dtype` (16-bit), computed in fp32; shift/scale [B, 1, C] or [B, C] fp32,
// both undefined for no modulation.
torch::Tensor layernorm_modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale,
                                 double eps, torch::ScalarType dtype);
// LayerNorm(x) · weight + bias with LayerNorm's affine parameters ([C], any float dtype; bias may
// be undefined): layernorm_modulate with shift = bias and scale = weight − 1, both exact in fp32
// for 16-bit or fp32 weights, so 1 + scale gives the weight back. One read of x, one 16-bit write.
torch::Tensor layernorm_affine(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                               double eps, torch::ScalarType dtype);
// x [B, N, C] contiguous, in place: x += y · gate (y 16-bit [B, N, C]; gate [B, 1, C] fp32 or
// undefined for 1). x is fp32, or y's dtype for a 16-bit residual stream (the sum taken in fp32
// and rounded once, as diffusers' (x.float() + y · gate).type_as(x)).
void gated_residual_add_(torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& gate);
// x [B, N, out] contiguous, fp32 or h's dtype (a 16-bit residual stream, its bias then rounded to
// that dtype), in place: x += gate · (h · wᵀ + bias), as ONE cuBLASLt GEMM per
// batch sample whose C and D are x (engine/model/cuda/lt_gemm.h), instead of a GEMM writing a
// 16-bit y and gated_residual_add_ reading it back. The gate is folded into the weights: each
// output row of w scaled by its gate value, rounded once to w's dtype (the unfused path rounds the
// GEMM's output to 16 bits once instead: the same size of error), and into an fp32 bias. h
// [B, N, in] 16-bit, w [out, in] in h's dtype, bias [out] or undefined, gate [B, 1, out] / [B, out]
// fp32 or undefined for 1 (then one GEMM over all B · N rows); x, h and w on one CUDA device
// (ShapeError otherwise, as for shapes that do not fit). Returns false with x untouched where
// the GEMM cannot run (cuBLASLt not in the process, no algorithm for the shape; logged once): the
// caller then takes the unfused path.
bool linear_residual_add_(torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& bias,
                          const torch::Tensor& gate);

}  // namespace longshot::model::fused

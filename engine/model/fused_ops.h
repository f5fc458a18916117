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

// y [B, N, C] 16-bit contiguous → RMSNorm(y)·weight, then RoPE per head of head_dim when cos/sin
// ([N, head_dim/2] fp32) are defined; same shape and dtype as y. With `pooled`, it also gets the
// output's means over groups of pool_group consecutive tokens, [B, C / head_dim, ceil(N / pool_group),
// head_dim] fp32 — the block means a dynamic mask scores (MaskRequest::q_pooled), from the same pass.
torch::Tensor rmsnorm_rope(const torch::Tensor& y, const torch::Tensor& weight, const torch::Tensor& cos,
                           const torch::Tensor& sin, double eps, int64_t head_dim, int64_t pool_group = 0,
                           torch::Tensor* pooled = nullptr);
// x [B, N, C] fp32 → LayerNorm(x) (no affine) · (1 + scale) + shift in `dtype` (16-bit);
// shift/scale [B, 1, C] or [B, C] fp32, both undefined for no modulation.
torch::Tensor layernorm_modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale,
                                 double eps, torch::ScalarType dtype);
// x [B, N, C] fp32 contiguous, in place: x += y · gate (y 16-bit [B, N, C]; gate [B, 1, C] fp32
// or undefined for 1).
void gated_residual_add_(torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& gate);

}  // namespace longshot::model::fused

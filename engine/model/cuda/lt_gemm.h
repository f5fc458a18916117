// The DiT block's GEMMs that need more than at::linear gives (CUDA runtime + cuBLASLt only;
// engine/model/fused_ops.cpp and projections.cpp wrap them for LibTorch):
// - gemm_residual: an output projection straight into the residual stream (fp32 or 16-bit): one
//   GEMM instead of a GEMM that writes a 16-bit output plus a pass that reads it back, scales it by
//   the gate and adds it to x;
// - gemm_fp8: e4m3 × e4m3 with one fp32 scale per activation row and per weight row (cuBLASLt's
//   outer-vector scaling), into a bf16 output or, like gemm_residual, into the residual stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

namespace longshot::model::cuda {

// The workspace callers hand every GEMM below: cuBLASLt's recommended size on Hopper.
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;

// x[r, :] += a[r, :] · wᵀ + bias on `stream`, in one cuBLASLt matmul: x is its C and its D
// (beta = 1), the bias (null for none) its epilogue, fp32 accumulation. a: 16-bit (fp16 when
// `fp16`, else bf16) [rows, k] row-major; w: same dtype [n, k] row-major; x [rows, n] row-major
// and bias [n]: fp32, or — with `x16`, a 16-bit residual stream — a's dtype (the sum rounded once).
// workspace: workspace_bytes of device memory for cuBLASLt. Returns an empty string once
// enqueued; otherwise why it could not run (cuBLASLt not in the process, no algorithm for the
// shape), with nothing enqueued and x untouched.
std::string gemm_residual(const void* a, const void* w, const void* bias, void* x, bool fp16, bool x16, int64_t rows,
                          int n, int k, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// One FP8 GEMM: out[r, c] = a_scale[r] · w_scale[c] · Σ_k a8[r, k] · w8[c, k] + bias[c]
// (+ out[r, c] when `residual`). a8: e4m3 [rows, k] row-major; w8: e4m3 [n, k] row-major; scales
// fp32 device vectors ([rows], [n]); bias: device [n], fp32 for an fp32 residual else bf16, null for
// none. out: bf16 [rows, n] (written), or the residual [rows, n] (C and D, beta = 1) when `residual`:
// fp32, or bf16 with `residual16`. k and n multiples of 16, pointers 16-byte aligned. Same return
// contract as gemm_residual; "this cuBLASLt has no outer-vector FP8 scaling" where the headers or
// the library lack it (cuBLAS < 12.9).
struct Fp8Operands {
  const void* a8 = nullptr;
  const float* a_scale = nullptr;
  const void* w8 = nullptr;
  const float* w_scale = nullptr;
  const void* bias = nullptr;
  const void* bias_bf16 = nullptr;  // residual only: the same bias in bf16, tried where fp32 has no algorithm
  void* out = nullptr;
  bool residual = false;
  // With `residual`: the stream is bf16 (out bf16 [rows, n] is C and D, bias bf16) instead of fp32.
  bool residual16 = false;
  // Where given: set true when cuBLASLt has no bias epilogue beside these scales and the GEMM ran
  // without the bias, which the caller then adds; null: such a GEMM fails instead.
  bool* bias_left_out = nullptr;
};
std::string gemm_fp8(const Fp8Operands& op, int64_t rows, int n, int k, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream);

}  // namespace longshot::model::cuda

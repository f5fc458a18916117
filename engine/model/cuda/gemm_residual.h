// The DiT block's output projections straight into the fp32 residual stream (CUDA runtime +
// cuBLASLt only; engine/model/fused_ops.h wraps it for LibTorch): one GEMM instead of a GEMM that
// writes a 16-bit output plus a pass that reads it back, scales it by the gate and adds it to x.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

namespace longshot::model::cuda {

// x[r, :] += a[r, :] · wᵀ + bias on `stream`, in one cuBLASLt matmul: x is its C and its D
// (beta = 1, fp32 out), the bias (fp32 [n], null for none) its epilogue, fp32 accumulation.
// a: 16-bit (fp16 when `fp16`, else bf16) [rows, k] row-major; w: same dtype [n, k] row-major;
// x: fp32 [rows, n] row-major. workspace: workspace_bytes of device memory for cuBLASLt.
// Returns an empty string once enqueued; otherwise why it could not run (cuBLASLt not in the
// process, no algorithm for the shape), with nothing enqueued and x untouched.
std::string gemm_residual(const void* a, const void* w, const float* bias, float* x, bool fp16, int64_t rows, int n,
                          int k, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace longshot::model::cuda

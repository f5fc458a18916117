// Per-row e4m3 quantisation of activations for the FP8 linear layers (CUDA runtime only;
// engine/model/projections.cpp wraps it for LibTorch). One read of the 16-bit rows, one write of
// the 8-bit rows and their scales: the eager LibTorch chain (abs, amax, divide, cast) read and
// wrote the activation four times.
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace longshot::model::cuda {

// For each row r of x (16-bit, fp16 when `fp16` else bf16, K values, rows `ld` elements apart):
// v = GELU_tanh(x) when `gelu` else x; scale[r] = max(amax |v|, 1e-12) / 448;
// out[r, k] = e4m3(v / scale[r]) (saturating), out contiguous [rows, K]. K and ld multiples of 8,
// x 16-byte aligned. Rows of K ≤ 10,240 are held in registers (one read, one GELU per value) when
// `rows_in_registers`, else read twice; the result is the same bit for bit.
void quantize_rows_e4m3(const void* x, bool fp16, int64_t rows, int K, int64_t ld, bool gelu, uint8_t* out,
                        float* scale, cudaStream_t stream, bool rows_in_registers = true);

}  // namespace longshot::model::cuda

// fp8 weights as stored in safetensors files (F8_E4M3 "fn" and F8_E5M2): their bit patterns held
// as uint8 (LibTorch 1.13 has no float8 dtype) and decoded through one exact 256-entry table.
// Shared by the text encoder and the DiT. IO room: no model, no pipeline.
#pragma once
#include <torch/types.h>

namespace longshot::io {

// All 256 values of one format as float32 [256] (CPU): E4M3 is the "fn" variant (no infinities,
// 0x7f / 0xff NaN), E5M2 the IEEE-like one. Exact for every byte.
const torch::Tensor& fp8_values(bool e5m2);

// A lookup table for decode_fp8_with: fp8_values × scale (in fp32, so each entry equals the
// decoded value times the scale rounded once), converted to `dtype`, on `device`.
torch::Tensor fp8_lookup(bool e5m2, float scale, torch::ScalarType dtype, const torch::Device& device);

// Bits (kByte, any shape, on the table's device) → values in the table's dtype, shaped like bits.
// Gathers in chunks, so the int64 indices never cost more than a few hundred MB at once.
// ShapeError for bits that are not kByte.
torch::Tensor decode_fp8_with(const torch::Tensor& bits, const torch::Tensor& table);

// fp8 bit patterns (kByte) → `dtype` (no scale).
torch::Tensor decode_fp8(const torch::Tensor& bits, bool e5m2, torch::ScalarType dtype);

}  // namespace longshot::io

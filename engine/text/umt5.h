// umT5 encoder (Wan2.1's text encoder, umT5-XXL) in LibTorch: weights from the transformers /
// diffusers / ComfyUI names (incl. fp8 and "scaled" fp8) or the original Wan .pth names.
// Text room: token ids in, embeddings out — no tokenizer, no pipeline, no UI.
//
// Maths (transformers' UMT5EncoderModel, Wan's wan/modules/t5.py): pre-norm blocks, T5 RMS norm
// (no mean subtraction, variance in fp32), self-attention without 1/sqrt(d) scaling plus a
// relative position bias owned by every layer (bidirectional buckets), softmax in fp32,
// gated-GELU(tanh) FFN wo(gelu(wi_0 x) * wi_1 x), a final RMS norm.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <torch/types.h>

#include "engine/io/fp8.h"

namespace longshot::text {

struct UMT5Config {
  int64_t vocab = 256384;
  int64_t d_model = 4096;
  int64_t d_kv = 64;  // per head
  int64_t num_heads = 64;
  int64_t d_ff = 10240;
  int64_t num_layers = 24;
  int64_t num_buckets = 32;
  int64_t max_distance = 128;
  double eps = 1e-6;

  static UMT5Config xxl() { return {}; }  // Wan2.1's umt5-xxl
  int64_t inner_dim() const { return d_kv * num_heads; }
  std::string describe() const;
  bool operator==(const UMT5Config& o) const;
};

// Key names a checkpoint uses. ComfyUI's umt5_xxl files use the transformers names.
enum class UMT5Layout { Transformers, Wan };
const char* to_string(UMT5Layout layout);

struct UMT5LoadOptions {
  // Sizes the file must have; unset: read from the tensor shapes (then still checked for consistency).
  std::shared_ptr<const UMT5Config> expect;
  torch::Device device = torch::kCPU;
  // Dtype the float weights are held in and the encoder computes in (fp32 for parity, bf16 for
  // memory). fp8 weights stay fp8 and are up-cast to this dtype one layer at a time.
  torch::ScalarType dtype = torch::kFloat;
};

// fp8 bit patterns (kByte) → `dtype`: engine/io's decoder, the one the DiT uses too (io/fp8.h).
using io::decode_fp8;

class UMT5Encoder {
 public:
  UMT5Encoder();  // empty: loaded() is false
  ~UMT5Encoder();
  UMT5Encoder(UMT5Encoder&&) noexcept;
  UMT5Encoder& operator=(UMT5Encoder&&) noexcept;

  // `path`: see Checkpoint (file, shard index, folder, .pth). Strict: every tensor of the config
  // present with its shape and a float dtype, scale tensors well formed, no block beyond
  // num_layers; errors (IoError / ShapeError) name the file and the tensor.
  static UMT5Encoder load(const std::string& path, const UMT5LoadOptions& options = {});

  // ids [B, L] int64, mask [B, L] (1 = token, 0 = padding) → [B, L, d_model] in dtype() on
  // device(), padded positions zeroed. Right-padded rows are computed over their longest valid
  // prefix only: masked keys get exactly zero weight in the full-length softmax and the relative
  // bias depends on distances alone, so the valid positions are the same either way.
  torch::Tensor encode(const torch::Tensor& ids, const torch::Tensor& mask) const;

  // Moves (and for float weights re-types) every weight; fp8 weights keep their bits.
  void to(torch::Device device, c10::optional<torch::ScalarType> dtype = c10::nullopt);
  void release();  // frees every weight; loaded() becomes false
  bool loaded() const;

  const UMT5Config& config() const;
  UMT5Layout layout() const;
  torch::Device device() const;
  torch::ScalarType dtype() const;
  bool has_fp8() const;
  int64_t weight_bytes() const;  // bytes held by the weights now
  const std::string& identity() const;  // the checkpoint files' identity (path, size, mtime)

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace longshot::text

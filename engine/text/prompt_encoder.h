// Prompt → umT5 embedding as Wan's pipelines use it: tokenizer + encoder + an on-disk cache keyed
// by (weights files, tokenizer file, dtype, device kind, prompt), so a re-run skips the encoder.
// Text room: no DiT, no pipeline, no UI. The encoder loads on the first cache miss and stays
// resident until release() (call it once the prompts of a job are encoded, before the DiT runs).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <torch/types.h>

#include "engine/text/umt5.h"

namespace longshot::text {

struct PromptEncoderOptions {
  std::string weights;    // file, shard index or folder (see Checkpoint)
  std::string tokenizer;  // spiece.model or its folder; "" → the weights folder, then ../tokenizer/
  torch::Device device = torch::kCPU;
  // bf16: 11.4 GB for XXL (fp32: 22.7 GB, more than many machines have); on CPUs with AMX bf16 is
  // also ~3x faster than fp32. fp32 is for parity checks.
  torch::ScalarType dtype = torch::kBFloat16;
  // Cache folder; "" → $LONGSHOT_CACHE_DIR/text, else $XDG_CACHE_HOME/longshot/text, else
  // ~/.cache/longshot/text; "none" → no cache.
  std::string cache_dir;
  std::shared_ptr<const UMT5Config> expect;  // e.g. xxl() for Wan configs; null → from the file
  int64_t max_len = 512;
};

// The cache's folder for `option` ("" → the default above, "none" → "").
std::string resolve_cache_dir(const std::string& option);
// The tokenizer file for `weights` when none is given: spiece.model in the weights' folder (or
// the folder itself), then in ../tokenizer/ (diffusers); IoError listing both places otherwise.
std::string find_tokenizer(const std::string& weights);

struct PromptEncodeStats {
  bool cache_hit = false;
  double load_seconds = 0, encode_seconds = 0;  // 0 when skipped
  int64_t tokens = 0;                           // pieces + EOS
  bool truncated = false;
};

class PromptEncoder {
 public:
  // Opens the tokenizer now (cheap, fails early); the weights' headers are read on first use.
  explicit PromptEncoder(PromptEncoderOptions options);
  ~PromptEncoder();

  // [1, max_len, d_model] float32 on the CPU, rows past the prompt's tokens zero.
  torch::Tensor encode(const std::string& prompt);
  const PromptEncodeStats& last_stats() const { return stats_; }
  // Frees the encoder's weights (the tokenizer stays); the next cache miss loads them again.
  void release();
  bool loaded() const { return encoder_.loaded(); }
  UMT5Encoder& encoder();  // loads when needed
  const std::string& cache_dir() const { return cache_dir_; }
  // The cache file a prompt maps to (whether or not it exists).
  std::string cache_path(const std::string& prompt);

 private:
  std::string cache_key(const std::string& prompt);
  PromptEncoderOptions options_;
  std::unique_ptr<class Tokenizer> tokenizer_;
  UMT5Encoder encoder_;
  std::string cache_dir_, weights_identity_;
  PromptEncodeStats stats_;
};

}  // namespace longshot::text

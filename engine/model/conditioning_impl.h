// The stock text encoders and latent decoders, and the per-config choice between them.
// Model room: no pipeline, no UI.
#pragma once
#include <memory>
#include <string>

#include "engine/model/conditioning.h"
#include "engine/model/dit_config.h"
#include "engine/vae/wan_vae.h"
#include "engine/text/prompt_encoder.h"

namespace longshot::model {

// Deterministic stand-in for a text encoder (the tiny test model): each whitespace-separated
// word becomes a unit-variance vector seeded by a hash of the word; one row per word, at most
// max_len rows. Same prompt → same embedding; it carries no language understanding.
class HashTextEncoder : public TextEncoder {
 public:
  HashTextEncoder(int64_t text_dim, int64_t max_len) : dim_(text_dim), max_len_(max_len) {}
  torch::Tensor encode(const std::string& prompt) override;
  int64_t text_dim() const override { return dim_; }

 private:
  int64_t dim_, max_len_;
};

// Precomputed embeddings from a safetensors file (Wan's umT5 output, [L, text_dim] or [1, L, text_dim]).
// The tensor is "context" when present, else the file's only tensor; "negative" (optional) is
// returned for the negative prompt. Throws IoError / ShapeError naming the file and tensor.
class EmbeddingFileTextEncoder : public TextEncoder {
 public:
  EmbeddingFileTextEncoder(std::string path, int64_t text_dim);
  // The prompt text is not read: the file holds its embedding. "" selects "negative" if present.
  torch::Tensor encode(const std::string& prompt) override;
  torch::Tensor negative() const { return negative_; }
  int64_t text_dim() const override { return dim_; }

 private:
  int64_t dim_;
  torch::Tensor context_, negative_;
};

// The real umT5 encoder (engine/text) behind the TextEncoder interface: prompt → [1, 512, d_model]
// float32 on the CPU, padded rows zero, cached on disk. The weights load on the first prompt that
// misses the cache and stay until release(): call it after the job's prompts (and negative
// prompt) are encoded, before the DiT runs, unless the encoder should stay resident.
class UMT5TextEncoder : public TextEncoder {
 public:
  // `text_dim`: the DiT's; a checkpoint of another d_model is a ShapeError at the first encode.
  UMT5TextEncoder(text::PromptEncoderOptions options, int64_t text_dim);
  torch::Tensor encode(const std::string& prompt) override;
  int64_t text_dim() const override { return dim_; }
  void release() { encoder_.release(); }
  text::PromptEncoder& prompt_encoder() { return encoder_; }

 private:
  text::PromptEncoder encoder_;
  int64_t dim_;
};

// Pixel-space latents: channels 0..2 are RGB in [−1, 1]; temporal and spatial strides 1.
class PixelDecoder : public LatentDecoder {
 public:
  Video decode(const torch::Tensor& latents, double fps) override;
  int temporal_stride() const override { return 1; }
  int spatial_stride() const override { return 1; }
};

// A preview of VAE latents (until the Wan VAE lands): channel groups averaged into RGB, frames and
// pixels repeated by the VAE strides so the video has the requested size. Not a real decode.
class LatentPreviewDecoder : public LatentDecoder {
 public:
  LatentPreviewDecoder(int temporal_stride, int spatial_stride) : ts_(temporal_stride), ss_(spatial_stride) {}
  Video decode(const torch::Tensor& latents, double fps) override;
  int temporal_stride() const override { return ts_; }
  int spatial_stride() const override { return ss_; }

 private:
  int ts_, ss_;
};

// The Wan2.1 VAE (engine/vae) behind the LatentDecoder interface: normalised DiT latents
// [16, T, h, w] → 1 + 4(T − 1) frames of 8h × 8w, decoded one latent frame at a time (bf16 on a
// GPU, fp32 on the CPU). Only the decoder half of the weights file is loaded.
class WanVaeDecoder : public LatentDecoder {
 public:
  // Throws IoError / ShapeError naming the file and tensor (strict, as vae::WanVAE::load).
  WanVaeDecoder(const std::string& path, torch::Device device, bool tile = false);
  Video decode(const torch::Tensor& latents, double fps) override;
  // The same, handing 8-bit frames to `sink` as they are decoded (first the frame count, then
  // chunks of 1, 4, 4, ... frames; `first` is the chunk's first frame index): for streaming export.
  void decode_streamed(const torch::Tensor& latents, double fps,
                       const std::function<void(const Video& chunk, int first)>& sink);
  int temporal_stride() const override { return int(vae_.config().temporal_stride()); }
  int spatial_stride() const override { return int(vae_.config().spatial_stride()); }
  const vae::WanVAE& vae() const { return vae_; }

 private:
  vae::WanVAE vae_;
  vae::DecodeOptions options_;
};

// Where make_decoder finds a real VAE.
struct VaeDecoderOptions {
  std::string path;                      // Wan2.1 VAE weights ("" = none)
  torch::Device device = torch::kCPU;
  bool tile = false;                     // spatial tiling (--vae-tile)
};

// An embeddings file when `embeddings_path` is given; else the umT5 encoder when `umt5.weights`
// is given (Wan configs: text_dim must be umT5's d_model); else the config's factory if it has
// one, the hash encoder for pixel-space configs, and a ParameterError("text-embeddings") for Wan
// configs with neither.
std::unique_ptr<TextEncoder> make_text_encoder(const DiTConfig& config, const std::string& embeddings_path = "",
                                               const text::PromptEncoderOptions& umt5 = {});
// The config's factory if it has one; else PixelDecoder for stride-1 configs, LatentPreviewDecoder otherwise.
std::unique_ptr<LatentDecoder> make_decoder(const DiTConfig& config);
// With a VAE file: WanVaeDecoder for Wan latent configs (strides 4 and 8, 16 channels; others get
// ParameterError("vae")). Without one, as above; a Wan config then gets the colour preview, with a
// warning in the log that the video is not a real decode.
std::unique_ptr<LatentDecoder> make_decoder(const DiTConfig& config, const VaeDecoderOptions& vae);

// [C, T, H, W] values in [−1, 1] (channels 0..2) → 8-bit RGB video.
Video tensor_to_video(const torch::Tensor& rgb, double fps);

}  // namespace longshot::model

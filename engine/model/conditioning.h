// Conditioning interfaces of the DiT: text encoders turn prompts into embeddings, decoders turn
// latents into frames. The Wan configs read precomputed embeddings; the built-in model ships its
// own small encoder and a pixel-space (identity) decoder. Model room: no pipeline, no UI.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/io/video.h"

namespace longshot::model {

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // [1, L, text_dim] float embeddings of one prompt (L may be padded).
  virtual torch::Tensor encode(const std::string& prompt) = 0;
  virtual int64_t text_dim() const = 0;
};

class LatentDecoder {
 public:
  virtual ~LatentDecoder() = default;
  // latents [C, T, H, W] (after unpatchify) → 8-bit RGB frames.
  virtual Video decode(const torch::Tensor& latents, double fps) = 0;
  // Video frames ↔ latent frames and pixels ↔ latent pixels.
  virtual int temporal_stride() const = 0;
  virtual int spatial_stride() const = 0;
};

}  // namespace longshot::model

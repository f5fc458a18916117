// Named configurations of the Wan2.1-style video DiT and the registry the CLI, the studio and the
// built-in model look them up in. Model room: knows tensors and shapes, not the pipeline or any UI.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace longshot::model {

class TextEncoder;
class LatentDecoder;
struct DiTConfig;

using TextEncoderFactory = std::function<std::unique_ptr<TextEncoder>(const DiTConfig&)>;
using LatentDecoderFactory = std::function<std::unique_ptr<LatentDecoder>(const DiTConfig&)>;

struct DiTConfig {
  std::string name;
  std::string summary;
  // Transformer (the Wan2.1 WanModel fields).
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t freq_dim = 256;        // sinusoidal time embedding width
  int64_t text_dim = 4096;       // text encoder width
  int64_t text_len = 512;        // text embeddings are zero-padded to this length
  int64_t in_channels = 16;
  int64_t out_channels = 16;
  // Absolute-position input planes (0 or 2): x and y in [-1, 1] at pixel centres, appended to the
  // latents before patch embedding. RoPE gives attention relative positions only, and a pixel-space
  // model of a flat background then cannot tell where the frame's walls are; Wan (0) needs none.
  int64_t position_channels = 0;  // see position_channels_allowed
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  std::array<int64_t, 3> patch{1, 2, 2};  // (t, h, w)
  double eps = 1e-6;
  bool cross_attn_norm = true;  // norm3 (affine LayerNorm) before cross-attention
  double rope_theta = 10000.0;
  int64_t rope_max_positions = 1024;
  // Latent space: video frames/pixels per latent frame/pixel (Wan VAE: 4 and 8).
  int temporal_stride = 4;
  int spatial_stride = 8;
  // Reference horizon: token frames (latent frames / patch t) of the clips the model was trained
  // on, which lvsa sizes its budget by (0: not known). Wan2.1: 81 video frames = 21 latent frames.
  int64_t reference_frames = 21;
  // Sampling defaults.
  int default_steps = 50;
  double default_shift = 5.0;
  double default_guidance = 5.0;
  // A name make_sampler knows (unipc, euler, dpm++2m) and the negative prompt a job gets when it
  // names none: Wan's own recipe (wan_negative_prompt) for the Wan configs.
  std::string default_sampler = "unipc";
  std::string default_negative_prompt;
  // A weights file loaded when the config is used by name ("" = random weights).
  std::string default_weights;
  // Conditioning; null factories fall back to the defaults of make_text_encoder/make_decoder.
  TextEncoderFactory text_encoder;
  LatentDecoderFactory decoder;

  int64_t head_dim() const { return dim / num_heads; }
  // Throws ParameterError naming the inconsistent field.
  void validate() const;
};

// Wan2.1's default negative prompt (sample_neg_prompt in its shared_config.py), kept in this one place.
const std::string& wan_negative_prompt();

// The position_channels a config may have: none, or the x and y planes.
inline bool position_channels_allowed(int64_t n) { return n == 0 || n == 2; }

// Registered configs, in this order: wan2.1-t2v-1.3b, wan2.1-t2v-14b, tiny, longshot-builtin,
// longshot-builtin-sparse (a table built on first use: no call needed before a lookup), then
// whatever register_config added.
std::vector<DiTConfig> registered_configs();
// Adds or replaces a named config at run time (--random-weights' per-process config, tests).
void register_config(const DiTConfig& config);
bool has_config(const std::string& name);
// Throws ParameterError("model", ...) listing the known names.
DiTConfig find_config(const std::string& name);

}  // namespace longshot::model

// The Wan2.1 video VAE in LibTorch: causal 3D encoder and decoder, streamed (one latent frame at a
// time through cached causal convolutions) so a whole clip never sits on the GPU at once.
// VAE room: tensors and weight files in, frames and latents out; it knows no DiT, sampler or UI.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace longshot::vae {

// The architecture. Defaults are Wan2.1's (127 M parameters); tests use a small base_dim.
struct WanVAEConfig {
  int64_t base_dim = 96;
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<bool> temporal_downsample = {false, true, true};  // encoder order; the decoder reverses it
  // Per-channel statistics of the raw latents (Wan2.1's published constants, z_dim 16): the DiT
  // works on (raw - mean) / std.
  std::vector<float> latents_mean = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,  -0.1517f, 1.5508f,
                                     0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
  std::vector<float> latents_std = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                    3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

  int64_t temporal_stride() const;  // 4 for Wan2.1: 2 per temporal downsample
  int64_t spatial_stride() const;   // 8 for Wan2.1: 2 per level but the last
  // Video frames for `latent_frames` latent frames: the first stands alone, each later one gives
  // temporal_stride() frames (21 → 81).
  int64_t frames_for(int64_t latent_frames) const;
  // Throws ParameterError naming the field when the config cannot describe a Wan VAE.
  void validate() const;
};

// Which latent space a caller speaks. The DiT's latents are Normalized; diffusers'
// AutoencoderKLWan.decode/encode take and give Raw ones (its pipeline un-normalises first).
enum class LatentSpace { Normalized, Raw };

// Tensor names in a weights file: diffusers' (vae/diffusion_pytorch_model.safetensors) or the
// original Wan2.1 code's (Wan2.1_VAE.pth, ComfyUI's wan_2.1_vae.safetensors).
enum class WeightLayout { Diffusers, Original };

struct DecodeOptions {
  LatentSpace space = LatentSpace::Normalized;
  // Latent frames per decoder call. 1 is Wan's streamed decode (lowest memory); 0 feeds the whole
  // clip at once (same numbers, far more memory: a cross-check for tests).
  int64_t chunk = 1;
  // Frames per pass through the levels after the last temporal upsampling (the full-resolution
  // ones, where most activation memory goes): 0 = the whole chunk (4 frames). Same numbers either
  // way; on the CPU at 240×416 the decode's memory grew by 1.76 / 1.51 / 1.39 GiB for 0 / 2 / 1.
  int64_t pass_frames = 2;
  // Spatial tiling for small GPUs: tiles of `tile_latent` latent pixels (×8 on screen) overlapping
  // by `tile_overlap`, decoded one after another over the whole clip (so only one tile's caches are
  // on the device), blended with linear ramps in a float32 host buffer; frames reach the sink only
  // once every tile is done (host memory: the whole clip in float32).
  bool tile = false;
  int64_t tile_latent = 32;
  int64_t tile_overlap = 8;
};

// Receives decoded frames as they come: `frames` is [3, n, H, W] in [-1, 1], on the VAE's device
// and in its decoder dtype; `first_frame` is the index of its first frame in the clip.
using FrameSink = std::function<void(const torch::Tensor& frames, int64_t first_frame)>;

class WanVAE {
 public:
  // Random weights (fan-in scaled normal, seeded): tests and benchmarks without a weights file.
  explicit WanVAE(WanVAEConfig config = {}, uint64_t seed = 0);
  ~WanVAE();
  WanVAE(WanVAE&&) noexcept;
  WanVAE& operator=(WanVAE&&) noexcept;

  // Reads a weights file: .safetensors in either layout (detected; a "vae." or
  // "first_stage_model." prefix is accepted), or a torch.save .pth zip of a state dict. base_dim
  // and z_dim are taken from the tensors; the rest of `config` must fit. Strict: every tensor
  // present with its shape, else IoError/ShapeError naming the file and the tensor; tensors the
  // model does not use are an error too (a wrong file, not a VAE). `with_encoder` false skips the
  // encoder (decode-only use: less memory); encode() then throws.
  static WanVAE load(const std::string& path, WanVAEConfig config = {}, bool with_encoder = true);
  // Which layout a file uses (throws IoError naming the file when it is neither).
  static WeightLayout detect_layout(const std::string& path);

  // Moves the weights. The decoder runs in `decoder_dtype` (bf16 on GPUs), the encoder in
  // `encoder_dtype` (fp32 by default: the encoder's error compounds in image-to-video).
  void to(torch::Device device, torch::ScalarType decoder_dtype, torch::ScalarType encoder_dtype = torch::kFloat);
  torch::Device device() const;
  torch::ScalarType decoder_dtype() const;
  const WanVAEConfig& config() const;
  bool has_encoder() const;

  // latents [z_dim, T, h, w] (any device/dtype) → frames_for(T) frames of h·8 × w·8, handed to
  // `sink` chunk by chunk (1 frame, then 4 per latent frame). Throws ShapeError for a wrong
  // channel count or rank, and Error("out of GPU memory ...") when the device runs out.
  void decode_streamed(const torch::Tensor& latents, const FrameSink& sink, const DecodeOptions& options = {}) const;
  // The same, gathered: [3, F, H, W] float32 on the CPU, in [-1, 1].
  torch::Tensor decode(const torch::Tensor& latents, const DecodeOptions& options = {}) const;
  // video [3, F, H, W] in [-1, 1] (F = 1 + 4k, H and W multiples of 8) → the posterior mean
  // [z_dim, 1 + k, H/8, W/8], float32 on the CPU, in `space`. Frame 0 alone, then groups of 4.
  torch::Tensor encode(const torch::Tensor& video, LatentSpace space = LatentSpace::Normalized) const;

  // Raw ↔ normalised latents with the config's mean/std ([z_dim, ...] on any device).
  torch::Tensor normalize(const torch::Tensor& raw) const;
  torch::Tensor denormalize(const torch::Tensor& normalized) const;

  // Every weight under its diffusers name (CPU copies not taken: the live tensors).
  std::map<std::string, torch::Tensor> state_dict() const;
  // Diffusers name → original Wan2.1 name, for every weight.
  std::map<std::string, std::string> original_names() const;
  int64_t parameter_count() const;

 private:
  struct Impl;
  explicit WanVAE(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace longshot::vae

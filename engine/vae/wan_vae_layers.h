// Internal to the VAE room: the layer tree of the Wan2.1 VAE (weights under their diffusers and
// original names), the streamed causal state, and one chunk through the encoder or decoder.
// Shared by wan_vae.cpp (public API), wan_vae_layers.cpp (maths) and wan_vae_weights.cpp (files).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/vae/wan_vae.h"

namespace longshot::vae {
namespace detail {

struct Conv {
  torch::Tensor w, b;
  bool defined() const { return w.defined(); }
};

struct ResBlock {
  torch::Tensor gamma1, gamma2;
  Conv conv1, conv2, shortcut;  // shortcut only when the channel count changes
};

struct Attention {
  torch::Tensor gamma;
  Conv qkv, proj;
};

struct Mid {
  ResBlock res0, res1;
  Attention attn;
};

enum class ResampleMode { Up2d, Up3d, Down2d, Down3d };

struct Resample {
  ResampleMode mode = ResampleMode::Up2d;
  Conv conv;       // 3×3 per frame (stride 2 when going down)
  Conv time_conv;  // 3d modes: 3-tap temporal conv (doubles channels up, stride 2 down)
};

struct EncoderItem {  // the encoder's flat list: residual blocks with a resample after each level
  bool is_resample = false;
  ResBlock res;
  Resample resample;
};

struct UpBlock {
  std::vector<ResBlock> res;
  bool has_resample = false;
  Resample resample;
};

struct Encoder {
  Conv conv_in, conv_out, quant;
  std::vector<EncoderItem> items;
  Mid mid;
  torch::Tensor gamma_out;
};

struct Decoder {
  Conv post_quant, conv_in, conv_out;
  Mid mid;
  std::vector<UpBlock> ups;
  torch::Tensor gamma_out;
};

struct Param {
  std::string name;      // diffusers
  std::string original;  // Wan2.1 / ComfyUI
  torch::Tensor* tensor;
  std::vector<int64_t> shape;
  bool encoder;
};

// Per-call state of the causal convolutions and 3d resamplers, in the order the network visits
// them (the same order in every chunk).
struct Slot {
  torch::Tensor cache;  // the last input frames (2 for a 3-tap conv, 1 for the down resampler)
  bool started = false; // the resamplers' first chunk has been seen
};

struct Stream {
  std::vector<Slot> slots;
  size_t next = 0;
  void begin_chunk() { next = 0; }
  Slot& slot() {
    if (next == slots.size()) slots.emplace_back();
    return slots[next++];
  }
};

// One chunk of latent frames [1, z, t, h, w] (post_quant_conv applied) → frames [1, 3, n, H, W].
// Once the last temporal upsampling is done the time axis no longer changes, so the remaining
// (largest) levels may run `pass_frames` frames at a time (0: all at once): the same numbers, the
// activations of fewer full-resolution frames alive at once.
torch::Tensor run_decoder(Stream& s, const Decoder& d, torch::Tensor x, int64_t pass_frames);
// One chunk of frames [1, 3, t, H, W] → [1, 2z, t', h, w] before quant_conv.
torch::Tensor run_encoder(Stream& s, const Encoder& e, torch::Tensor x);

bool ends_with(const std::string& s, const std::string& tail);

}  // namespace detail

// The network and where it runs; built (layer tree + parameter list) by wan_vae_layers.cpp.
struct WanVAE::Impl {
  WanVAEConfig config;
  bool with_encoder = true;
  detail::Encoder enc;
  detail::Decoder dec;
  std::vector<detail::Param> params;
  torch::Device device = torch::kCPU;
  torch::ScalarType dec_dtype = torch::kFloat, enc_dtype = torch::kFloat;

  // Validates the config and lays out every weight (uninitialised) with its two names.
  Impl(WanVAEConfig c, bool encoder);
  // Fan-in scaled normal weights, gammas near 1, small biases: tests without a weights file.
  void randomize(uint64_t seed);
};

}  // namespace longshot::vae

// Mask-aware adapter (DynamicRad's "mask-aware LoRA"): low-rank deltas on a DiT's self-attention
// projections, trained (longshot-train --distill-mode) so that a sparse mode's output follows the
// dense model's, and applied only in layers that run the mode's mask (a mask that happens to keep
// every block included). Dense layers, dense warm-up steps and the dense mode use the base weights
// untouched, so the dense video is the same with or without it.
//
// File: safetensors with `blocks.L.self_attn.P.lora_a` [rank, dim] and `.lora_b` [dim, rank] for
// P in q, k, v, o and every layer L; metadata `longshot.adapter.{config,mode,params,block_size,rank,
// scale}`.
#pragma once
#include <array>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "engine/model/dit_config.h"

namespace longshot::model {

class MaskAdapter {
 public:
  enum Proj { Q = 0, K = 1, V = 2, O = 3 };
  static constexpr const char* kProjNames[4] = {"q", "k", "v", "o"};

  // A fresh adapter for `config`: A ~ N(0, 1/dim) from `seed` (own generator), B = 0, so it starts
  // as the identity (delta 0). rank ≥ 1; throws ParameterError otherwise.
  static MaskAdapter fresh(const DiTConfig& config, int64_t rank, uint64_t seed);

  // y += scale · (x Aᵀ) Bᵀ for projection `proj` of layer `layer`, in x's dtype. x [..., dim].
  torch::Tensor delta(int64_t layer, Proj proj, const torch::Tensor& x) const;

  // Moves every factor (training: fp32 leaves that require grad; inference: the model's dtype).
  void to(torch::Device device, torch::ScalarType dtype);
  // Every A and B, layer-major (q.a, q.b, k.a, ...): the trainer's parameters.
  std::vector<torch::Tensor> tensors() const;
  // Safetensors tensors under their file names (CPU, `dtype`).
  std::map<std::string, torch::Tensor> named(torch::ScalarType dtype) const;

  std::string config;            // DiT config name it was trained for
  std::string mode;              // attention mode it was trained under ("radial")
  std::string params;            // that mode's parameters, "keep_ratio=0.2" (shown to the user)
  int64_t block_size = 128;      // mask block size it was trained with
  int64_t rank = 0;
  double scale = 1.0;
  std::vector<std::array<torch::Tensor, 4>> a, b;  // [layer][proj]: A [rank, dim], B [dim, rank]
};

// Writes fp16 factors + metadata (temporary file, then rename). IoError on an unwritable path.
void save_adapter(const MaskAdapter& adapter, const std::string& path, torch::ScalarType dtype = torch::kHalf);
// Reads and checks against `config`: IoError for a missing/malformed file or missing metadata or
// tensors, ShapeError naming the tensor whose shape does not fit the config, ParameterError when
// it was trained for another config.
MaskAdapter load_adapter(const std::string& path, const DiTConfig& config);

// The adapter a model ships for a mode: `<weights without .safetensors>-<mode>-adapter.safetensors`
// next to the config's default weights, or "" when there is none.
std::string shipped_adapter_path(const DiTConfig& config, const std::string& mode);

}  // namespace longshot::model

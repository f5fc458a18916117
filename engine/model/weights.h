// Loading and saving DiT weights as safetensors, in the original Wan2.1 key layout or the
// diffusers WanTransformer3DModel layout. Model room: no pipeline, no UI.
#pragma once
#include <string>

#include "engine/model/dit.h"

namespace longshot::model {

enum class KeyLayout { Wan, Diffusers };

// Original Wan2.1 key → diffusers key ("blocks.3.norm3.weight" → "blocks.3.norm2.weight").
std::string to_diffusers_key(const std::string& wan_key);
// The layout a checkpoint's keys are in.
KeyLayout detect_layout(const std::vector<std::string>& keys);

// `path` is a .safetensors file or a shard index (`*.safetensors.index.json`, io::SafetensorsSet).
// Reads every parameter of `model` from `path`, converting the dtype to the model's. Throws
// IoError for a malformed file or a missing tensor and ShapeError for a shape that does not match
// the config, each naming the tensor.
void load_weights(WanDiTImpl& model, const std::string& path);
// Writes the model's parameters (temporary file + rename) with metadata longshot.config = name.
void save_weights(const WanDiTImpl& model, const std::string& path, KeyLayout layout = KeyLayout::Wan);

// The registered config a checkpoint belongs to: its longshot.config metadata, else the config
// whose dim / layers / channels / ffn match the tensor shapes. Throws IoError when none matches.
// position_channels follows the file's patch embedding (see with_checkpoint_positions).
DiTConfig infer_config(const std::string& path);
// `config` with position_channels set to what the checkpoint's patch embedding was trained with
// (its input channels beyond in_channels). Throws ShapeError when that is not 0 or 2, IoError for
// an unreadable file.
DiTConfig with_checkpoint_positions(DiTConfig config, const std::string& path);

// The DiT of a config name (random weights unless the config names a weights file), a checkpoint
// or a model folder: resolve_model + load_dit (model_source.h). Seeded random weights are deterministic.
WanDiT load_model(const std::string& name_or_path, uint64_t seed = 0, torch::Device device = torch::kCPU,
                  torch::ScalarType dtype = torch::kFloat);

}  // namespace longshot::model

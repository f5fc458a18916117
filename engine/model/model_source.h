// Where a model's parts come from. One function, resolve_model, turns what the user named — a
// registered name, a model folder (diffusers or the original Wan2.1 release layout), a checkpoint
// file, or ComfyUI-style split files — into the DiT config (detected from the weights) and the file
// of every component: DiT weights, text encoder, tokenizer, VAE. Everything else (generation,
// `longshot models`, the studio) asks it. Model room: files and configs; no pipeline, no UI.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/dit.h"
#include "engine/model/dit_config.h"

namespace longshot::model {

enum class ModelLayout {
  Registered,  // a name from the config registry (tiny, longshot-builtin, wan2.1-t2v-1.3b ...)
  Checkpoint,  // one DiT .safetensors (or shard index) on its own
  Diffusers,   // model_index.json, transformer/, text_encoder/, tokenizer/, vae/
  WanRelease,  // config.json + diffusion_pytorch_model*.safetensors, models_t5_*.pth, google/umt5-xxl/, Wan2.1_VAE.pth
  Split,       // --dit FILE --text-encoder FILE --vae FILE [--tokenizer FILE] (ComfyUI's files)
};
const char* to_string(ModelLayout layout);

// What the user named: --model NAME|DIR|FILE and the per-component files, which override the
// folder's (or, with no --model, form a split model on their own).
struct ModelSpec {
  std::string model;
  std::string dit;           // .safetensors or *.safetensors.index.json
  std::string text_encoder;  // umT5 encoder weights (.safetensors, index .json or .pth)
  std::string tokenizer;     // spiece.model, tokenizer.json, or a folder holding one
  std::string vae;           // Wan VAE weights (.safetensors or .pth)
};

struct ResolvedModel {
  std::string name;  // registry name, folder name or file stem: what summaries and recipes show
  ModelLayout layout = ModelLayout::Registered;
  std::string root;  // the folder or file it came from; "" for a registered name
  DiTConfig config;  // detected from the weights (and config.json); name = the registered match or `name`
  // Component files; "" = not part of this model (a registered config brings its own encoder and
  // decoder, or random weights) or missing (then named in `missing`).
  std::string dit_weights;
  std::string text_encoder;
  std::string tokenizer;
  std::string vae;
  std::vector<std::string> missing;  // "text encoder (expected text_encoder/model.safetensors)", ...
  uint64_t bytes_on_disk = 0;

  bool complete() const { return missing.empty(); }
  // Identity for caches: layout, name and every component path.
  std::string key() const;
};

// Folders `--model NAME` and `longshot models` search, in order: every entry of $LONGSHOT_MODELS
// (colon-separated), then $XDG_DATA_HOME/longshot/models (default ~/.local/share/longshot/models).
std::vector<std::string> model_search_path();

// Reads a folder or a checkpoint file without requiring every component: `missing` lists what a
// generation would lack. Throws IoError for a path that is no model (naming what was expected) or
// unreadable weights, ShapeError for components that do not fit together (naming both).
ResolvedModel inspect_model(const std::string& path);

// The one resolution. Order: split files with no --model; a registered name ("builtin" included);
// an existing folder or file; a name on the search path. Throws ParameterError("model") for an
// unknown name (listing the registered names and the search path), IoError for a folder missing
// components (each named) unless `allow_missing` lists them, ShapeError for mismatched components
// (both named: a 14B DiT under a 1.3B config.json, a text encoder whose width is not the DiT's
// text_dim, a VAE whose latent channels are not the DiT's).
ResolvedModel resolve_model(const ModelSpec& spec, const std::vector<std::string>& allow_missing = {});

// What `longshot models` lists: every folder and .safetensors file in the search path's folders.
struct FoundModel {
  std::string path;
  ResolvedModel model;  // valid when error is empty
  std::string error;    // why the entry is not a usable model
};
std::vector<FoundModel> find_models();

// The resolved model's DiT on `device`/`dtype`: its weights file, else seeded random weights
// (deterministic), else the registered config's own weights file. fp8 block weights (ComfyUI's
// fp8_e4m3fn files) stay fp8 and are up-cast per block; offload keeps every block's weights in
// host memory and streams them to the device block by block (WanDiTImpl::place, block_store.h).
WanDiT load_dit(const ResolvedModel& model, uint64_t seed, torch::Device device = torch::kCPU,
                torch::ScalarType dtype = torch::kFloat, bool offload = false);

// Component names used in `missing` and in allow_missing.
inline constexpr const char* kComponentDiT = "DiT";
inline constexpr const char* kComponentTextEncoder = "text encoder";
inline constexpr const char* kComponentTokenizer = "tokenizer";
inline constexpr const char* kComponentVae = "VAE";

}  // namespace longshot::model

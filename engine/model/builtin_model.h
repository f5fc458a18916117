// The built-in model "longshot-builtin": a small config of the shared Wan2.1 DiT in pixel space
// (RGB patchified directly), conditioned by its own word-level transformer text encoder, both
// trained by longshot-train on the procedural world (engine/data). Model room: no pipeline, no UI.
#pragma once
#include <memory>
#include <string>

#include <torch/torch.h>

#include "engine/data/tokenizer.h"
#include "engine/model/conditioning.h"
#include "engine/model/dit_config.h"

namespace longshot::model {

inline constexpr const char* kBuiltinName = "longshot-builtin";
// The same network fine-tuned sparsity-aware (longshot-train --sparse-mode radial --sparse-param
// keep_ratio=0.18): its radial videos stay close to its dense ones, at some cost in adherence.
inline constexpr const char* kBuiltinSparseName = "longshot-builtin-sparse";
// Video frames and size the built-in model is trained on (the "training length" of the metrics).
inline constexpr int kBuiltinFrames = 32;
inline constexpr int kBuiltinSize = 64;

struct TextNetConfig {
  int64_t vocab = 64;     // ≥ Tokenizer().vocab_size()
  int64_t dim = 128;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t ffn = 256;
  int64_t length = 40;    // token ids per prompt (<bos> + words + <pad>)
};

// Pre-norm transformer encoder over token ids: [B, L] int64 → [B, L, dim], pads zeroed (the DiT
// zero-pads text as Wan does) and masked out of self-attention.
class TextNetImpl : public torch::nn::Module {
 public:
  explicit TextNetImpl(TextNetConfig config);
  torch::Tensor forward(const torch::Tensor& ids);
  const TextNetConfig& config() const { return config_; }

  torch::nn::Embedding token{nullptr};
  torch::Tensor position;  // [length, dim]
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};

 private:
  TextNetConfig config_;
};
TORCH_MODULE(TextNet);

// model::TextEncoder over a TextNet and the caption tokenizer.
class BuiltinTextEncoder : public TextEncoder {
 public:
  explicit BuiltinTextEncoder(TextNet net);
  torch::Tensor encode(const std::string& prompt) override;
  int64_t text_dim() const override { return net_->config().dim; }
  TextNet& net() { return net_; }

 private:
  TextNet net_;
  data::Tokenizer tokenizer_;
};

TextNetConfig builtin_text_config();
// A built-in DiT config (kBuiltinName or kBuiltinSparseName); default_weights points at its shipped
// file (see builtin_weights_path) and text_encoder builds a BuiltinTextEncoder from builtin_text_path().
// The config table calls it once, at the first lookup: the weights path (and its environment
// overrides) is read then; register_config(builtin_config(...)) reads it anew.
DiTConfig builtin_config(const std::string& name = kBuiltinName);
// "builtin" (the request's default), longshot-builtin or longshot-builtin-sparse.
bool is_builtin_model(const std::string& name);
// The registry name of a model a request names: "builtin" becomes longshot-builtin; any other name
// or path comes back as it is. Both built-in models are in the config table (dit_config.h).
std::string resolve_builtin_name(const std::string& name);

// Shipped weights of a built-in model: <name>.safetensors in the first asset folder that has it
// (engine/common/assets.h: LONGSHOT_ASSETS, <exe>/../share/longshot, the install prefix, the
// source tree), overridden by $LONGSHOT_BUILTIN_WEIGHTS (longshot-builtin) or
// $LONGSHOT_BUILTIN_SPARSE_WEIGHTS; found nowhere: where it should be, and loading it fails with
// every folder looked in. The text encoder lives next to it in <name>-text.safetensors.
std::string builtin_weights_path(const std::string& name = kBuiltinName);
std::string builtin_text_path(const std::string& weights_path);

// Text encoder weights, parameter names as named_parameters() gives them. load throws IoError /
// ShapeError naming the file and the tensor.
void save_text_net(const TextNet& net, const std::string& path);
void load_text_net(TextNet& net, const std::string& path);

}  // namespace longshot::model

// longshot-builtin: its DiT config, its text encoder (a small pre-norm transformer over caption
// tokens) and where its shipped weights live.
//
// Sections: [text net] · [encoder] · [config] · [weights]
#include "engine/model/builtin_model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "engine/attention/attend.h"
#include "engine/common/assets.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/weights.h"

namespace longshot::model {

// [text net] ------------------------------------------------------------------------------------

namespace {

class TextLayerImpl : public torch::nn::Module {
 public:
  TextLayerImpl(int64_t dim, int64_t heads, int64_t ffn) : heads_(heads) {
    norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
    out = register_module("out", torch::nn::Linear(dim, dim));
    norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    fc1 = register_module("fc1", torch::nn::Linear(dim, ffn));
    fc2 = register_module("fc2", torch::nn::Linear(ffn, dim));
  }

  // x [B, L, D]; key_bias [B, 1, 1, L]: 0 for tokens, −inf-like for pads.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_bias) {
    const int64_t B = x.size(0), L = x.size(1), D = x.size(2), hd = D / heads_;
    auto qkv_out = qkv->forward(norm1->forward(x)).view({B, L, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
    auto q = qkv_out[0], k = qkv_out[1], v = qkv_out[2];
    // The padding bias makes attend() run the eager formula (differentiable: this net trains).
    auto att = attention::attend(q, k, v, {nullptr, key_bias}).permute({0, 2, 1, 3}).reshape({B, L, D});
    auto h = x + out->forward(att);
    return h + fc2->forward(torch::gelu(fc1->forward(norm2->forward(h))));
  }

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, out{nullptr}, fc1{nullptr}, fc2{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(TextLayer);

}  // namespace

TextNetImpl::TextNetImpl(TextNetConfig config) : config_(config) {
  if (config_.dim % config_.heads != 0) throw ParameterError("text dim", "must be a multiple of the text heads");
  if (config_.vocab < data::Tokenizer().vocab_size()) {
    throw ParameterError("text vocab", "smaller than the caption vocabulary (" + std::to_string(data::Tokenizer().vocab_size()) + ")");
  }
  token = register_module("token", torch::nn::Embedding(config_.vocab, config_.dim));
  position = register_parameter("position", torch::randn({config_.length, config_.dim}) * 0.02);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.layers; ++i) layers->push_back(TextLayer(config_.dim, config_.heads, config_.ffn));
  final_norm = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config_.dim})));
}

torch::Tensor TextNetImpl::forward(const torch::Tensor& ids) {
  if (ids.dim() != 2 || ids.size(1) != config_.length || ids.scalar_type() != torch::kInt64) {
    throw ShapeError("text ids: expected int64 [B, " + std::to_string(config_.length) + "], got " + c10::str(ids.sizes()) +
                     " " + std::string(c10::toString(ids.scalar_type())));
  }
  const auto keep = ids.ne(data::Tokenizer::kPad);                                   // [B, L]
  const auto key_bias = (~keep).to(torch::kFloat).mul(-1e9).view({ids.size(0), 1, 1, ids.size(1)});
  auto x = token->forward(ids) + position.unsqueeze(0);
  for (auto& layer : *layers) x = layer->as<TextLayerImpl>()->forward(x, key_bias.to(x.device()));
  return final_norm->forward(x) * keep.unsqueeze(-1).to(x.dtype());
}

// [encoder] -------------------------------------------------------------------------------------

BuiltinTextEncoder::BuiltinTextEncoder(TextNet net) : net_(std::move(net)) { net_->eval(); }

torch::Tensor BuiltinTextEncoder::encode(const std::string& prompt) {
  torch::NoGradGuard no_grad;
  const auto device = net_->token->weight.device();
  return net_->forward(tokenizer_.encode_tensor(prompt, net_->config().length).to(device)).to(torch::kCPU, torch::kFloat);
}

// [config] --------------------------------------------------------------------------------------

TextNetConfig builtin_text_config() { return TextNetConfig{}; }

DiTConfig builtin_config(const std::string& name) {
  if (name != kBuiltinName && name != kBuiltinSparseName) {
    throw ParameterError("model", "'" + name + "' is not a built-in model (" + kBuiltinName + ", " + kBuiltinSparseName + ")");
  }
  DiTConfig c;
  c.name = name;
  c.summary = name == kBuiltinName
                  ? "built-in physics-world model: Wan2.1 DiT, dim 192, 4 layers, pixel space (patch 2x4x4), trained by "
                    "longshot-train"
                  : "the built-in model fine-tuned sparsity-aware for radial (keep_ratio 0.18, 82% sparse): radial "
                    "stays near its dense video";
  c.dim = 192;
  c.ffn_dim = 576;
  c.freq_dim = 128;
  c.num_heads = 3;
  c.num_layers = 4;
  const TextNetConfig t = builtin_text_config();
  c.text_dim = t.dim;
  c.text_len = t.length;
  c.in_channels = 3;
  c.out_channels = 3;
  c.patch = {2, 4, 4};
  // Pixel space: one latent frame / pixel per video frame / pixel.
  c.temporal_stride = 1;
  c.spatial_stride = 1;
  c.default_steps = 20;
  c.reference_frames = kBuiltinFrames / c.patch[0];  // trained on 32 frames: 16 token frames
  c.default_shift = 3.0;
  c.default_guidance = 3.0;
  c.default_sampler = "euler";  // what it was trained and evaluated with
  c.default_weights = builtin_weights_path(name);
  // Whether the model reads absolute-position planes is the shipped weights' to say (DiTConfig).
  if (std::filesystem::exists(c.default_weights)) {
    try {
      // A copy: when the file is damaged, `c` must survive the throw whole.
      c = with_checkpoint_positions(c, c.default_weights);
    } catch (const std::exception& e) {
      spdlog::warn("model {}: {}", name, e.what());  // loading the file later names the fault
    }
  }
  c.text_encoder = [](const DiTConfig& config) -> std::unique_ptr<TextEncoder> {
    TextNet net(builtin_text_config());
    // No weights file named: random weights asked for by name (--random-weights). A named file
    // that is missing is an error, never noise.
    if (!config.default_weights.empty()) {
      const std::string path = builtin_text_path(config.default_weights);
      if (!std::filesystem::exists(path))
        throw IoError("model " + config.name + ": text encoder weights " +
                      asset_search_text(std::filesystem::path(path).filename().string()) +
                      ", or use --model tiny for random weights");
      load_text_net(net, path);
    }
    return std::make_unique<BuiltinTextEncoder>(net);
  };
  return c;
}

bool is_builtin_model(const std::string& name) {
  return name == "builtin" || name == kBuiltinName || name == kBuiltinSparseName;
}

std::string resolve_builtin_name(const std::string& name) {
  return name == "builtin" ? std::string(kBuiltinName) : name;
}

// [weights] -------------------------------------------------------------------------------------

std::string builtin_weights_path(const std::string& name) {
  const char* env = std::getenv(name == kBuiltinSparseName ? "LONGSHOT_BUILTIN_SPARSE_WEIGHTS" : "LONGSHOT_BUILTIN_WEIGHTS");
  if (env && *env) return env;
  const std::string file = name + ".safetensors";
  const std::string found = find_asset(file);
  return found.empty() ? expected_asset_path(file) : found;
}

std::string builtin_text_path(const std::string& weights_path) {
  const std::string suffix = ".safetensors";
  std::string stem = weights_path;
  if (stem.size() > suffix.size() && stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) == 0) {
    stem.resize(stem.size() - suffix.size());
  }
  return stem + "-text.safetensors";
}

void save_text_net(const TextNet& net, const std::string& path) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : net->named_parameters()) tensors[item.key()] = item.value().detach().to(torch::kCPU);
  const TextNetConfig& c = net->config();
  io::write_safetensors(path, tensors,
                        {{"longshot.text_net", "vocab=" + std::to_string(c.vocab) + " dim=" + std::to_string(c.dim) +
                                                   " heads=" + std::to_string(c.heads) + " layers=" + std::to_string(c.layers) +
                                                   " ffn=" + std::to_string(c.ffn) + " length=" + std::to_string(c.length)}});
}

void load_text_net(TextNet& net, const std::string& path) {
  io::SafetensorsFile file(path);
  torch::NoGradGuard no_grad;
  for (auto& item : net->named_parameters()) {
    if (!file.contains(item.key())) throw IoError("text encoder weights '" + path + "' have no tensor '" + item.key() + "'");
    const auto& info = file.info(item.key());
    auto& p = item.value();
    if (info.shape != p.sizes().vec()) {
      throw ShapeError("text encoder weights '" + path + "': tensor '" + item.key() + "' has shape " +
                       c10::str(c10::IntArrayRef(info.shape)) + ", expected " + c10::str(p.sizes()));
    }
    p.copy_(file.load(item.key(), p.scalar_type()));
    if (!torch::isfinite(p).all().item<bool>())
      throw IoError("text encoder weights '" + path + "': tensor '" + item.key() + "' holds NaN or infinite values");
  }
}

}  // namespace longshot::model

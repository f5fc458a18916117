#include "engine/model/weights.h"

#include <filesystem>
#include <regex>
#include <set>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/model_source.h"

namespace longshot::model {

std::string to_diffusers_key(const std::string& k) {
  struct Rule {
    std::regex from;
    const char* to;
  };
  static const std::vector<Rule> rules = {
      {std::regex(R"(^text_embedding\.0\.)"), "condition_embedder.text_embedder.linear_1."},
      {std::regex(R"(^text_embedding\.2\.)"), "condition_embedder.text_embedder.linear_2."},
      {std::regex(R"(^time_embedding\.0\.)"), "condition_embedder.time_embedder.linear_1."},
      {std::regex(R"(^time_embedding\.2\.)"), "condition_embedder.time_embedder.linear_2."},
      {std::regex(R"(^time_projection\.1\.)"), "condition_embedder.time_proj."},
      {std::regex(R"(^head\.modulation$)"), "scale_shift_table"},
      {std::regex(R"(^head\.head\.)"), "proj_out."},
      {std::regex(R"(^(blocks\.\d+)\.modulation$)"), "$1.scale_shift_table"},
      {std::regex(R"(^(blocks\.\d+)\.self_attn\.([qkv])\.)"), "$1.attn1.to_$2."},
      {std::regex(R"(^(blocks\.\d+)\.self_attn\.o\.)"), "$1.attn1.to_out.0."},
      {std::regex(R"(^(blocks\.\d+)\.self_attn\.(norm_[qk])\.)"), "$1.attn1.$2."},
      {std::regex(R"(^(blocks\.\d+)\.cross_attn\.([qkv])\.)"), "$1.attn2.to_$2."},
      {std::regex(R"(^(blocks\.\d+)\.cross_attn\.o\.)"), "$1.attn2.to_out.0."},
      {std::regex(R"(^(blocks\.\d+)\.cross_attn\.(norm_[qk])\.)"), "$1.attn2.$2."},
      {std::regex(R"(^(blocks\.\d+)\.norm3\.)"), "$1.norm2."},  // diffusers' norm2 is Wan's norm3
      {std::regex(R"(^(blocks\.\d+)\.ffn\.0\.)"), "$1.ffn.net.0.proj."},
      {std::regex(R"(^(blocks\.\d+)\.ffn\.2\.)"), "$1.ffn.net.2."},
  };
  for (const auto& r : rules)
    if (std::regex_search(k, r.from)) return std::regex_replace(k, r.from, r.to, std::regex_constants::format_first_only);
  return k;
}

KeyLayout detect_layout(const std::vector<std::string>& keys) {
  for (const auto& k : keys)
    if (k.rfind("condition_embedder.", 0) == 0 || k.find(".attn1.") != std::string::npos || k == "proj_out.weight")
      return KeyLayout::Diffusers;
  return KeyLayout::Wan;
}

void load_weights(WanDiTImpl& model, const std::string& path) {
  io::SafetensorsSet file(path);
  const auto layout = detect_layout(file.names());
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model.named_parameters()) {
    const std::string key = layout == KeyLayout::Wan ? item.key() : to_diffusers_key(item.key());
    if (!file.contains(key))
      throw IoError("checkpoint '" + path + "' has no tensor '" + key + "' (" +
                    (layout == KeyLayout::Wan ? "Wan2.1" : "diffusers") + " layout, config " + model.config().name + ")");
    const auto& info = file.info(key);
    auto& p = item.value();
    if (info.shape != p.sizes().vec())
      throw ShapeError("checkpoint '" + path + "': tensor '" + key + "' has shape " + c10::str(c10::IntArrayRef(info.shape)) +
                       ", config " + model.config().name + " needs " + c10::str(p.sizes()));
    p.copy_(file.load(key, p.scalar_type()));
    // NaN/Inf weights give an all-black video with no error: refuse them here, by name.
    if (!torch::isfinite(p).all().item<bool>())
      throw IoError("checkpoint '" + path + "': tensor '" + key + "' holds NaN or infinite values");
    used.insert(key);
  }
  size_t unused = 0;
  for (const auto& k : file.names())
    if (!used.count(k)) ++unused;
  if (unused) spdlog::warn("checkpoint '{}': {} tensors not used by config {}", path, unused, model.config().name);
}

void save_weights(const WanDiTImpl& model, const std::string& path, KeyLayout layout) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : model.named_parameters())
    tensors[layout == KeyLayout::Wan ? item.key() : to_diffusers_key(item.key())] = item.value();
  io::write_safetensors(path, tensors, {{"longshot.config", model.config().name}, {"format", "pt"}});
}

namespace {

// The patch embedding's name is the same in the Wan and the diffusers layouts.
DiTConfig positions_from(DiTConfig config, const io::SafetensorsSet& file) {
  const std::string key = "patch_embedding.weight";
  if (!file.contains(key)) return config;  // load_weights names the missing tensor
  const auto& shape = file.info(key).shape;
  const int64_t extra = shape.size() == 5 ? shape[1] - config.in_channels : -1;
  if (!position_channels_allowed(extra))
    throw ShapeError("checkpoint '" + file.path() + "': patch embedding takes " +
                     std::to_string(shape.size() == 5 ? shape[1] : 0) + " input channels; config " + config.name +
                     " needs " + std::to_string(config.in_channels) + " (+ 2 position planes)");
  config.position_channels = extra;
  return config;
}

}  // namespace

DiTConfig with_checkpoint_positions(DiTConfig config, const std::string& path) {
  return positions_from(std::move(config), io::SafetensorsSet(path));
}

DiTConfig infer_config(const std::string& path) {
  io::SafetensorsSet file(path);
  const auto it = file.metadata().find("longshot.config");
  if (it != file.metadata().end() && has_config(it->second)) return positions_from(find_config(it->second), file);
  const auto layout = detect_layout(file.names());
  auto key = [&](const std::string& wan) { return layout == KeyLayout::Wan ? wan : to_diffusers_key(wan); };
  if (!file.contains("patch_embedding.weight"))
    throw IoError("checkpoint '" + path + "' has no tensor 'patch_embedding.weight'; cannot tell its config");
  const auto& pe = file.info("patch_embedding.weight").shape;
  int64_t layers = 0;
  std::regex block(R"(^blocks\.(\d+)\.)");
  for (const auto& n : file.names()) {
    std::smatch m;
    if (std::regex_search(n, m, block)) layers = std::max<int64_t>(layers, std::stoll(m[1]) + 1);
  }
  const std::string ffn_key = key("blocks.0.ffn.0.weight");
  const int64_t ffn = file.contains(ffn_key) ? file.info(ffn_key).shape.at(0) : -1;
  for (const auto& c : registered_configs()) {
    if (pe.size() == 5 && c.dim == pe[0] && position_channels_allowed(pe[1] - c.in_channels) && c.num_layers == layers &&
        c.ffn_dim == ffn)
      return positions_from(c, file);
  }
  throw IoError("checkpoint '" + path + "' (dim " + std::to_string(pe.empty() ? 0 : pe[0]) + ", " + std::to_string(layers) +
                " layers, ffn " + std::to_string(ffn) + ") matches no registered config");
}

WanDiT load_model(const std::string& name_or_path, uint64_t seed, torch::Device device, torch::ScalarType dtype) {
  // The DiT alone: the text encoder, tokenizer and VAE a folder may lack do not matter here.
  ModelSpec spec;
  spec.model = name_or_path;
  const auto resolved = resolve_model(spec, {kComponentTextEncoder, kComponentTokenizer, kComponentVae});
  return load_dit(resolved, seed, device, dtype);
}

}  // namespace longshot::model

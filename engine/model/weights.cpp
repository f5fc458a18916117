#include "engine/model/weights.h"

#include <cmath>
#include <filesystem>
#include <regex>
#include <set>

#include "engine/common/error.h"
#include "engine/io/fp8.h"
#include "engine/io/safetensors.h"
#include "engine/model/block_store.h"
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

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// ComfyUI's scaled fp8 files carry, beside each fp8 weight, `<layer>.scale_weight` (the weight is
// bits × scale) and maybe `<layer>.scale_input` (an activation scale for fp8 GEMMs, which up-cast
// weights do not use), plus a `scaled_fp8` marker tensor: none of them is a model parameter.
bool is_quant_companion(const std::string& key) {
  return key == "scaled_fp8" || ends_with(key, ".scale_weight") || ends_with(key, ".weight_scale") ||
         ends_with(key, ".scale_input") || ends_with(key, ".input_scale");
}

// The per-tensor scale of weight `key` ("x.weight" → "x.scale_weight" or "x.weight_scale"); 1 when
// it has none. ShapeError naming the scale tensor when it is not one float value, IoError when it
// is not finite.
float weight_scale(const io::SafetensorsSet& file, const std::string& key) {
  if (!ends_with(key, "weight")) return 1.f;
  const std::string base = key.substr(0, key.size() - std::string("weight").size());
  for (const auto& name : {base + "scale_weight", base + "weight_scale"}) {
    if (!file.contains(name)) continue;
    const auto& i = file.info(name);
    const std::string where = "checkpoint '" + file.path() + "': scale tensor '" + name + "'";
    if (i.dtype != io::StDtype::F32 && i.dtype != io::StDtype::F16 && i.dtype != io::StDtype::BF16)
      throw ShapeError(where + " has dtype " + io::to_string(i.dtype) + "; a weight scale is F32, F16 or BF16");
    int64_t n = 1;
    for (auto d : i.shape) n *= d;
    if (n != 1)
      throw ShapeError(where + " has shape " + c10::str(c10::IntArrayRef(i.shape)) +
                       "; the DiT reads one scale per tensor (ComfyUI's scaled fp8), not per channel");
    const float v = file.load(name, torch::kFloat).item<float>();
    if (!std::isfinite(v) || v == 0.f) throw IoError(where + " holds " + std::to_string(v) + ", not a usable scale");
    return v;
  }
  return 1.f;
}

// The block index and in-block name of a Wan key that is a block's linear weight
// ("blocks.3.ffn.0.weight" → 3, "ffn.0.weight"): the tensors kept as fp8 bits.
bool block_linear(const std::string& wan_key, const torch::Tensor& p, int64_t& block, std::string& name) {
  static const std::regex re(R"(^blocks\.(\d+)\.(.+\.weight)$)");
  std::smatch m;
  if (p.dim() != 2 || !std::regex_match(wan_key, m, re)) return false;
  block = std::stoll(m[1]);
  name = m[2];
  return true;
}

// One parameter from the file: float weights converted to the parameter's dtype (scale applied
// where the file has one); fp8 block linears kept as bits in the model's block store, other fp8
// tensors decoded. Errors name the file and the tensor.
void load_parameter(WanDiTImpl& model, const io::SafetensorsSet& file, const std::string& wan_key,
                    const std::string& key, torch::Tensor& p) {
  const auto& info = file.info(key);
  const std::string where = "checkpoint '" + file.path() + "': tensor '" + key + "'";
  if (!io::is_floating(info.dtype))
    throw ShapeError(where + " has dtype " + io::to_string(info.dtype) +
                     "; DiT weights are F32, F16, BF16, F8_E4M3 or F8_E5M2");
  if (info.shape != p.sizes().vec())
    throw ShapeError(where + " has shape " + c10::str(c10::IntArrayRef(info.shape)) + ", config " +
                     model.config().name + " needs " + c10::str(p.sizes()));
  const float scale = weight_scale(file, key);
  torch::Tensor values;
  if (io::is_float8(info.dtype)) {
    const bool e5m2 = info.dtype == io::StDtype::F8_E5M2;
    auto bits = file.load(key);
    // NaN bit patterns (e4m3fn 0x7f/0xff; e5m2's NaN and infinities) checked on the bits, by name.
    if (!torch::isfinite(io::decode_fp8(bits, e5m2, torch::kFloat)).all().item<bool>())
      throw IoError(where + " holds NaN or infinite values");
    int64_t block = 0;
    std::string name;
    if (block_linear(wan_key, p, block, name)) {
      model.block_store().add(block, name, p, bits, e5m2 ? BlockStore::Form::E5M2 : BlockStore::Form::E4M3, scale);
      return;
    }
    values = io::decode_fp8_with(bits, io::fp8_lookup(e5m2, scale, torch::kFloat, torch::kCPU));
  } else {
    values = file.load(key, torch::kFloat);
    if (scale != 1.f) values = values * torch::tensor(scale, torch::kFloat);
  }
  // NaN/Inf weights give an all-black video with no error: refuse them here, by name.
  if (!torch::isfinite(values).all().item<bool>()) throw IoError(where + " holds NaN or infinite values");
  if (model.block_store().holds(p))
    throw ShapeError(where + ": the model already holds this block weight as fp8; load into a fresh model");
  p.copy_(values.to(p.scalar_type()));
}

}  // namespace

void load_weights(WanDiTImpl& model, const std::string& path) {
  io::SafetensorsSet file(path, io::DtypeSet::All);  // dtypes are checked per tensor used, by name
  const auto layout = detect_layout(file.names());
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model.named_parameters()) {
    const std::string key = layout == KeyLayout::Wan ? item.key() : to_diffusers_key(item.key());
    if (!file.contains(key))
      throw IoError("checkpoint '" + path + "' has no tensor '" + key + "' (" +
                    (layout == KeyLayout::Wan ? "Wan2.1" : "diffusers") + " layout, config " + model.config().name + ")");
    load_parameter(model, file, item.key(), key, item.value());
    used.insert(key);
  }
  size_t unused = 0;
  for (const auto& k : file.names())
    if (!used.count(k) && !is_quant_companion(k)) ++unused;
  if (unused) spdlog::warn("checkpoint '{}': {} tensors not used by config {}", path, unused, model.config().name);
  if (const auto* store = model.stored_blocks())
    spdlog::debug("checkpoint '{}': {} block weights kept as fp8 ({} MB)", path, store->fp8_tensors(),
                 store->stored_bytes() >> 20);
}

void save_weights(const WanDiTImpl& model, const std::string& path, KeyLayout layout) {
  if (model.has_stored_blocks())
    throw ParameterError("DiT weights", "this model keeps block weights as fp8 or offloaded (block_store.h); save '" +
                                            path + "' from a model loaded without them");
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
  return positions_from(std::move(config), io::SafetensorsSet(path, io::DtypeSet::All));
}

DiTConfig infer_config(const std::string& path) {
  io::SafetensorsSet file(path, io::DtypeSet::All);  // shapes only
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

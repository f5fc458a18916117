// Reading the Wan2.1 VAE's weight files: safetensors in diffusers' or Wan2.1's names (with an
// optional "vae." / "first_stage_model." prefix), or a torch.save .pth zip of a state dict.
// Strict: every tensor present with its shape, and no tensor the model does not use.
#include <fstream>
#include <iterator>
#include <set>

#include <spdlog/spdlog.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/vae/wan_vae_layers.h"

namespace longshot::vae {

using detail::ends_with;

namespace {

std::string shape_text(const std::vector<int64_t>& shape) { return c10::str(c10::IntArrayRef(shape)); }

// A weights file seen as name → shape, with a loader: safetensors, or a torch.save zip (.pth).
struct WeightSource {
  std::string path;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::function<torch::Tensor(const std::string&)> load;
  std::shared_ptr<void> keep;  // the open file or the unpickled dict
};

const char* kConvertHint =
    "convert it to safetensors with: python3 -c \"import torch, safetensors.torch as st; "
    "sd = torch.load('IN.pth', map_location='cpu'); sd = sd.get('state_dict', sd); "
    "st.save_file({k: v.contiguous() for k, v in sd.items()}, 'OUT.safetensors')\"";

WeightSource open_weights(const std::string& path) {
  WeightSource src;
  src.path = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("VAE weights '" + path + "': cannot open the file");
  char magic[2] = {0, 0};
  in.read(magic, 2);
  const bool zip = in.gcount() == 2 && magic[0] == 'P' && magic[1] == 'K';
  if (!zip && !ends_with(path, ".pth") && !ends_with(path, ".pt") && !ends_with(path, ".ckpt")) {
    in.close();
    auto file = std::make_shared<io::SafetensorsFile>(path);
    for (const auto& n : file->names()) src.shapes[n] = file->info(n).shape;
    src.load = [f = file.get()](const std::string& n) { return f->load(n, torch::kFloat); };
    src.keep = file;
    return src;
  }
  if (!zip)
    throw IoError("VAE weights '" + path + "': not a torch.save zip archive (an old pickle-only .pth?); " + kConvertHint);
  in.seekg(0);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto dict = std::make_shared<std::map<std::string, torch::Tensor>>();
  try {
    auto value = torch::pickle_load(bytes);
    bytes = std::vector<char>();
    // A bare state dict, or one under "state_dict" / "model".
    for (int depth = 0; depth < 2 && value.isGenericDict(); ++depth) {
      auto d = value.toGenericDict();
      bool nested = false;
      for (const char* key : {"state_dict", "model"}) {
        auto it = d.find(key);
        if (it != d.end() && it->value().isGenericDict()) {
          value = it->value();
          nested = true;
          break;
        }
      }
      if (!nested) break;
    }
    if (!value.isGenericDict()) throw IoError("VAE weights '" + path + "': the archive holds no dict of tensors; " + kConvertHint);
    for (const auto& kv : value.toGenericDict()) {
      if (!kv.key().isString() || !kv.value().isTensor()) continue;
      (*dict)[kv.key().toStringRef()] = kv.value().toTensor();
    }
  } catch (const c10::Error& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw IoError("VAE weights '" + path + "': LibTorch cannot read this .pth (" + what + "); " + kConvertHint);
  }
  for (const auto& [n, t] : *dict) {
    if (!t.is_floating_point())
      throw IoError("VAE weights '" + path + "': tensor '" + n + "' is not floating point");
    src.shapes[n] = t.sizes().vec();
  }
  src.load = [d = dict.get()](const std::string& n) { return d->at(n).to(torch::kFloat).contiguous().clone(); };
  src.keep = dict;
  return src;
}

// Which names the file uses, and under which prefix.
struct Layout {
  WeightLayout layout;
  std::string prefix;
};

Layout detect(const WeightSource& src) {
  for (const char* prefix : {"", "vae.", "first_stage_model."}) {
    const std::string p = prefix;
    if (src.shapes.count(p + "decoder.conv_in.weight")) return {WeightLayout::Diffusers, p};
    if (src.shapes.count(p + "decoder.conv1.weight")) return {WeightLayout::Original, p};
  }
  throw IoError("VAE weights '" + src.path +
                "': not a Wan VAE (neither 'decoder.conv_in.weight' (diffusers) nor 'decoder.conv1.weight' "
                "(Wan2.1 / ComfyUI) found)");
}

std::string display(WeightLayout l) { return l == WeightLayout::Diffusers ? "diffusers" : "Wan2.1"; }

}  // namespace

WeightLayout WanVAE::detect_layout(const std::string& path) { return detect(open_weights(path)).layout; }

WanVAE WanVAE::load(const std::string& path, WanVAEConfig config, bool with_encoder) {
  const auto src = open_weights(path);
  const auto lay = detect(src);
  const bool diff = lay.layout == WeightLayout::Diffusers;
  auto shape_of = [&](const std::string& diffusers, const std::string& original) -> const std::vector<int64_t>& {
    const std::string n = lay.prefix + (diff ? diffusers : original);
    auto it = src.shapes.find(n);
    if (it == src.shapes.end()) throw IoError("VAE weights '" + path + "': missing tensor '" + n + "'");
    return it->second;
  };
  // The sizes the file fixes; the rest of the config must fit, which the shape checks enforce.
  const auto& conv_out = shape_of("decoder.conv_out.weight", "decoder.head.2.weight");
  const auto& post = shape_of("post_quant_conv.weight", "conv2.weight");
  if (conv_out.size() != 5 || post.size() != 5)
    throw ShapeError("VAE weights '" + path + "': decoder output / post_quant_conv weights are not 5-d convolutions");
  config.base_dim = conv_out[1];
  if (post[0] != config.z_dim) {
    if (post[0] != 16)
      spdlog::warn("VAE weights '{}': z_dim {} (Wan2.1 uses 16); latents normalisation set to identity", path, post[0]);
    config.z_dim = post[0];
    if (int64_t(config.latents_mean.size()) != config.z_dim) {
      config.latents_mean.assign(size_t(config.z_dim), 0.f);
      config.latents_std.assign(size_t(config.z_dim), 1.f);
    }
  }

  WanVAE vae(std::make_unique<Impl>(config, with_encoder));
  auto& impl = *vae.impl_;
  std::set<std::string> used;
  std::vector<std::string> missing;
  for (auto& p : impl.params) {
    const std::string n = lay.prefix + (diff ? p.name : p.original);
    used.insert(n);
    auto it = src.shapes.find(n);
    if (it == src.shapes.end()) {
      missing.push_back(n);
      continue;
    }
    if (it->second != p.shape)
      throw ShapeError("VAE weights '" + path + "': tensor '" + n + "' has shape " + shape_text(it->second) +
                       ", expected " + shape_text(p.shape) + " (base_dim " + std::to_string(impl.config.base_dim) +
                       ", z_dim " + std::to_string(impl.config.z_dim) + ")");
  }
  if (!missing.empty())
    throw IoError("VAE weights '" + path + "' (" + display(lay.layout) + " names): missing tensor '" + missing[0] + "'" +
                  (missing.size() > 1 ? " and " + std::to_string(missing.size() - 1) + " more" : std::string()));
  std::vector<std::string> extra;
  for (const auto& [n, shape] : src.shapes) {
    if (used.count(n)) continue;
    const bool encoder_part = n.compare(0, lay.prefix.size() + 8, lay.prefix + "encoder.") == 0 ||
                              n == lay.prefix + (diff ? "quant_conv.weight" : "conv1.weight") ||
                              n == lay.prefix + (diff ? "quant_conv.bias" : "conv1.bias");
    if (!with_encoder && encoder_part) continue;
    extra.push_back(n);
  }
  if (!extra.empty())
    throw IoError("VAE weights '" + path + "' (" + display(lay.layout) + " names): unexpected tensor '" + extra[0] + "'" +
                  (extra.size() > 1 ? " and " + std::to_string(extra.size() - 1) + " more" : std::string()) +
                  "; is this a Wan2.1 VAE (not Wan2.2's z48 one)?");
  for (auto& p : impl.params) *p.tensor = src.load(lay.prefix + (diff ? p.name : p.original));
  return vae;
}

}  // namespace longshot::vae

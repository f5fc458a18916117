// Tiny random Wan2.1 models written to disk in each layout model::resolve_model reads: a DiT of
// Wan's latent shape (16 channels, dim 128), a tiny umT5 encoder, a SentencePiece tokenizer trained
// by spm_train, and a tiny Wan VAE (base 8). Shared by the pipeline and CLI tests; seconds on a CPU.
#pragma once
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <torch/torch.h>

#include "engine/io/safetensors.h"
#include "engine/model/dit.h"
#include "engine/model/weights.h"
#include "engine/vae/wan_vae.h"
#include "tests/text/text_test_util.h"

namespace longshot::testing {

namespace fs = std::filesystem;

enum class TinyLayout { Diffusers, WanRelease, Split };

// The DiT every tiny folder holds: Wan latents (16 in/out, patch 1x2x2), text_dim = the tiny
// umT5's d_model. Heads: 2 (a config.json states them); without one, resolve_model assumes Wan's
// head dim 128, i.e. 1 head.
inline model::DiTConfig tiny_wan_config(int64_t heads = 2) {
  model::DiTConfig c;
  c.name = "tiny-wan";
  c.dim = 128, c.ffn_dim = 64, c.freq_dim = 32, c.num_heads = heads, c.num_layers = 2;
  c.text_dim = text::testing::tiny_config().d_model;
  c.text_len = 32;
  c.in_channels = 16, c.out_channels = 16;
  c.default_steps = 2, c.default_shift = 3.0, c.default_guidance = 5.0;
  return c;
}

inline void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

// The model's parameters as safetensors in `layout`, split in two shards with an index when
// `sharded` (the Hugging Face convention: <stem>-0000N-of-00002.safetensors + <stem>.safetensors.index.json).
inline void write_dit(const model::WanDiTImpl& dit, const std::string& dir, const std::string& stem,
                      model::KeyLayout layout, bool sharded) {
  fs::create_directories(dir);
  std::map<std::string, torch::Tensor> all;
  for (const auto& item : dit.named_parameters())
    all[layout == model::KeyLayout::Wan ? item.key() : model::to_diffusers_key(item.key())] = item.value().detach();
  if (!sharded) {
    io::write_safetensors(dir + "/" + stem + ".safetensors", all);
    return;
  }
  std::map<std::string, torch::Tensor> shard[2];
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  int i = 0;
  for (const auto& [name, t] : all) {
    const int s = (i++ % 2);
    shard[s][name] = t;
    index += std::string(i > 1 ? ", " : "") + "\"" + name + "\": \"" + stem + "-0000" + std::to_string(s + 1) +
             "-of-00002.safetensors\"";
  }
  index += "}}";
  for (int s = 0; s < 2; ++s)
    io::write_safetensors(dir + "/" + stem + "-0000" + std::to_string(s + 1) + "-of-00002.safetensors", shard[s]);
  write_text(dir + "/" + stem + ".safetensors.index.json", index);
}

inline std::string dit_config_json(const model::DiTConfig& c, bool diffusers) {
  if (diffusers)
    return "{\"_class_name\": \"WanTransformer3DModel\", \"num_attention_heads\": " + std::to_string(c.num_heads) +
           ", \"attention_head_dim\": " + std::to_string(c.head_dim()) + ", \"in_channels\": 16, \"out_channels\": 16" +
           ", \"text_dim\": " + std::to_string(c.text_dim) + ", \"freq_dim\": " + std::to_string(c.freq_dim) +
           ", \"ffn_dim\": " + std::to_string(c.ffn_dim) + ", \"num_layers\": " + std::to_string(c.num_layers) +
           ", \"patch_size\": [1, 2, 2], \"cross_attn_norm\": true, \"eps\": 1e-06}";
  return "{\"_class_name\": \"WanModel\", \"dim\": " + std::to_string(c.dim) + ", \"num_heads\": " +
         std::to_string(c.num_heads) + ", \"in_dim\": 16, \"out_dim\": 16, \"text_len\": " + std::to_string(c.text_len) +
         ", \"ffn_dim\": " + std::to_string(c.ffn_dim) + ", \"freq_dim\": " + std::to_string(c.freq_dim) +
         ", \"num_layers\": " + std::to_string(c.num_layers) + ", \"model_type\": \"t2v\", \"eps\": 1e-06}";
}

// umT5 weights: transformers names (+ config.json with d_model) or Wan's names.
inline void write_umt5(const std::string& path, bool wan_names, int64_t d_model = 0) {
  auto c = text::testing::tiny_config();
  if (d_model > 0) c.d_model = d_model;
  auto w = text::testing::tiny_weights(c);
  if (wan_names) {
    std::map<std::string, torch::Tensor> renamed;
    for (auto& [k, v] : w) renamed[text::testing::wan_name(k)] = v;
    w = std::move(renamed);
  }
  fs::create_directories(fs::path(path).parent_path());
  io::write_safetensors(path, w);
}

// A tiny Wan VAE (base 8, z 16, strides 4 and 8): diffusers names, or the original code's.
inline void write_vae(const std::string& path, bool original_names, uint64_t seed = 5) {
  vae::WanVAEConfig c;
  c.base_dim = 8;
  vae::WanVAE v(c, seed);
  auto sd = v.state_dict();
  std::map<std::string, torch::Tensor> out;
  const auto names = v.original_names();
  for (auto& [k, t] : sd) out[original_names ? names.at(k) : k] = t.detach().contiguous();
  fs::create_directories(fs::path(path).parent_path());
  io::write_safetensors(path, out);
}

// A SentencePiece model (spm_train), trained once per process and copied where needed; "" when
// spm_train is not installed.
inline std::string tiny_spiece() {
  static std::string path = [] {
    if (!text::testing::have_spm_tools()) return std::string();
    return text::testing::train_spm(text::testing::scratch("tiny_model_spm"));
  }();
  return path;
}

struct TinyModelFiles {
  std::string root;  // the folder (Diffusers, WanRelease) or the folder holding the split files
  std::string dit, text_encoder, tokenizer, vae;
};

// Writes a whole tiny model under `root` in `layout`; the DiT's random weights come from `seed`.
inline TinyModelFiles write_tiny_model(const std::string& root, TinyLayout layout, uint64_t seed = 11) {
  TinyModelFiles f;
  f.root = root;
  fs::create_directories(root);
  const auto spm = tiny_spiece();
  if (layout == TinyLayout::Diffusers) {
    model::WanDiT dit(tiny_wan_config(2));
    dit->init_random(seed);
    write_dit(*dit, root + "/transformer", "diffusion_pytorch_model", model::KeyLayout::Diffusers, /*sharded=*/true);
    write_text(root + "/transformer/config.json", dit_config_json(dit->config(), true));
    write_umt5(root + "/text_encoder/model.safetensors", false);
    write_text(root + "/text_encoder/config.json",
               "{\"d_model\": " + std::to_string(text::testing::tiny_config().d_model) + "}");
    if (!spm.empty()) {
      fs::create_directories(root + "/tokenizer");
      fs::copy_file(spm, root + "/tokenizer/spiece.model");
    }
    write_vae(root + "/vae/diffusion_pytorch_model.safetensors", false);
    write_text(root + "/vae/config.json", "{\"z_dim\": 16, \"base_dim\": 8, \"dim_mult\": [1, 2, 4, 4], "
                                          "\"temperal_downsample\": [false, true, true]}");
    write_text(root + "/model_index.json", "{\"_class_name\": \"WanPipeline\"}");
    f.dit = root + "/transformer/diffusion_pytorch_model.safetensors.index.json";
    f.text_encoder = root + "/text_encoder/model.safetensors";
    f.tokenizer = spm.empty() ? "" : root + "/tokenizer/spiece.model";
    f.vae = root + "/vae/diffusion_pytorch_model.safetensors";
  } else if (layout == TinyLayout::WanRelease) {
    model::WanDiT dit(tiny_wan_config(2));
    dit->init_random(seed);
    write_dit(*dit, root, "diffusion_pytorch_model", model::KeyLayout::Wan, /*sharded=*/false);
    write_text(root + "/config.json", dit_config_json(dit->config(), false));
    write_umt5(root + "/models_t5_umt5-xxl-enc-bf16.safetensors", true);
    if (!spm.empty()) {
      fs::create_directories(root + "/google/umt5-xxl");
      fs::copy_file(spm, root + "/google/umt5-xxl/spiece.model");
    }
    write_vae(root + "/Wan2.1_VAE.safetensors", true);
    f.dit = root + "/diffusion_pytorch_model.safetensors";
    f.text_encoder = root + "/models_t5_umt5-xxl-enc-bf16.safetensors";
    f.tokenizer = spm.empty() ? "" : root + "/google/umt5-xxl/spiece.model";
    f.vae = root + "/Wan2.1_VAE.safetensors";
  } else {
    // ComfyUI's split files: one DiT file (Wan names, no config.json), encoder, VAE, tokenizer.
    model::WanDiT dit(tiny_wan_config(1));
    dit->init_random(seed);
    write_dit(*dit, root, "wan2.1_t2v_tiny", model::KeyLayout::Wan, false);
    write_umt5(root + "/umt5_tiny.safetensors", false);
    write_vae(root + "/wan_2.1_vae.safetensors", true);
    f.dit = root + "/wan2.1_t2v_tiny.safetensors";
    f.text_encoder = root + "/umt5_tiny.safetensors";
    f.vae = root + "/wan_2.1_vae.safetensors";
    if (!spm.empty()) {
      fs::copy_file(spm, root + "/spiece.model");
      f.tokenizer = root + "/spiece.model";
    }
  }
  return f;
}

}  // namespace longshot::testing

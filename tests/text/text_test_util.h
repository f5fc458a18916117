// Helpers of the text tests: a scratch folder, tiny random umT5 weights in transformers names and
// their Wan (.pth) renaming, and a SentencePiece model trained by Debian's spm_train.
#pragma once
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <torch/torch.h>

#include "engine/text/umt5.h"
#include "engine/common/remove_tree.h"

namespace longshot::text::testing {

inline std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("longshot_text_" + name + "_" + std::to_string(::getpid()));
  longshot::remove_tree(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline UMT5Config tiny_config() {
  UMT5Config c;
  c.vocab = 256, c.d_model = 16, c.d_kv = 4, c.num_heads = 4, c.d_ff = 24, c.num_layers = 2;
  return c;
}

// Random weights in transformers' names, rounded to bf16 so every dtype holds them exactly.
// Scales like T5's init so activations stay O(1) through the layers.
inline std::map<std::string, torch::Tensor> tiny_weights(const UMT5Config& c, uint64_t seed = 3) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto r = [&](std::vector<int64_t> shape, double std) {
    return (torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat)) * std).to(torch::kBFloat16).to(torch::kFloat);
  };
  std::map<std::string, torch::Tensor> w;
  const int64_t D = c.d_model, I = c.inner_dim(), F = c.d_ff;
  w["shared.weight"] = r({c.vocab, D}, 1.0);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string b = "encoder.block." + std::to_string(l) + ".layer.";
    w[b + "0.SelfAttention.q.weight"] = r({I, D}, std::pow(double(D * c.d_kv), -0.5));
    w[b + "0.SelfAttention.k.weight"] = r({I, D}, std::pow(double(D), -0.5));
    w[b + "0.SelfAttention.v.weight"] = r({I, D}, std::pow(double(D), -0.5));
    w[b + "0.SelfAttention.o.weight"] = r({D, I}, std::pow(double(I), -0.5));
    w[b + "0.SelfAttention.relative_attention_bias.weight"] = r({c.num_buckets, c.num_heads}, 0.5);
    w[b + "0.layer_norm.weight"] = 1 + r({D}, 0.1);
    w[b + "1.DenseReluDense.wi_0.weight"] = r({F, D}, std::pow(double(D), -0.5));
    w[b + "1.DenseReluDense.wi_1.weight"] = r({F, D}, std::pow(double(D), -0.5));
    w[b + "1.DenseReluDense.wo.weight"] = r({D, F}, std::pow(double(F), -0.5));
    w[b + "1.layer_norm.weight"] = 1 + r({D}, 0.1);
  }
  w["encoder.final_layer_norm.weight"] = 1 + r({D}, 0.1);
  for (auto& kv : w) kv.second = kv.second.to(torch::kBFloat16).to(torch::kFloat);  // 1 + x too
  return w;
}

// transformers names → wan/modules/t5.py names (as in models_t5_umt5-xxl-enc-bf16.pth).
inline std::string wan_name(const std::string& n) {
  if (n == "shared.weight") return "token_embedding.weight";
  if (n == "encoder.final_layer_norm.weight") return "norm.weight";
  const std::string p = "encoder.block.";
  const auto dot = n.find('.', p.size());
  const std::string b = "blocks." + n.substr(p.size(), dot - p.size()) + ".";
  const std::string rest = n.substr(dot + 1);
  static const std::map<std::string, std::string> m = {
      {"layer.0.SelfAttention.q.weight", "attn.q.weight"},
      {"layer.0.SelfAttention.k.weight", "attn.k.weight"},
      {"layer.0.SelfAttention.v.weight", "attn.v.weight"},
      {"layer.0.SelfAttention.o.weight", "attn.o.weight"},
      {"layer.0.SelfAttention.relative_attention_bias.weight", "pos_embedding.embedding.weight"},
      {"layer.0.layer_norm.weight", "norm1.weight"},
      {"layer.1.DenseReluDense.wi_0.weight", "ffn.gate.0.weight"},
      {"layer.1.DenseReluDense.wi_1.weight", "ffn.fc1.weight"},
      {"layer.1.DenseReluDense.wo.weight", "ffn.fc2.weight"},
      {"layer.1.layer_norm.weight", "norm2.weight"},
  };
  return b + m.at(rest);
}

inline double rel_l2(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = a.to(torch::kDouble), y = b.to(torch::kDouble);
  return ((x - y).norm() / y.norm().clamp_min(1e-30)).item<double>();
}

inline bool have_spm_tools() { return std::system("command -v spm_train >/dev/null 2>&1 && command -v spm_encode >/dev/null 2>&1") == 0; }

// Trains a small unigram model like umT5's (pad 0, EOS 1, UNK 2, no BOS) on a mixed-script corpus.
// Returns the model path; "" when spm_train failed (its log is beside the model).
inline std::string train_spm(const std::string& dir, int vocab = 200) {
  const auto corpus = dir + "/corpus.txt";
  {
    std::ofstream out(corpus);
    const char* lines[] = {
        "a large green square falls and bounces on a black background",
        "the small red ball rolls slowly to the left across the frame",
        "a cat walks along the beach at sunset, waves crashing behind it",
        "Un chat noir traverse la rue sous la pluie, éclairé par les réverbères",
        "Ein großer Hund läuft über die Wiese; die Sonne scheint.",
        "Быстрая коричневая лиса прыгает через ленивую собаку",
        "東京の夜景、ネオンが雨に反射している",
        "cinematic shot, 4k, highly detailed, soft lighting, shallow depth of field",
        "two astronauts play chess on the moon while earth rises",
        "\"quoted speech\" and 'single quotes' & ampersands <tags> 100% (parentheses)",
    };
    for (int rep = 0; rep < 40; ++rep)
      for (const char* l : lines) out << l << " " << rep << "\n";
  }
  const std::string prefix = dir + "/spm";
  const std::string cmd = "spm_train --input=" + corpus + " --model_prefix=" + prefix + " --vocab_size=" + std::to_string(vocab) +
                          " --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1 --character_coverage=1.0" +
                          " --hard_vocab_limit=false --num_threads=1 > " + dir + "/spm_train.log 2>&1";
  if (std::system(cmd.c_str()) != 0) return "";
  return prefix + ".model";
}

}  // namespace longshot::text::testing

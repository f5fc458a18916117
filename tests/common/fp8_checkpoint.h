// A DiT as a ComfyUI-style scaled fp8 checkpoint: every block linear weight as F8_E4M3 bits (F8_E5M2
// in odd blocks when asked) with a per-tensor `scale_weight`, the rest as float, and the
// `scaled_fp8` marker. The model passed in is rewritten to hold exactly the dequantised values
// (decode(bits) × scale in fp32), so it is the reference an fp8 load must reproduce.
// Shared by the model and pipeline tests.
#pragma once
#include <cstdint>
#include <map>
#include <regex>
#include <string>

#include <torch/torch.h>

#include "engine/io/fp8.h"
#include "engine/io/safetensors.h"
#include "engine/model/dit.h"

namespace longshot::testing {

struct Fp8Checkpoint {
  std::map<std::string, torch::Tensor> tensors;
  std::map<std::string, io::StDtype> fp8;
  int64_t fp8_weights = 0;  // elements stored as fp8

  void write(const std::string& path) const { io::write_safetensors_raw(path, tensors, fp8); }
};

inline Fp8Checkpoint fp8_checkpoint(model::WanDiTImpl& model, uint64_t seed, bool e5m2_in_odd_blocks = false) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  static const std::regex block_linear(R"(^blocks\.(\d+)\..+\.weight$)");
  Fp8Checkpoint out;
  for (auto& item : model.named_parameters()) {
    const auto& key = item.key();
    auto& p = item.value();
    std::smatch m;
    if (p.dim() != 2 || !std::regex_match(key, m, block_linear)) {
      out.tensors[key] = p.detach().clone();
      continue;
    }
    const int64_t block = std::stoll(m[1]);
    const bool e5m2 = e5m2_in_odd_blocks && block % 2 == 1;
    // Magnitude bytes whose exponent field stays small (values below 2), either sign: finite,
    // moderate weights; every one is exactly an fp8 value by construction.
    auto magnitude = torch::randint(0, e5m2 ? 0x3c : 0x40, p.sizes(), gen, torch::kLong);
    auto sign = torch::randint(0, 2, p.sizes(), gen, torch::kLong) * 128;
    auto bits = (magnitude + sign).to(torch::kByte);
    const float scale = 0.1f / float(1 + block);  // not a power of two: the product rounds in fp32
    p.copy_(io::decode_fp8(bits, e5m2, torch::kFloat) * torch::tensor(scale, torch::kFloat));
    out.tensors[key] = bits;
    out.fp8[key] = e5m2 ? io::StDtype::F8_E5M2 : io::StDtype::F8_E4M3;
    out.tensors[key.substr(0, key.size() - 6) + "scale_weight"] = torch::tensor(scale, torch::kFloat);  // 0-d, as ComfyUI
    out.fp8_weights += p.numel();
  }
  out.tensors["scaled_fp8"] = torch::empty({0}, torch::kByte);
  out.fp8["scaled_fp8"] = io::StDtype::F8_E4M3;
  return out;
}

}  // namespace longshot::testing

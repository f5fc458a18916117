// Reads the float32 tensors of a golden fixture's io.safetensors (tests/fixtures/*/README.md).
// Test-only: such files also hold int64 token ids, which the engine's weights reader refuses by
// design, so fixtures are read here directly.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace longshot::testing {

class FixtureTensors {
 public:
  explicit FixtureTensors(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
    if (bytes_.size() < 8) throw std::runtime_error(path + ": too short");
    uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    if (n > bytes_.size() - 8) throw std::runtime_error(path + ": header past the end");
    header_ = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + long(n));
    data_ = 8 + size_t(n);
  }
  bool has(const std::string& name) const { return header_.contains(name); }
  // A float32 tensor on the CPU.
  torch::Tensor f32(const std::string& name) const {
    const auto& h = header_.at(name);
    if (h.at("dtype") != "F32") throw std::runtime_error(path_ + ": " + name + " is not F32");
    const auto offsets = h.at("data_offsets").get<std::vector<size_t>>();
    auto t = torch::empty(h.at("shape").get<std::vector<int64_t>>(), torch::kFloat);
    if (size_t(t.nbytes()) != offsets[1] - offsets[0] || data_ + offsets[1] > bytes_.size())
      throw std::runtime_error(path_ + ": " + name + ": size mismatch");
    std::memcpy(t.data_ptr(), bytes_.data() + data_ + offsets[0], t.nbytes());
    return t;
  }

 private:
  std::string path_;
  std::vector<char> bytes_;
  nlohmann::json header_;
  size_t data_ = 0;
};

inline double rel_l2(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kCPU, torch::kDouble) - b.to(torch::kCPU, torch::kDouble)).norm() /
          b.to(torch::kCPU, torch::kDouble).norm()).item<double>();
}

// PSNR in dB of two [0, 1] tensors.
inline double psnr01(const torch::Tensor& a, const torch::Tensor& b) {
  const double mse = (a.to(torch::kCPU, torch::kDouble) - b.to(torch::kCPU, torch::kDouble)).pow(2).mean().item<double>();
  return mse <= 0 ? 1e9 : 10.0 * std::log10(1.0 / mse);
}

}  // namespace longshot::testing

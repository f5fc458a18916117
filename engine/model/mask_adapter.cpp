// Mask-aware adapter: fresh factors, the low-rank delta, and its safetensors file.
#include "engine/model/mask_adapter.h"

#include <filesystem>
#include <sstream>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"

namespace longshot::model {

namespace {

std::string tensor_name(int64_t layer, int proj, const char* factor) {
  return "blocks." + std::to_string(layer) + ".self_attn." + MaskAdapter::kProjNames[proj] + "." + factor;
}

const std::string kMeta = "longshot.adapter.";

// Round-trips a double (std::to_string keeps six decimals).
std::string exact(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

}  // namespace

MaskAdapter MaskAdapter::fresh(const DiTConfig& config, int64_t rank, uint64_t seed) {
  if (rank < 1 || rank > config.dim) {
    throw ParameterError("rank", "must be in [1, " + std::to_string(config.dim) + "], got " + std::to_string(rank));
  }
  MaskAdapter ad;
  ad.config = config.name;
  ad.rank = rank;
  auto gen = at::detail::createCPUGenerator(seed);
  const double std = 1.0 / std::sqrt(static_cast<double>(config.dim));
  for (int64_t l = 0; l < config.num_layers; ++l) {
    std::array<torch::Tensor, 4> a, b;
    for (int p = 0; p < 4; ++p) {
      a[p] = at::normal(0.0, std, {rank, config.dim}, gen);
      b[p] = torch::zeros({config.dim, rank});
    }
    ad.a.push_back(a);
    ad.b.push_back(b);
  }
  return ad;
}

torch::Tensor MaskAdapter::delta(int64_t layer, Proj proj, const torch::Tensor& x) const {
  const auto& A = a[static_cast<size_t>(layer)][proj];
  const auto& B = b[static_cast<size_t>(layer)][proj];
  const auto xa = torch::matmul(x.to(A.scalar_type()), A.t());
  return (torch::matmul(xa, B.t()) * scale).to(x.scalar_type());
}

void MaskAdapter::to(torch::Device device, torch::ScalarType dtype) {
  for (auto* set : {&a, &b}) {
    for (auto& layer : *set) {
      for (auto& t : layer) t = t.detach().to(device, dtype);
    }
  }
}

std::vector<torch::Tensor> MaskAdapter::tensors() const {
  std::vector<torch::Tensor> out;
  for (size_t l = 0; l < a.size(); ++l) {
    for (int p = 0; p < 4; ++p) {
      out.push_back(a[l][p]);
      out.push_back(b[l][p]);
    }
  }
  return out;
}

std::map<std::string, torch::Tensor> MaskAdapter::named(torch::ScalarType dtype) const {
  std::map<std::string, torch::Tensor> out;
  for (size_t l = 0; l < a.size(); ++l) {
    for (int p = 0; p < 4; ++p) {
      out[tensor_name(static_cast<int64_t>(l), p, "lora_a")] = a[l][p].detach().to(torch::kCPU, dtype);
      out[tensor_name(static_cast<int64_t>(l), p, "lora_b")] = b[l][p].detach().to(torch::kCPU, dtype);
    }
  }
  return out;
}

void save_adapter(const MaskAdapter& adapter, const std::string& path, torch::ScalarType dtype) {
  io::write_safetensors(path, adapter.named(dtype),
                        {{kMeta + "config", adapter.config},
                         {kMeta + "mode", adapter.mode},
                         {kMeta + "params", adapter.params},
                         {kMeta + "block_size", std::to_string(adapter.block_size)},
                         {kMeta + "rank", std::to_string(adapter.rank)},
                         {kMeta + "scale", exact(adapter.scale)}});
}

MaskAdapter load_adapter(const std::string& path, const DiTConfig& config) {
  io::SafetensorsFile file(path);  // IoError for a missing or malformed file
  const auto& meta = file.metadata();
  auto field = [&](const std::string& key) {
    const auto it = meta.find(kMeta + key);
    if (it == meta.end()) throw IoError("adapter '" + path + "': no '" + kMeta + key + "' metadata (not a mask adapter?)");
    return it->second;
  };
  MaskAdapter ad;
  ad.config = field("config");
  ad.mode = field("mode");
  ad.params = field("params");
  try {
    ad.block_size = std::stoll(field("block_size"));
    ad.rank = std::stoll(field("rank"));
    ad.scale = std::stod(field("scale"));
  } catch (const std::logic_error&) {
    throw IoError("adapter '" + path + "': block_size, rank or scale metadata is not a number");
  }
  if (ad.config != config.name) {
    throw ParameterError("adapter", "'" + path + "' was trained for model '" + ad.config + "', not '" + config.name + "'");
  }
  if (ad.mode.empty()) throw IoError("adapter '" + path + "': empty mode");
  if (ad.rank < 1 || ad.block_size < 1) throw IoError("adapter '" + path + "': rank and block_size must be >= 1");
  for (int64_t l = 0; l < config.num_layers; ++l) {
    std::array<torch::Tensor, 4> a, b;
    for (int p = 0; p < 4; ++p) {
      for (const char* factor : {"lora_a", "lora_b"}) {
        const std::string name = tensor_name(l, p, factor);
        const auto& info = file.info(name);  // IoError naming the tensor when absent
        const std::vector<int64_t> want = factor[5] == 'a' ? std::vector<int64_t>{ad.rank, config.dim}
                                                           : std::vector<int64_t>{config.dim, ad.rank};
        if (info.shape != want) {
          throw ShapeError("adapter '" + path + "': tensor '" + name + "' has shape " +
                           c10::str(c10::IntArrayRef(info.shape)) + ", the model needs " + c10::str(c10::IntArrayRef(want)));
        }
        (factor[5] == 'a' ? a : b)[p] = file.load(name, torch::kFloat);
      }
    }
    ad.a.push_back(a);
    ad.b.push_back(b);
  }
  return ad;
}

std::string shipped_adapter_path(const DiTConfig& config, const std::string& mode) {
  if (config.default_weights.empty() || mode.empty() || mode == "dense") return {};
  std::string base = config.default_weights;
  const std::string ext = ".safetensors";
  if (base.size() > ext.size() && base.compare(base.size() - ext.size(), ext.size(), ext) == 0) {
    base.resize(base.size() - ext.size());
  }
  const std::string path = base + "-" + mode + "-adapter.safetensors";
  return std::filesystem::exists(path) ? path : std::string();
}

}  // namespace longshot::model

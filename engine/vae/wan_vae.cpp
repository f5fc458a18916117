// The Wan2.1 VAE. Sections:
//   [1] config          strides, frame counts, validation
//   [2] weights         the layer tree, each weight registered under its diffusers and original name
//   [3] ops             causal conv with its frame cache, RMS norm, attention, resampling
//   [4] encoder/decoder one chunk of frames through the network, caches carried in a Stream
//   [5] public API      decode (streamed, tiled), encode, load, to
//
// The network follows diffusers' AutoencoderKLWan and Wan's wan/modules/vae.py (read for the
// facts; this is our own code). Streaming invariant: every 3-tap causal conv sees the whole
// sequence of its inputs, left-padded with two zero frames, however the sequence is cut into
// chunks; so one latent frame at a time (Wan's own decode) and the whole clip at once agree.
#include "engine/vae/wan_vae.h"

#include <cmath>
#include <fstream>
#include <iterator>
#include <set>

#include <spdlog/spdlog.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"

namespace longshot::vae {

// ---------------------------------------------------------------------------------------------
// [1] config

int64_t WanVAEConfig::temporal_stride() const {
  int64_t s = 1;
  for (bool t : temporal_downsample) s *= t ? 2 : 1;
  return s;
}

int64_t WanVAEConfig::spatial_stride() const { return int64_t(1) << (dim_mult.size() - 1); }

int64_t WanVAEConfig::frames_for(int64_t latent_frames) const {
  return latent_frames <= 0 ? 0 : 1 + (latent_frames - 1) * temporal_stride();
}

void WanVAEConfig::validate() const {
  if (base_dim <= 0 || base_dim % 2) throw ParameterError("vae.base_dim", "must be a positive even number");
  if (z_dim <= 0) throw ParameterError("vae.z_dim", "must be positive");
  if (dim_mult.size() < 2) throw ParameterError("vae.dim_mult", "needs at least two levels");
  for (int64_t m : dim_mult)
    if (m <= 0) throw ParameterError("vae.dim_mult", "multipliers must be positive");
  if (num_res_blocks <= 0) throw ParameterError("vae.num_res_blocks", "must be positive");
  if (temporal_downsample.size() != dim_mult.size() - 1)
    throw ParameterError("vae.temporal_downsample", "needs one entry per level but the last (" +
                                                        std::to_string(dim_mult.size() - 1) + ")");
  if (int64_t(latents_mean.size()) != z_dim || int64_t(latents_std.size()) != z_dim)
    throw ParameterError("vae.latents_mean", "latents_mean and latents_std need z_dim (" + std::to_string(z_dim) +
                                                 ") entries each");
  for (float s : latents_std)
    if (!(s > 0)) throw ParameterError("vae.latents_std", "every std must be positive");
}

namespace {

// ---------------------------------------------------------------------------------------------
// [2] weights

struct Conv {
  torch::Tensor w, b;
  bool defined() const { return w.defined(); }
};

struct ResBlock {
  torch::Tensor gamma1, gamma2;
  Conv conv1, conv2, shortcut;  // shortcut only when the channel count changes
};

struct Attention {
  torch::Tensor gamma;
  Conv qkv, proj;
};

struct Mid {
  ResBlock res0, res1;
  Attention attn;
};

enum class ResampleMode { Up2d, Up3d, Down2d, Down3d };

struct Resample {
  ResampleMode mode = ResampleMode::Up2d;
  Conv conv;       // 3×3 per frame (stride 2 when going down)
  Conv time_conv;  // 3d modes: 3-tap temporal conv (doubles channels up, stride 2 down)
};

struct EncoderItem {  // the encoder's flat list: residual blocks with a resample after each level
  bool is_resample = false;
  ResBlock res;
  Resample resample;
};

struct UpBlock {
  std::vector<ResBlock> res;
  bool has_resample = false;
  Resample resample;
};

struct Encoder {
  Conv conv_in, conv_out, quant;
  std::vector<EncoderItem> items;
  Mid mid;
  torch::Tensor gamma_out;
};

struct Decoder {
  Conv post_quant, conv_in, conv_out;
  Mid mid;
  std::vector<UpBlock> ups;
  torch::Tensor gamma_out;
};

struct Param {
  std::string name;      // diffusers
  std::string original;  // Wan2.1 / ComfyUI
  torch::Tensor* tensor;
  std::vector<int64_t> shape;
  bool encoder;
};

// Builds the layer tree for a config and records every weight: its two names and its shape.
// Containers are sized before any pointer into them is taken.
class Builder {
 public:
  explicit Builder(std::vector<Param>& params) : params_(params) {}
  bool encoder = false;

  void tensor(torch::Tensor& t, std::vector<int64_t> shape, const std::string& name, const std::string& original) {
    t = torch::empty(shape);
    params_.push_back({name, original, &t, std::move(shape), encoder});
  }
  void conv(Conv& c, std::vector<int64_t> shape, const std::string& name, const std::string& original) {
    tensor(c.w, shape, name + ".weight", original + ".weight");
    tensor(c.b, {shape[0]}, name + ".bias", original + ".bias");
  }
  void conv3(Conv& c, int64_t out, int64_t in, int64_t k, const std::string& name, const std::string& original) {
    conv(c, {out, in, k, k, k}, name, original);
  }
  void res(ResBlock& r, int64_t in, int64_t out, const std::string& name, const std::string& original) {
    tensor(r.gamma1, {in, 1, 1, 1}, name + ".norm1.gamma", original + ".residual.0.gamma");
    conv3(r.conv1, out, in, 3, name + ".conv1", original + ".residual.2");
    tensor(r.gamma2, {out, 1, 1, 1}, name + ".norm2.gamma", original + ".residual.3.gamma");
    conv3(r.conv2, out, out, 3, name + ".conv2", original + ".residual.6");
    if (in != out) conv3(r.shortcut, out, in, 1, name + ".conv_shortcut", original + ".shortcut");
  }
  void mid(Mid& m, int64_t dim, const std::string& name, const std::string& original) {
    res(m.res0, dim, dim, name + ".resnets.0", original + ".0");
    tensor(m.attn.gamma, {dim, 1, 1}, name + ".attentions.0.norm.gamma", original + ".1.norm.gamma");
    conv(m.attn.qkv, {3 * dim, dim, 1, 1}, name + ".attentions.0.to_qkv", original + ".1.to_qkv");
    conv(m.attn.proj, {dim, dim, 1, 1}, name + ".attentions.0.proj", original + ".1.proj");
    res(m.res1, dim, dim, name + ".resnets.1", original + ".2");
  }
  void resample(Resample& r, ResampleMode mode, int64_t dim, const std::string& name, const std::string& original) {
    r.mode = mode;
    const bool up = mode == ResampleMode::Up2d || mode == ResampleMode::Up3d;
    conv(r.conv, {up ? dim / 2 : dim, dim, 3, 3}, name + ".resample.1", original + ".resample.1");
    if (mode == ResampleMode::Up3d) conv(r.time_conv, {2 * dim, dim, 3, 1, 1}, name + ".time_conv", original + ".time_conv");
    if (mode == ResampleMode::Down3d) conv(r.time_conv, {dim, dim, 3, 1, 1}, name + ".time_conv", original + ".time_conv");
  }

 private:
  std::vector<Param>& params_;
};

// ---------------------------------------------------------------------------------------------
// [3] ops

// Per-call state of the causal convolutions and 3d resamplers, in the order the network visits
// them (the same order in every chunk).
struct Slot {
  torch::Tensor cache;  // the last input frames (2 for a 3-tap conv, 1 for the down resampler)
  bool started = false; // the resamplers' first chunk has been seen
};

struct Stream {
  std::vector<Slot> slots;
  size_t next = 0;
  void begin_chunk() { next = 0; }
  Slot& slot() {
    if (next == slots.size()) slots.emplace_back();
    return slots[next++];
  }
};

// A causal conv over time: the cached last (k−1) input frames go in front of the chunk (zeros
// before the first chunk), so time is padded only into the past; space is padded symmetrically.
torch::Tensor causal_conv(Slot& slot, const Conv& c, torch::Tensor x) {
  const int64_t kt = c.w.size(2), ph = c.w.size(3) / 2, pw = c.w.size(4) / 2;
  if (!slot.cache.defined())
    slot.cache = torch::zeros({x.size(0), x.size(1), kt - 1, x.size(3), x.size(4)}, x.options());
  auto in = torch::cat({slot.cache, x}, 2);
  x = torch::Tensor();
  slot.cache = in.narrow(2, in.size(2) - (kt - 1), kt - 1).clone();
  return at::conv3d(in, c.w, c.b, {1, 1, 1}, {0, ph, pw});
}

torch::Tensor causal_conv(Stream& s, const Conv& c, torch::Tensor x) {
  if (c.w.size(2) == 1) return at::conv3d(x, c.w, c.b, {1, 1, 1}, {0, c.w.size(3) / 2, c.w.size(4) / 2});
  return causal_conv(s.slot(), c, std::move(x));
}

// Wan's RMS norm: x / ‖x‖₂ over channels × √C × γ, the norm accumulated in fp32 whatever the
// dtype (as diffusers' fp32 F.normalize); the per-position factor is applied in x's dtype so no
// fp32 copy of the activation is made.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& gamma, bool silu) {
  const double scale = std::sqrt(double(x.size(1)));
  auto n = at::linalg_vector_norm(x, 2, {1}, /*keepdim=*/true, torch::kFloat).clamp_min_(1e-12);
  auto y = x * n.reciprocal_().mul_(scale).to(x.scalar_type());
  y.mul_(gamma);
  if (silu) at::silu_(y);
  return y;
}

torch::Tensor res_block(Stream& s, const ResBlock& r, torch::Tensor x) {
  torch::Tensor h = r.shortcut.defined() ? at::conv3d(x, r.shortcut.w, r.shortcut.b) : x;
  auto y = rms_norm(x, r.gamma1, true);
  x = torch::Tensor();
  y = causal_conv(s, r.conv1, std::move(y));
  y = rms_norm(y, r.gamma2, true);
  y = causal_conv(s, r.conv2, std::move(y));
  return y.add_(h);
}

torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  if (q.is_cuda()) return at::scaled_dot_product_attention(q, k, v);
#endif
  // CPU (and LibTorch 1.x): fp32 softmax attention, queries in chunks to bound the score matrix.
  const double scale = 1.0 / std::sqrt(double(q.size(-1)));
  const auto kt = k.to(torch::kFloat).transpose(-2, -1);
  const auto vf = v.to(torch::kFloat);
  std::vector<torch::Tensor> outs;
  const int64_t chunk = 2048;
  for (int64_t s = 0; s < q.size(-2); s += chunk) {
    auto qs = q.narrow(-2, s, std::min(chunk, q.size(-2) - s)).to(torch::kFloat);
    outs.push_back(torch::matmul(torch::softmax(torch::matmul(qs, kt).mul_(scale), -1), vf));
  }
  return torch::cat(outs, -2).to(q.scalar_type());
}

// Single-head self-attention within each frame (head dim = channels), as in the mid block.
torch::Tensor attention(const Attention& a, const torch::Tensor& x) {
  const int64_t C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  auto f = rms_norm(x.permute({0, 2, 1, 3, 4}).reshape({T, C, H, W}), a.gamma, false);
  auto qkv = at::conv2d(f, a.qkv.w, a.qkv.b).reshape({T, 1, 3 * C, H * W}).transpose(2, 3);  // [T, 1, HW, 3C]
  f = torch::Tensor();
  auto parts = qkv.chunk(3, -1);
  auto o = attention_core(parts[0], parts[1], parts[2]);  // [T, 1, HW, C]
  parts.clear();
  qkv = torch::Tensor();
  o = at::conv2d(o.squeeze(1).transpose(1, 2).reshape({T, C, H, W}), a.proj.w, a.proj.b);
  return x + o.view({1, T, C, H, W}).permute({0, 2, 1, 3, 4});  // x first: the sum keeps its layout
}

// [1, C, T, H, W] → a 2d function of each frame → back.
template <typename F>
torch::Tensor per_frame(const torch::Tensor& x, F&& fn) {
  const int64_t T = x.size(2);
  auto y = fn(x.permute({0, 2, 1, 3, 4}).reshape({T, x.size(1), x.size(3), x.size(4)}));
  return y.view({1, T, y.size(1), y.size(2), y.size(3)}).permute({0, 2, 1, 3, 4}).contiguous();
}

torch::Tensor upsample(Stream& s, const Resample& r, torch::Tensor x) {
  if (r.mode == ResampleMode::Up3d) {
    Slot& slot = s.slot();
    // The temporal conv makes two frames of each input frame, except the clip's very first frame,
    // which passes alone (Wan's "Rep" first chunk): T latents → 1 + 4(T − 1) frames.
    auto doubled = [&](torch::Tensor in) {
      const int64_t C = in.size(1), T = in.size(2), H = in.size(3), W = in.size(4);
      auto y = causal_conv(slot, r.time_conv, std::move(in));  // [1, 2C, T, H, W]
      return y.view({1, 2, C, T, H, W}).permute({0, 2, 3, 1, 4, 5}).reshape({1, C, 2 * T, H, W});
    };
    if (!slot.started) {
      slot.started = true;
      if (x.size(2) > 1) x = torch::cat({x.narrow(2, 0, 1), doubled(x.narrow(2, 1, x.size(2) - 1))}, 2);
    } else {
      x = doubled(std::move(x));
    }
  }
  return per_frame(x, [&](const torch::Tensor& f) {
    const int64_t T = f.size(0), C = f.size(1), H = f.size(2), W = f.size(3);
    // Nearest ×2 (nearest-exact equals nearest at an integer factor).
    auto up = f.view({T, C, H, 1, W, 1}).expand({T, C, H, 2, W, 2}).reshape({T, C, 2 * H, 2 * W});
    return at::conv2d(up, r.conv.w, r.conv.b, {1, 1}, {1, 1});
  });
}

torch::Tensor downsample(Stream& s, const Resample& r, torch::Tensor x) {
  x = per_frame(x, [&](const torch::Tensor& f) {
    return at::conv2d(at::constant_pad_nd(f, {0, 1, 0, 1}), r.conv.w, r.conv.b, {2, 2});
  });
  if (r.mode != ResampleMode::Down3d) return x;
  Slot& slot = s.slot();
  if (!slot.started) {
    // The first chunk is the clip's first frame alone: it passes, and is the next chunk's context.
    if (x.size(2) != 1) throw Error("internal: the VAE encoder's first chunk must be one frame");
    slot.started = true;
    slot.cache = x.clone();
    return x;
  }
  auto in = torch::cat({slot.cache, x}, 2);
  slot.cache = x.narrow(2, x.size(2) - 1, 1).clone();
  return at::conv3d(in, r.time_conv.w, r.time_conv.b, {2, 1, 1});
}

// ---------------------------------------------------------------------------------------------
// [4] encoder/decoder

torch::Tensor mid_block(Stream& s, const Mid& m, torch::Tensor x) {
  x = res_block(s, m.res0, std::move(x));
  x = attention(m.attn, x);
  return res_block(s, m.res1, std::move(x));
}

// One chunk of latent frames [1, z, t, h, w] (post_quant_conv applied) → frames [1, 3, n, H, W].
// Once the last temporal upsampling is done the time axis no longer changes, so the remaining
// (largest) levels may run `pass_frames` frames at a time (0: all at once): the same numbers, the
// activations of fewer full-resolution frames alive at once.
torch::Tensor run_decoder(Stream& s, const Decoder& d, torch::Tensor x, int64_t pass_frames) {
  s.begin_chunk();
  x = causal_conv(s, d.conv_in, std::move(x));
  x = mid_block(s, d.mid, std::move(x));
  size_t split = 0;  // the first up block after the last temporal upsampling
  for (size_t i = 0; i < d.ups.size(); ++i)
    if (d.ups[i].has_resample && d.ups[i].resample.mode == ResampleMode::Up3d) split = i + 1;
  for (size_t i = 0; i < split; ++i) {
    for (const auto& r : d.ups[i].res) x = res_block(s, r, std::move(x));
    if (d.ups[i].has_resample) x = upsample(s, d.ups[i].resample, std::move(x));
  }
  auto tail = [&](torch::Tensor y) {
    for (size_t i = split; i < d.ups.size(); ++i) {
      for (const auto& r : d.ups[i].res) y = res_block(s, r, std::move(y));
      if (d.ups[i].has_resample) y = upsample(s, d.ups[i].resample, std::move(y));
    }
    y = rms_norm(y, d.gamma_out, true);
    return causal_conv(s, d.conv_out, std::move(y)).clamp_(-1, 1);
  };
  const int64_t T = x.size(2);
  if (pass_frames <= 0 || pass_frames >= T) return tail(std::move(x));
  const size_t mark = s.next;  // every pass visits the tail's slots in the same order
  std::vector<torch::Tensor> outs;
  for (int64_t f = 0; f < T; f += pass_frames) {
    s.next = mark;
    outs.push_back(tail(x.narrow(2, f, std::min(pass_frames, T - f))));
  }
  x = torch::Tensor();
  return torch::cat(outs, 2);
}

// One chunk of frames [1, 3, t, H, W] → [1, 2z, t', h, w] before quant_conv.
torch::Tensor run_encoder(Stream& s, const Encoder& e, torch::Tensor x) {
  s.begin_chunk();
  x = causal_conv(s, e.conv_in, std::move(x));
  for (const auto& item : e.items)
    x = item.is_resample ? downsample(s, item.resample, std::move(x)) : res_block(s, item.res, std::move(x));
  x = mid_block(s, e.mid, std::move(x));
  x = rms_norm(x, e.gamma_out, true);
  return causal_conv(s, e.conv_out, std::move(x));
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

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

// ---------------------------------------------------------------------------------------------
// [5] public API

struct WanVAE::Impl {
  WanVAEConfig config;
  bool with_encoder = true;
  Encoder enc;
  Decoder dec;
  std::vector<Param> params;
  torch::Device device = torch::kCPU;
  torch::ScalarType dec_dtype = torch::kFloat, enc_dtype = torch::kFloat;

  Impl(WanVAEConfig c, bool encoder) : config(std::move(c)), with_encoder(encoder) {
    config.validate();
    const auto& cfg = config;
    const int64_t levels = int64_t(cfg.dim_mult.size());
    Builder b(params);
    if (with_encoder) {
      b.encoder = true;
      std::vector<int64_t> dims = {cfg.base_dim};
      for (int64_t m : cfg.dim_mult) dims.push_back(cfg.base_dim * m);
      enc.items.resize(size_t(levels * cfg.num_res_blocks + levels - 1));
      b.conv3(enc.conv_in, dims[0], 3, 3, "encoder.conv_in", "encoder.conv1");
      size_t k = 0;
      for (int64_t i = 0; i < levels; ++i) {
        int64_t in = dims[i];
        const int64_t out = dims[i + 1];
        for (int64_t r = 0; r < cfg.num_res_blocks; ++r, ++k) {
          const std::string idx = std::to_string(k);
          b.res(enc.items[k].res, in, out, "encoder.down_blocks." + idx, "encoder.downsamples." + idx);
          in = out;
        }
        if (i != levels - 1) {
          const std::string idx = std::to_string(k);
          enc.items[k].is_resample = true;
          b.resample(enc.items[k].resample, cfg.temporal_downsample[i] ? ResampleMode::Down3d : ResampleMode::Down2d, out,
                     "encoder.down_blocks." + idx, "encoder.downsamples." + idx);
          ++k;
        }
      }
      const int64_t top = dims.back();
      b.mid(enc.mid, top, "encoder.mid_block", "encoder.middle");
      b.tensor(enc.gamma_out, {top, 1, 1, 1}, "encoder.norm_out.gamma", "encoder.head.0.gamma");
      b.conv3(enc.conv_out, 2 * cfg.z_dim, top, 3, "encoder.conv_out", "encoder.head.2");
      b.conv3(enc.quant, 2 * cfg.z_dim, 2 * cfg.z_dim, 1, "quant_conv", "conv1");
      b.encoder = false;
    }
    std::vector<int64_t> dims = {cfg.base_dim * cfg.dim_mult.back()};
    for (auto it = cfg.dim_mult.rbegin(); it != cfg.dim_mult.rend(); ++it) dims.push_back(cfg.base_dim * *it);
    b.conv3(dec.post_quant, cfg.z_dim, cfg.z_dim, 1, "post_quant_conv", "conv2");
    b.conv3(dec.conv_in, dims[0], cfg.z_dim, 3, "decoder.conv_in", "decoder.conv1");
    b.mid(dec.mid, dims[0], "decoder.mid_block", "decoder.middle");
    dec.ups.resize(size_t(levels));
    int64_t flat = 0;
    for (int64_t i = 0; i < levels; ++i) {
      // Wan2.1: after an upsampling level the resample halved the channels (hence in/2).
      int64_t in = i > 0 ? dims[i] / 2 : dims[i];
      const int64_t out = dims[i + 1];
      auto& up = dec.ups[size_t(i)];
      up.res.resize(size_t(cfg.num_res_blocks + 1));
      for (int64_t r = 0; r <= cfg.num_res_blocks; ++r, ++flat) {
        b.res(up.res[size_t(r)], in, out, "decoder.up_blocks." + std::to_string(i) + ".resnets." + std::to_string(r),
              "decoder.upsamples." + std::to_string(flat));
        in = out;
      }
      if (i != levels - 1) {
        up.has_resample = true;
        // Temporal upsampling mirrors the encoder: its flags reversed.
        const bool t = cfg.temporal_downsample[size_t(levels - 2 - i)];
        b.resample(up.resample, t ? ResampleMode::Up3d : ResampleMode::Up2d, out,
                   "decoder.up_blocks." + std::to_string(i) + ".upsamplers.0", "decoder.upsamples." + std::to_string(flat));
        ++flat;
      }
    }
    const int64_t last = dims.back();
    b.tensor(dec.gamma_out, {last, 1, 1, 1}, "decoder.norm_out.gamma", "decoder.head.0.gamma");
    b.conv3(dec.conv_out, 3, last, 3, "decoder.conv_out", "decoder.head.2");
  }

  void randomize(uint64_t seed) {
    auto gen = at::detail::createCPUGenerator(seed);
    torch::NoGradGuard no_grad;
    for (auto& p : params) {
      auto& t = *p.tensor;
      if (ends_with(p.name, ".gamma")) {
        t = 1 + 0.1 * torch::randn(p.shape, gen);
      } else if (ends_with(p.name, ".bias")) {
        t = 0.02 * torch::randn(p.shape, gen);
      } else {
        int64_t fan_in = 1;
        for (size_t d = 1; d < p.shape.size(); ++d) fan_in *= p.shape[d];
        t = torch::randn(p.shape, gen) / std::sqrt(double(fan_in));
      }
    }
  }

  torch::Tensor stats(const std::vector<float>& v, const torch::Tensor& like) const {
    return torch::tensor(v, torch::kFloat).to(like.device()).view({int64_t(v.size()), 1, 1, 1});
  }

  void check_latents(const torch::Tensor& z) const {
    if (!z.defined() || z.dim() != 4)
      throw ShapeError("latents: expected [" + std::to_string(config.z_dim) + ", T, H, W], got " +
                       (z.defined() ? c10::str(z.sizes()) : std::string("an undefined tensor")));
    if (z.size(0) != config.z_dim)
      throw ShapeError("latents: " + std::to_string(z.size(0)) + " channels, the Wan VAE takes " +
                       std::to_string(config.z_dim) + " (shape " + c10::str(z.sizes()) + ")");
    if (z.size(1) < 1 || z.size(2) < 1 || z.size(3) < 1) throw ShapeError("latents: empty shape " + c10::str(z.sizes()));
    if (!z.is_floating_point()) throw ShapeError("latents: expected a floating-point tensor");
    if (!torch::isfinite(z).all().item<bool>()) throw ShapeError("latents contain NaN or Inf");
  }
};

WanVAE::WanVAE(WanVAEConfig config, uint64_t seed) : impl_(std::make_unique<Impl>(std::move(config), true)) {
  impl_->randomize(seed);
}
WanVAE::WanVAE(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WanVAE::~WanVAE() = default;
WanVAE::WanVAE(WanVAE&&) noexcept = default;
WanVAE& WanVAE::operator=(WanVAE&&) noexcept = default;

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

void WanVAE::to(torch::Device device, torch::ScalarType decoder_dtype, torch::ScalarType encoder_dtype) {
  for (auto dt : {decoder_dtype, encoder_dtype})
    if (dt != torch::kFloat && dt != torch::kBFloat16 && dt != torch::kHalf)
      throw ParameterError("vae dtype", "expected float32, bfloat16 or float16");
  for (auto& p : impl_->params) *p.tensor = p.tensor->to(device, p.encoder ? encoder_dtype : decoder_dtype);
  impl_->device = device;
  impl_->dec_dtype = decoder_dtype;
  impl_->enc_dtype = encoder_dtype;
}

torch::Device WanVAE::device() const { return impl_->device; }
torch::ScalarType WanVAE::decoder_dtype() const { return impl_->dec_dtype; }
const WanVAEConfig& WanVAE::config() const { return impl_->config; }
bool WanVAE::has_encoder() const { return impl_->with_encoder; }

torch::Tensor WanVAE::normalize(const torch::Tensor& raw) const {
  return (raw.to(torch::kFloat) - impl_->stats(impl_->config.latents_mean, raw)) /
         impl_->stats(impl_->config.latents_std, raw);
}

torch::Tensor WanVAE::denormalize(const torch::Tensor& normalized) const {
  return normalized.to(torch::kFloat) * impl_->stats(impl_->config.latents_std, normalized) +
         impl_->stats(impl_->config.latents_mean, normalized);
}

std::map<std::string, torch::Tensor> WanVAE::state_dict() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : impl_->params) out[p.name] = *p.tensor;
  return out;
}

std::map<std::string, std::string> WanVAE::original_names() const {
  std::map<std::string, std::string> out;
  for (const auto& p : impl_->params) out[p.name] = p.original;
  return out;
}

int64_t WanVAE::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : impl_->params) n += p.tensor->numel();
  return n;
}

namespace {

// Turns a device allocation failure into our error (the message names what ran out and the way
// out); anything else passes unchanged.
template <typename F>
auto guard_oom(const char* what, const WanVAE& vae, F&& fn) {
  try {
    return fn();
  } catch (const c10::OutOfMemoryError&) {
    const bool gpu = vae.device().is_cuda();
    throw Error(std::string(gpu ? "out of GPU memory" : "out of memory") + " in the VAE " + what + " on " +
                vae.device().str() + (gpu ? ": try --vae-tile (spatial tiles), a smaller resolution, or --device cpu"
                                          : ": try a smaller resolution or fewer frames"));
  }
}

// A linear ramp over `ramp_px` pixels on each side that has a neighbour; 1 elsewhere. Never zero, so
// every pixel's weight sum is positive.
torch::Tensor ramp(int64_t length, int64_t ramp_px, bool before, bool after) {
  auto w = torch::ones({length});
  const int64_t n = std::min(ramp_px, length);
  if (n > 0) {
    auto r = torch::arange(1, n + 1, torch::kFloat) / double(n + 1);
    if (before) w.narrow(0, 0, n).mul_(r);
    if (after) w.narrow(0, length - n, n).mul_(r.flip(0));
  }
  return w;
}

std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap) {
  if (tile >= size) return {0};
  std::vector<int64_t> s;
  for (int64_t p = 0;; p += tile - overlap) {
    if (p + tile >= size) {
      s.push_back(size - tile);
      break;
    }
    s.push_back(p);
  }
  return s;
}

}  // namespace

void WanVAE::decode_streamed(const torch::Tensor& latents, const FrameSink& sink, const DecodeOptions& options) const {
  const auto& impl = *impl_;
  impl.check_latents(latents);
  if (options.chunk < 0) throw ParameterError("chunk", "latent frames per decoder call must be ≥ 0 (0 = all)");
  if (options.pass_frames < 0) throw ParameterError("pass_frames", "frames per full-resolution pass must be ≥ 0 (0 = all)");
  if (options.tile && (options.tile_latent < 2 || options.tile_overlap < 0 || options.tile_overlap >= options.tile_latent))
    throw ParameterError("vae-tile", "tile size must be ≥ 2 latent pixels and the overlap smaller than the tile");
  torch::NoGradGuard no_grad;
  guard_oom("decode", *this, [&] {
    auto z = latents.to(torch::kFloat);
    if (options.space == LatentSpace::Normalized) z = denormalize(z);
    z = z.to(impl.device, impl.dec_dtype).unsqueeze(0);  // [1, z, T, h, w]
    const int64_t T = z.size(2), h = z.size(3), w = z.size(4), ss = impl.config.spatial_stride();
    const int64_t chunk = options.chunk == 0 ? T : options.chunk;

    const int64_t F = impl.config.frames_for(T);
    int64_t frame = 0;
    const int64_t tile = options.tile ? options.tile_latent : std::max(h, w);
    const auto ys = tile_starts(h, tile, options.tile_overlap), xs = tile_starts(w, tile, options.tile_overlap);
    if (ys.size() * xs.size() == 1) {
      // The streamed decode: one chunk of latent frames at a time, frames out as they come.
      Stream stream;
      for (int64_t i = 0; i < T; i += chunk) {
        auto zc = at::conv3d(z.narrow(2, i, std::min(chunk, T - i)), impl.dec.post_quant.w, impl.dec.post_quant.b);
        auto out = run_decoder(stream, impl.dec, std::move(zc), options.pass_frames);
        const int64_t produced = out.size(2);
        sink(out.squeeze(0), frame);
        frame += produced;
      }
    } else {
      // Tiled: each tile runs the whole clip with its own caches (only one tile's caches and
      // activations are on the device at a time: the caches dominate the streamed decode's memory),
      // accumulating ramp-weighted frames in a float32 host buffer; the frames go out at the end.
      const int64_t H = h * ss, W = w * ss, ov = options.tile_overlap * ss;
      auto acc = torch::zeros({3, F, H, W}), wsum = torch::zeros({1, 1, H, W});
      for (int64_t y : ys)
        for (int64_t x : xs) {
          const int64_t th = std::min(tile, h), tw = std::min(tile, w);
          const auto wy = ramp(th * ss, ov, y > 0, y + th < h), wx = ramp(tw * ss, ov, x > 0, x + tw < w);
          const auto weight = (wy.view({-1, 1}) * wx.view({1, -1})).view({1, 1, th * ss, tw * ss});
          wsum.narrow(2, y * ss, th * ss).narrow(3, x * ss, tw * ss).add_(weight);
          Stream stream;
          int64_t f0 = 0;
          for (int64_t i = 0; i < T; i += chunk) {
            auto zc = at::conv3d(z.narrow(2, i, std::min(chunk, T - i)).narrow(3, y, th).narrow(4, x, tw),
                                 impl.dec.post_quant.w, impl.dec.post_quant.b);
            auto part = run_decoder(stream, impl.dec, std::move(zc), options.pass_frames).squeeze(0);
            const int64_t n = part.size(1);
            acc.narrow(1, f0, n).narrow(2, y * ss, th * ss).narrow(3, x * ss, tw * ss).add_(part.to(torch::kCPU, torch::kFloat) * weight);
            f0 += n;
          }
        }
      acc.div_(wsum).clamp_(-1, 1);
      // Handed out in the streamed decode's chunks (1 frame, then 4 per latent frame).
      for (int64_t i = 0; i < T; i += chunk) {
        const int64_t n = impl.config.frames_for(std::min(i + chunk, T)) - frame;
        sink(acc.narrow(1, frame, n).to(impl.device, impl.dec_dtype), frame);
        frame += n;
      }
    }
    if (frame != impl.config.frames_for(T))
      throw Error("internal: the VAE decoded " + std::to_string(frame) + " frames for " + std::to_string(T) +
                  " latent frames, expected " + std::to_string(impl.config.frames_for(T)));
  });
}

torch::Tensor WanVAE::decode(const torch::Tensor& latents, const DecodeOptions& options) const {
  std::vector<torch::Tensor> parts;
  decode_streamed(latents, [&](const torch::Tensor& f, int64_t) { parts.push_back(f.to(torch::kCPU, torch::kFloat)); },
                  options);
  return torch::cat(parts, 1);
}

torch::Tensor WanVAE::encode(const torch::Tensor& video, LatentSpace space) const {
  const auto& impl = *impl_;
  if (!impl.with_encoder) throw Error("VAE encode: the encoder was not loaded (decode-only VAE)");
  const int64_t ts = impl.config.temporal_stride(), ss = impl.config.spatial_stride();
  if (!video.defined() || video.dim() != 4 || video.size(0) != 3)
    throw ShapeError("VAE encode: expected video [3, F, H, W], got " +
                     (video.defined() ? c10::str(video.sizes()) : std::string("an undefined tensor")));
  const int64_t F = video.size(1), H = video.size(2), W = video.size(3);
  if (F < 1 || (F - 1) % ts != 0)
    throw ShapeError("VAE encode: " + std::to_string(F) + " frames; the Wan VAE takes 1 + " + std::to_string(ts) +
                     "k frames (e.g. 81)");
  if (H < ss || W < ss || H % ss || W % ss)
    throw ShapeError("VAE encode: frame size " + std::to_string(W) + "x" + std::to_string(H) + " is not a multiple of " +
                     std::to_string(ss));
  torch::NoGradGuard no_grad;
  return guard_oom("encode", *this, [&] {
    auto x = video.to(impl.device, impl.enc_dtype).unsqueeze(0);
    Stream s;
    std::vector<torch::Tensor> outs;
    for (int64_t i = 0; i < F; i += (i == 0 ? 1 : ts)) {
      const int64_t n = i == 0 ? 1 : ts;
      outs.push_back(run_encoder(s, impl.enc, x.narrow(2, i, n)));
    }
    auto h = at::conv3d(torch::cat(outs, 2), impl.enc.quant.w, impl.enc.quant.b);
    auto mu = h.narrow(1, 0, impl.config.z_dim).squeeze(0).to(torch::kCPU, torch::kFloat);
    return space == LatentSpace::Normalized ? normalize(mu) : mu;
  });
}

}  // namespace longshot::vae

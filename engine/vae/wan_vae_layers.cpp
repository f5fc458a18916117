// The Wan2.1 VAE's layers. Sections:
//   [1] weights         the layer tree, each weight registered under its diffusers and original name
//   [2] ops             causal conv with its frame cache, RMS norm, attention, resampling
//   [3] encoder/decoder one chunk of frames through the network, caches carried in a Stream
//
// The network follows diffusers' AutoencoderKLWan and Wan's wan/modules/vae.py (read for the
// facts; this is our own code). Streaming invariant: every 3-tap causal conv sees the whole
// sequence of its inputs, left-padded with two zero frames, however the sequence is cut into
// chunks; so one latent frame at a time (Wan's own decode) and the whole clip at once agree.
#include "engine/vae/wan_vae_layers.h"

#include <cmath>

#include <torch/torch.h>

#include "engine/attention/attend.h"
#include "engine/common/error.h"

namespace longshot::vae {
namespace detail {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

namespace {

// ---------------------------------------------------------------------------------------------
// [1] weights

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

}  // namespace

// ---------------------------------------------------------------------------------------------
// [2] ops

namespace {

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

// Single-head self-attention within each frame (head dim = channels), as in the mid block.
torch::Tensor attention(const Attention& a, const torch::Tensor& x) {
  const int64_t C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  auto f = rms_norm(x.permute({0, 2, 1, 3, 4}).reshape({T, C, H, W}), a.gamma, false);
  auto qkv = at::conv2d(f, a.qkv.w, a.qkv.b).reshape({T, 1, 3 * C, H * W}).transpose(2, 3);  // [T, 1, HW, 3C]
  f = torch::Tensor();
  auto parts = qkv.chunk(3, -1);
  // attend() picks SDPA on CUDA, the fp32 reference on the CPU; fp32 stays fp32 on both.
  auto o = attention::attend(parts[0], parts[1], parts[2]);  // [T, 1, HW, C]
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

torch::Tensor mid_block(Stream& s, const Mid& m, torch::Tensor x) {
  x = res_block(s, m.res0, std::move(x));
  x = attention(m.attn, x);
  return res_block(s, m.res1, std::move(x));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// [3] encoder/decoder

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

}  // namespace detail

using namespace detail;

WanVAE::Impl::Impl(WanVAEConfig c, bool encoder) : config(std::move(c)), with_encoder(encoder) {
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

void WanVAE::Impl::randomize(uint64_t seed) {
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

}  // namespace longshot::vae

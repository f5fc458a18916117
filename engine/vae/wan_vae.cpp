// The Wan2.1 VAE's public API. Sections:
//   [1] config          strides, frame counts, validation
//   [2] model           construction, devices and dtypes, latent normalisation, state dict
//   [3] decode/encode   streamed and tiled decode, encode
// The layers are in wan_vae_layers.cpp, the weight files in wan_vae_weights.cpp.
#include "engine/vae/wan_vae.h"

#include <cmath>

#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/vae/wan_vae_layers.h"

namespace longshot::vae {

using namespace detail;

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

// ---------------------------------------------------------------------------------------------
// [2] model

namespace {

torch::Tensor stats(const std::vector<float>& v, const torch::Tensor& like) {
  return torch::tensor(v, torch::kFloat).to(like.device()).view({int64_t(v.size()), 1, 1, 1});
}

void check_latents(const WanVAEConfig& config, const torch::Tensor& z) {
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

}  // namespace

WanVAE::WanVAE(WanVAEConfig config, uint64_t seed) : impl_(std::make_unique<Impl>(std::move(config), true)) {
  impl_->randomize(seed);
}
WanVAE::WanVAE(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WanVAE::~WanVAE() = default;
WanVAE::WanVAE(WanVAE&&) noexcept = default;
WanVAE& WanVAE::operator=(WanVAE&&) noexcept = default;

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
  return (raw.to(torch::kFloat) - stats(impl_->config.latents_mean, raw)) /
         stats(impl_->config.latents_std, raw);
}

torch::Tensor WanVAE::denormalize(const torch::Tensor& normalized) const {
  return normalized.to(torch::kFloat) * stats(impl_->config.latents_std, normalized) +
         stats(impl_->config.latents_mean, normalized);
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

// ---------------------------------------------------------------------------------------------
// [3] decode/encode

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
  check_latents(impl.config, latents);
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

#include "engine/model/conditioning_impl.h"

#include <sstream>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/vae/latent_preview.h"

namespace longshot::model {

torch::Tensor HashTextEncoder::encode(const std::string& prompt) {
  std::istringstream in(prompt);
  std::string word;
  std::vector<torch::Tensor> rows;
  while (in >> word && int64_t(rows.size()) < max_len_) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char ch : word) h = (h ^ ch) * 1099511628211ull;
    auto gen = at::detail::createCPUGenerator(h);
    rows.push_back(torch::randn({dim_}, gen, torch::TensorOptions().dtype(torch::kFloat)));
  }
  if (rows.empty()) return torch::zeros({1, 1, dim_});
  return torch::stack(rows).unsqueeze(0);
}

EmbeddingFileTextEncoder::EmbeddingFileTextEncoder(std::string path, int64_t text_dim) : dim_(text_dim) {
  io::SafetensorsFile file(path);
  std::string name = "context";
  if (!file.contains(name)) {
    const auto names = file.names();
    if (names.size() != 1)
      throw IoError("text embeddings '" + path + "': expected a tensor named 'context' (or a single tensor)");
    name = names[0];
  }
  auto read = [&](const std::string& n) {
    auto t = file.load(n, torch::kFloat);
    if (t.dim() == 2) t = t.unsqueeze(0);
    if (t.dim() != 3 || t.size(0) != 1 || t.size(2) != text_dim)
      throw ShapeError("text embeddings '" + path + "': tensor '" + n + "' has shape " + c10::str(t.sizes()) +
                       ", expected [L, " + std::to_string(text_dim) + "]");
    return t;
  };
  context_ = read(name);
  if (file.contains("negative")) negative_ = read("negative");
}

torch::Tensor EmbeddingFileTextEncoder::encode(const std::string& prompt) {
  if (prompt.empty()) return negative_.defined() ? negative_ : torch::zeros({1, 1, dim_});
  return context_;
}

UMT5TextEncoder::UMT5TextEncoder(text::PromptEncoderOptions options, int64_t text_dim)
    : encoder_(std::move(options)), dim_(text_dim) {}

torch::Tensor UMT5TextEncoder::encode(const std::string& prompt) {
  auto out = encoder_.encode(prompt);
  if (out.size(2) != dim_)
    throw ShapeError("text encoder: its embeddings have " + std::to_string(out.size(2)) + " channels, the model expects " +
                     std::to_string(dim_));
  return out;
}

Video tensor_to_video(const torch::Tensor& rgb, double fps) {
  if (rgb.dim() != 4 || rgb.size(0) < 3) throw ShapeError("frames: expected [C>=3, T, H, W], got " + c10::str(rgb.sizes()));
  auto u8 = ((rgb.narrow(0, 0, 3).to(torch::kCPU, torch::kFloat).clamp(-1, 1) + 1) * 127.5)
                .round()
                .to(torch::kUInt8)
                .permute({1, 2, 3, 0})
                .contiguous();  // [T, H, W, 3]
  Video v;
  v.frames = int(u8.size(0));
  v.height = int(u8.size(1));
  v.width = int(u8.size(2));
  v.fps = fps;
  v.rgb.assign(u8.data_ptr<uint8_t>(), u8.data_ptr<uint8_t>() + u8.numel());
  return v;
}

Video PixelDecoder::decode(const torch::Tensor& latents, double fps) { return tensor_to_video(latents, fps); }

Video LatentPreviewDecoder::decode(const torch::Tensor& latents, double fps) {
  if (latents.dim() != 4) throw ShapeError("latents: expected [C, T, H, W], got " + c10::str(latents.sizes()));
  auto x = latents.to(torch::kCPU, torch::kFloat);
  const int64_t C = x.size(0), T = x.size(1);
  torch::Tensor img;  // [3, T, H, W]
  if (C == 16) {
    img = vae::wan21_latent_rgb(x);  // Wan2.1 latents: the published latent → RGB projection
  } else {
    std::vector<torch::Tensor> rgb;
    for (int64_t c = 0; c < 3; ++c) {
      auto idx = torch::arange(c, C, 3, torch::TensorOptions().dtype(torch::kLong));
      rgb.push_back(torch::tanh(x.index_select(0, idx).mean(0)));
    }
    img = torch::stack(rgb);
  }
  // Video frames: the first latent frame is one frame, each later one stands for `ts_` frames.
  auto tidx = torch::cat({torch::zeros({1}, torch::kLong),
                          torch::arange(1, T, torch::kLong).repeat_interleave(ts_)});
  img = img.index_select(1, tidx).repeat_interleave(ss_, 2).repeat_interleave(ss_, 3);
  return tensor_to_video(img, fps);
}

std::unique_ptr<TextEncoder> make_text_encoder(const DiTConfig& config, const std::string& embeddings_path,
                                               const text::PromptEncoderOptions& umt5) {
  if (!embeddings_path.empty()) return std::make_unique<EmbeddingFileTextEncoder>(embeddings_path, config.text_dim);
  if (!umt5.weights.empty()) {
    auto options = umt5;
    // Wan's DiTs read umT5-XXL (4096 channels): hold the file to that shape, so a wrong file fails
    // by tensor name rather than at the DiT's first matmul.
    if (!options.expect && config.text_dim == text::UMT5Config::xxl().d_model)
      options.expect = std::make_shared<text::UMT5Config>(text::UMT5Config::xxl());
    if (config.text_len > 0) options.max_len = config.text_len;
    return std::make_unique<UMT5TextEncoder>(std::move(options), config.text_dim);
  }
  if (config.text_encoder) return config.text_encoder(config);
  if (config.temporal_stride == 1 && config.spatial_stride == 1)
    return std::make_unique<HashTextEncoder>(config.text_dim, config.text_len);
  throw ParameterError("text-embeddings", "model " + config.name + " needs its umT5 text encoder (weights file or folder, " +
                                           "e.g. text_encoder/ and tokenizer/ of a diffusers download) or precomputed " +
                                           "embeddings: a safetensors file with 'context' [L, " +
                                           std::to_string(config.text_dim) + "]");
}

std::unique_ptr<LatentDecoder> make_decoder(const DiTConfig& config) {
  if (config.decoder) return config.decoder(config);
  if (config.temporal_stride == 1 && config.spatial_stride == 1) return std::make_unique<PixelDecoder>();
  return std::make_unique<LatentPreviewDecoder>(config.temporal_stride, config.spatial_stride);
}

WanVaeDecoder::WanVaeDecoder(const std::string& path, torch::Device device, bool tile)
    : vae_(vae::WanVAE::load(path, {}, /*with_encoder=*/false)) {
  vae_.to(device, device.is_cuda() ? torch::kBFloat16 : torch::kFloat);
  options_.tile = tile;
}

void WanVaeDecoder::decode_streamed(const torch::Tensor& latents, double fps,
                                    const std::function<void(const Video& chunk, int first)>& sink) {
  vae_.decode_streamed(
      latents,
      [&](const torch::Tensor& frames, int64_t first) {
        // 8-bit on the device, so only bytes cross to the host; same rounding as tensor_to_video.
        auto u8 = ((frames.to(torch::kFloat).clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8).permute({1, 2, 3, 0});
        u8 = u8.contiguous().to(torch::kCPU);
        Video chunk;
        chunk.frames = int(u8.size(0));
        chunk.height = int(u8.size(1));
        chunk.width = int(u8.size(2));
        chunk.fps = fps;
        chunk.rgb.assign(u8.data_ptr<uint8_t>(), u8.data_ptr<uint8_t>() + u8.numel());
        sink(chunk, int(first));
      },
      options_);
}

Video WanVaeDecoder::decode(const torch::Tensor& latents, double fps) {
  Video v;
  v.fps = fps;
  decode_streamed(latents, fps, [&](const Video& chunk, int first) {
    if (v.rgb.empty()) {
      v.height = chunk.height;
      v.width = chunk.width;
      v.frames = int(vae_.config().frames_for(latents.size(1)));
      v.rgb.resize(v.frame_bytes() * size_t(v.frames));
    }
    std::copy(chunk.rgb.begin(), chunk.rgb.end(), v.frame(first));
  });
  return v;
}

std::unique_ptr<LatentDecoder> make_decoder(const DiTConfig& config, const VaeDecoderOptions& vae) {
  if (vae.path.empty()) {
    auto decoder = make_decoder(config);
    if (dynamic_cast<LatentPreviewDecoder*>(decoder.get()))
      spdlog::warn("model {}: no VAE file given, so the video is a colour preview of the latents, not a decode "
                   "(give the Wan2.1 VAE weights, e.g. --vae Wan2.1_VAE.safetensors)",
                   config.name);
    return decoder;
  }
  if (config.temporal_stride != 4 || config.spatial_stride != 8 || config.out_channels != 16)
    throw ParameterError("vae", "model " + config.name + " does not use Wan2.1 latents (16 channels, strides 4 and 8); " +
                                    "it takes no VAE file");
  return std::make_unique<WanVaeDecoder>(vae.path, vae.device, vae.tile);
}

}  // namespace longshot::model

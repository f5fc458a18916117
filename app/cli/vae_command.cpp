// `longshot vae-decode` / `longshot vae-encode`: the Wan2.1 VAE on its own, file to file — latents
// to an MP4 or to float frames, frames to latents. Used by the GPU parity script
// (tests/gpu/wan_vae_parity.py) and for decoding latents saved by an earlier run. The work lives in
// engine/vae.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "app/cli/command.h"
#include "engine/common/cuda_memory.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/io/video.h"
#include "engine/vae/wan_vae.h"
#if defined(LONGSHOT_WITH_FFMPEG)
#include "engine/io/mp4.h"
#endif

namespace longshot::cli {
namespace {

const char* kDecodeUsage =
    "Usage: longshot vae-decode --vae FILE --latents FILE --out FILE [--tensor NAME] [--raw]\n"
    "                           [--device auto|cpu|cuda] [--dtype bf16|fp32] [--vae-tile] [--tile N]\n"
    "                           [--chunk N] [--fps F]\n"
    "\n"
    "Decodes Wan2.1 latents [16, T, h, w] (or [1, 16, T, h, w]) with the Wan2.1 VAE, one latent frame\n"
    "at a time, into 1 + 4(T - 1) frames of 8h x 8w.\n"
    "\n"
    "  --vae FILE       Wan2.1 VAE weights: diffusers vae/diffusion_pytorch_model.safetensors,\n"
    "                   ComfyUI wan_2.1_vae.safetensors or Wan2.1_VAE.pth\n"
    "  --latents FILE   safetensors with a tensor 'latents' (or only one tensor; --tensor NAME picks)\n"
    "  --out FILE       .mp4 (8-bit video) or .safetensors ('frames' [3, F, H, W] float32 in [-1, 1]);\n"
    "                   written to a temporary file and renamed, so a failed decode leaves no file\n"
    "  --raw            the latents are raw VAE latents (diffusers' decode input); default: normalised\n"
    "                   DiT latents, un-normalised with Wan's mean/std first\n"
    "  --device D       auto (CUDA when present), cpu or cuda; --dtype: bf16 (GPU default) or fp32\n"
    "  --vae-tile       spatial tiles with blended overlaps, for small GPUs (--tile N latent pixels,\n"
    "                   default 32 = 256 px, overlapping by a quarter)\n"
    "  --chunk N        latent frames per decoder call (1: streamed, default; 0: the whole clip)\n"
    "  --fps F          MP4 frame rate (default 16)\n"
    "Exit codes: 0 ok, 1 error (bad file, shape, out of memory), 2 bad usage.";

const char* kEncodeUsage =
    "Usage: longshot vae-encode --vae FILE --video FILE --out FILE [--tensor NAME] [--raw]\n"
    "                           [--device auto|cpu|cuda] [--dtype fp32|bf16]\n"
    "\n"
    "Encodes 1 + 4k frames (H, W multiples of 8) with the Wan2.1 VAE encoder (frame 0 alone, then\n"
    "groups of 4) into the posterior mean [16, 1 + k, H/8, W/8].\n"
    "\n"
    "  --video FILE     .safetensors ('frames' [3, F, H, W] in [-1, 1], or its only tensor) or .mp4\n"
    "  --out FILE       safetensors with 'latents' float32\n"
    "  --raw            write raw VAE latents (diffusers' encode output); default: normalised\n"
    "  --dtype D        fp32 (default: the encoder's error compounds in image-to-video) or bf16\n"
    "Exit codes: 0 ok, 1 error, 2 bad usage.";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

struct Flags {
  std::map<std::string, std::string> values;
  std::set<std::string> switches;
};

// Parses `--flag value` pairs and the given value-less switches; returns false (after printing
// usage) on a malformed line.
bool parse_flags(const std::vector<std::string>& args, const std::set<std::string>& value_flags,
                 const std::set<std::string>& switch_flags, const char* usage, const char* name, Flags& out) {
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (switch_flags.count(a)) {
      out.switches.insert(a);
    } else if (value_flags.count(a) && i + 1 < args.size()) {
      out.values[a] = args[++i];
    } else {
      std::cerr << "longshot " << name << ": "
                << (value_flags.count(a) ? "flag '" + a + "' needs a value" : "unexpected argument '" + a + "'") << "\n"
                << usage << "\n";
      return false;
    }
  }
  return true;
}

std::string required(const Flags& f, const std::string& flag) {
  auto it = f.values.find(flag);
  if (it == f.values.end() || it->second.empty()) throw ParameterError(flag, "is required");
  return it->second;
}

torch::Device pick_device(const Flags& f) {
  const auto it = f.values.find("--device");
  const std::string d = it == f.values.end() ? "auto" : it->second;
  if (d == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (d == "cpu") return torch::kCPU;
  if (d == "cuda") {
    if (!torch::cuda::is_available()) throw ParameterError("--device", "cuda requested but no CUDA device is visible");
    return torch::kCUDA;
  }
  throw ParameterError("--device", "expected auto, cpu or cuda, got '" + d + "'");
}

torch::ScalarType pick_dtype(const Flags& f, torch::ScalarType fallback) {
  const auto it = f.values.find("--dtype");
  if (it == f.values.end()) return fallback;
  if (it->second == "bf16") return torch::kBFloat16;
  if (it->second == "fp32") return torch::kFloat;
  throw ParameterError("--dtype", "expected bf16 or fp32, got '" + it->second + "'");
}

torch::Tensor read_tensor(const std::string& path, const std::string& preferred, const Flags& f) {
  io::SafetensorsFile file(path);
  auto it = f.values.find("--tensor");
  std::string name = it != f.values.end() ? it->second : preferred;
  if (!file.contains(name)) {
    const auto names = file.names();
    if (it != f.values.end() || names.size() != 1)
      throw IoError("'" + path + "': no tensor '" + name + "' (and not a single-tensor file; --tensor NAME picks one)");
    name = names[0];
  }
  return file.load(name, torch::kFloat);
}

// The caching allocator's peak since reset_peak_cuda_memory, in words; empty on the CPU.
std::string peak_text(const torch::Device& d) {
  const int64_t peak = peak_cuda_memory(d);
  if (peak < 0) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, ", peak CUDA memory %.2f GiB", double(peak) / (1ull << 30));
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_decode(const std::vector<std::string>& args) {
  Flags f;
  if (!parse_flags(args, {"--vae", "--latents", "--out", "--tensor", "--device", "--dtype", "--tile", "--chunk", "--fps"},
                   {"--raw", "--vae-tile"}, kDecodeUsage, "vae-decode", f))
    return 2;
  const auto vae_path = required(f, "--vae"), latents_path = required(f, "--latents"), out = required(f, "--out");
  const bool mp4 = ends_with(out, ".mp4");
  if (!mp4 && !ends_with(out, ".safetensors")) throw ParameterError("--out", "expected a .mp4 or .safetensors path");
#if !defined(LONGSHOT_WITH_FFMPEG)
  if (mp4) throw ParameterError("--out", "this build has no FFmpeg (LONGSHOT_WITH_FFMPEG=OFF); write .safetensors");
#endif
  vae::DecodeOptions options;
  options.space = f.switches.count("--raw") ? vae::LatentSpace::Raw : vae::LatentSpace::Normalized;
  options.tile = f.switches.count("--vae-tile") > 0;
  if (f.values.count("--tile")) {
    options.tile_latent = parse_int("--tile", f.values["--tile"], 2);
    options.tile_overlap = options.tile_latent / 4;  // the default's ratio (32 / 8)
  }
  if (f.values.count("--chunk")) options.chunk = parse_int("--chunk", f.values["--chunk"], 0);
  const double fps = f.values.count("--fps") ? parse_double("--fps", f.values["--fps"]) : 16.0;
  if (!(fps > 0)) throw ParameterError("--fps", "must be positive");

  auto z = read_tensor(latents_path, "latents", f);
  if (z.dim() == 5 && z.size(0) == 1) z = z.squeeze(0);
  const auto device = pick_device(f);
  auto model = vae::WanVAE::load(vae_path, {}, /*with_encoder=*/false);
  model.to(device, pick_dtype(f, device.is_cuda() ? torch::kBFloat16 : torch::kFloat));

  reset_peak_cuda_memory(device);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> frames;  // .safetensors: float32 [3, n, H, W] chunks on the CPU
  Video video;           // .mp4: 8-bit, filled chunk by chunk
  video.fps = fps;
  model.decode_streamed(
      z,
      [&](const torch::Tensor& chunk, int64_t first) {
        if (!mp4) {
          frames.push_back(chunk.to(torch::kCPU, torch::kFloat));
          return;
        }
        auto u8 = ((chunk.to(torch::kFloat).clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8).permute({1, 2, 3, 0});
        u8 = u8.contiguous().to(torch::kCPU);
        if (video.rgb.empty()) {
          video.height = int(u8.size(1));
          video.width = int(u8.size(2));
          video.frames = int(model.config().frames_for(z.size(1)));
          video.rgb.resize(video.frame_bytes() * size_t(video.frames));
        }
        std::copy(u8.data_ptr<uint8_t>(), u8.data_ptr<uint8_t>() + u8.numel(), video.frame(int(first)));
      },
      options);
  if (device.is_cuda()) torch::cuda::synchronize();
  const double secs = seconds_since(t0);
  const int64_t n = model.config().frames_for(z.size(1));
  if (mp4) {
#if defined(LONGSHOT_WITH_FFMPEG)
    io::write_mp4(video, out, io::Mp4Options{fps});
#endif
  } else {
    io::write_safetensors(out, {{"frames", torch::cat(frames, 1)}});
  }
  std::printf("decoded %lld frames of %lldx%lld in %.3f s on %s%s -> %s\n", (long long)n,
              (long long)(z.size(3) * model.config().spatial_stride()), (long long)(z.size(2) * model.config().spatial_stride()),
              secs, device.str().c_str(), peak_text(device).c_str(), out.c_str());
  return 0;
}

int run_encode(const std::vector<std::string>& args) {
  Flags f;
  if (!parse_flags(args, {"--vae", "--video", "--out", "--tensor", "--device", "--dtype"}, {"--raw"}, kEncodeUsage,
                   "vae-encode", f))
    return 2;
  const auto vae_path = required(f, "--vae"), video_path = required(f, "--video"), out = required(f, "--out");
  if (!ends_with(out, ".safetensors")) throw ParameterError("--out", "expected a .safetensors path");
  torch::Tensor frames;
  if (ends_with(video_path, ".mp4")) {
#if defined(LONGSHOT_WITH_FFMPEG)
    Video v;
    io::read_mp4(video_path, &v);
    frames = torch::from_blob(v.rgb.data(), {v.frames, v.height, v.width, 3}, torch::kUInt8)
                 .permute({3, 0, 1, 2})
                 .to(torch::kFloat)
                 .div(127.5)
                 .sub(1);
#else
    throw ParameterError("--video", "this build has no FFmpeg (LONGSHOT_WITH_FFMPEG=OFF); give .safetensors frames");
#endif
  } else {
    frames = read_tensor(video_path, "frames", f);
    if (frames.dim() == 5 && frames.size(0) == 1) frames = frames.squeeze(0);
  }
  const auto device = pick_device(f);
  auto model = vae::WanVAE::load(vae_path);
  model.to(device, torch::kBFloat16, pick_dtype(f, torch::kFloat));
  reset_peak_cuda_memory(device);
  const auto t0 = std::chrono::steady_clock::now();
  const auto mu = model.encode(frames, f.switches.count("--raw") ? vae::LatentSpace::Raw : vae::LatentSpace::Normalized);
  const double secs = seconds_since(t0);
  io::write_safetensors(out, {{"latents", mu}});
  std::printf("encoded %lld frames into latents %s in %.3f s on %s%s -> %s\n", (long long)frames.size(1),
              c10::str(mu.sizes()).c_str(), secs, device.str().c_str(), peak_text(device).c_str(), out.c_str());
  return 0;
}

}  // namespace

Command vae_decode_command() {
  return {"vae-decode", "Wan2.1 VAE: latents (safetensors) -> MP4 or float frames, streamed", kDecodeUsage,
          run_decode};
}
Command vae_encode_command() {
  return {"vae-encode", "Wan2.1 VAE: frames (safetensors or MP4) -> latents (posterior mean)", kEncodeUsage,
          run_encode};
}

}  // namespace longshot::cli

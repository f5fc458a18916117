// VAE benchmark: time and peak CUDA memory of a streamed Wan2.1 decode (one latent frame at a
// time, frames converted to 8 bits and copied to the host as the MP4 export needs them) at 81
// frames for each size; random weights unless --vae is given (speed does not depend on values).
// Prints a table and writes JSON; docs/benchmarks.md reads it. With --latents or --video it decodes
// or encodes that file once instead (the GPU parity script, tests/gpu/wan_vae_parity.py, compares
// the result with diffusers'), writing float32 "frames" / "latents" to --out.
//
// Method: one warm-up decode of 2 latent frames at the same size (cuDNN picks its algorithms),
// then --reps timed decodes (median), each after a device sync; peak = the caching allocator's
// peak allocated bytes since a reset just before the timed decodes (what
// torch.cuda.max_memory_allocated reports), weights of the decoder included.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "engine/common/cuda_memory.h"
#include "engine/io/safetensors.h"
#include "engine/vae/latent_preview.h"
#include "engine/vae/wan_vae.h"

using namespace longshot;

namespace {

const char* kUsage =
    "Usage: bench_vae [--vae FILE] [--sizes 480x832,720x1280] [--frames 81] [--device cuda|cpu]\n"
    "                 [--dtype bf16|fp32] [--reps N] [--tile] [--chunk N] [--pass N] [--json FILE]\n"
    "       bench_vae --vae FILE (--latents FILE | --video FILE) --out FILE [--raw] [--device D] [--dtype D]\n"
    "                 (--latents: raw when --raw, else normalised; --video: --dtype is the encoder's, fp32\n"
    "                 by default; --raw writes raw latents)\n";

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// The caching allocator's peak on `device` since the last reset_peak_cuda_memory: −1 on the CPU.
double peak_gib(const torch::Device& device) {
  const int64_t bytes = peak_cuda_memory(device);
  return bytes < 0 ? -1.0 : double(bytes) / (1ull << 30);
}

struct Options {
  std::string vae_path, sizes = "480x832,720x1280", json_path = "bench_vae.json", dtype_name;
  std::string latents_path, video_path, out_path;
  bool raw = false;
  std::string device_name = torch::cuda::is_available() ? "cuda" : "cpu";
  int frames = 81, reps = 3;
  vae::DecodeOptions decode;
};

// False (after the message and the usage on stderr) for an unknown argument; a flag without its
// value exits with status 2.
bool parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "bench_vae: " << a << " needs a value\n" << kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--vae") o.vae_path = value();
    else if (a == "--sizes") o.sizes = value();
    else if (a == "--frames") o.frames = std::stoi(value());
    else if (a == "--device") o.device_name = value();
    else if (a == "--dtype") o.dtype_name = value();
    else if (a == "--reps") o.reps = std::max(1, std::stoi(value()));
    else if (a == "--tile") o.decode.tile = true;
    else if (a == "--chunk") o.decode.chunk = std::stoi(value());
    else if (a == "--pass") o.decode.pass_frames = std::stoi(value());
    else if (a == "--json") o.json_path = value();
    else if (a == "--latents") o.latents_path = value();
    else if (a == "--video") o.video_path = value();
    else if (a == "--out") o.out_path = value();
    else if (a == "--raw") o.raw = true;
    else {
      std::cerr << "bench_vae: unknown argument '" << a << "'\n" << kUsage;
      return false;
    }
  }
  return true;
}

// --latents / --video: one decode or encode of that file with the given weights, the result to --out.
void convert_file(const Options& opt, const torch::Device& device, torch::ScalarType dtype) {
  if (opt.vae_path.empty() || opt.out_path.empty()) throw std::runtime_error("--latents/--video need --vae and --out");
  const bool encode = !opt.video_path.empty();
  auto model = vae::WanVAE::load(opt.vae_path, {}, encode);
  if (encode) model.to(device, torch::kBFloat16, opt.dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat);
  else model.to(device, dtype);
  io::SafetensorsFile in(encode ? opt.video_path : opt.latents_path);
  auto x = in.load(encode ? "video" : "latents", torch::kFloat);
  if (x.dim() == 5) x = x.squeeze(0);
  const auto space = opt.raw ? vae::LatentSpace::Raw : vae::LatentSpace::Normalized;
  sync(device);
  reset_peak_cuda_memory(device);
  const double t0 = now_ms();
  torch::Tensor y;
  if (encode) {
    y = model.encode(x, space);
  } else {
    vae::DecodeOptions o = opt.decode;
    o.space = space;
    y = model.decode(x, o);
  }
  sync(device);
  const double secs = (now_ms() - t0) / 1000.0;
  io::write_safetensors(opt.out_path, {{encode ? "latents" : "frames", y}});
  std::printf("%s %s -> %s %s in %.3f s on %s, peak %.2f GiB\n", encode ? "encoded" : "decoded",
              c10::str(x.sizes()).c_str(), c10::str(y.sizes()).c_str(), opt.out_path.c_str(), secs, device.str().c_str(),
              peak_gib(device));
}

// One size ("HxW"): a warm-up decode of 2 latent frames, then --reps timed streamed decodes of T
// latent frames (median); prints the table line and returns the JSON row.
nlohmann::json time_size(const vae::WanVAE& model, const std::string& item, int64_t T, const Options& opt,
                         const torch::Device& device) {
  const auto& cfg = model.config();
  const auto x = item.find('x');
  const int64_t H = std::stoll(item.substr(0, x)), W = std::stoll(item.substr(x + 1));
  const int64_t h = H / cfg.spatial_stride(), w = W / cfg.spatial_stride();
  auto z = torch::randn({cfg.z_dim, T, h, w});
  int64_t bytes = 0;
  // The export path: 8-bit on the device, bytes to the host.
  auto sink = [&](const torch::Tensor& f, int64_t) {
    auto u8 = ((f.to(torch::kFloat) + 1) * 127.5).round().to(torch::kUInt8).permute({1, 2, 3, 0}).contiguous();
    bytes += u8.to(torch::kCPU).numel();
  };
  model.decode_streamed(z.narrow(1, 0, std::min<int64_t>(2, T)), sink, opt.decode);  // warm-up
  sync(device);
  reset_peak_cuda_memory(device);
  std::vector<double> times;
  for (int r = 0; r < opt.reps; ++r) {
    bytes = 0;
    sync(device);
    const double t0 = now_ms();
    model.decode_streamed(z, sink, opt.decode);
    sync(device);
    times.push_back((now_ms() - t0) / 1000.0);
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2], peak = peak_gib(device);
  const int64_t out_frames = cfg.frames_for(T);
  if (bytes != out_frames * H * W * 3) throw std::runtime_error("decoded byte count does not match the frame count");
  std::printf("%-10s %10.3f %10.1f %12.2f\n", item.c_str(), t, out_frames / t, peak);
  return {{"size", item}, {"frames", out_frames}, {"latent_frames", T},
          {"time_s", t}, {"peak_gib", peak}, {"reps", opt.reps}};
}

// The live preview: the latent → RGB projection of a whole 81-frame 480×832 latent (21×60×104).
double time_preview(const torch::Device& device, torch::ScalarType dtype) {
  auto zp = torch::randn({16, 21, 60, 104}).to(device, dtype);
  vae::wan21_latent_rgb(zp);
  std::vector<double> ts;
  for (int r = 0; r < 20; ++r) {
    sync(device);
    const double t0 = now_ms();
    auto rgb = vae::wan21_latent_rgb(zp);
    sync(device);
    ts.push_back(now_ms() - t0);
  }
  std::sort(ts.begin(), ts.end());
  const double preview_ms = ts[ts.size() / 2];
  std::printf("latent preview projection, 21x60x104 latents: %.3f ms (median of 20)\n", preview_ms);
  return preview_ms;
}

// The benchmark proper: every --sizes entry, the preview projection, the JSON.
void decode_bench(const Options& opt, const torch::Device& device, torch::ScalarType dtype) {
  auto model = opt.vae_path.empty() ? vae::WanVAE(vae::WanVAEConfig{}, 1) : vae::WanVAE::load(opt.vae_path, {}, false);
  model.to(device, dtype);
  const auto& cfg = model.config();
  const int64_t T = (opt.frames - 1) / cfg.temporal_stride() + 1;
  std::printf("Wan2.1 VAE streamed decode: %s, %s, %s weights, %d frames (%lld latent frames), tiling %s, "
              "full-resolution pass %lld frames (0 = whole chunk)\n",
              device.str().c_str(), dtype == torch::kFloat ? "fp32" : "bf16", opt.vae_path.empty() ? "random" : "file",
              int(cfg.frames_for(T)), (long long)T, opt.decode.tile ? "on" : "off", (long long)opt.decode.pass_frames);
  std::printf("%-10s %10s %10s %12s\n", "size", "time_s", "fps", "peak_GiB");
  nlohmann::json rows = nlohmann::json::array();
  std::stringstream ss(opt.sizes);
  std::string item;
  while (std::getline(ss, item, ',')) rows.push_back(time_size(model, item, T, opt, device));
  const double preview_ms = time_preview(device, dtype);
  nlohmann::json out = {{"bench", "vae_decode_streamed"}, {"device", device.str()}, {"pass_frames", opt.decode.pass_frames},
                        {"preview_projection_ms_21x60x104", preview_ms},
                        {"dtype", dtype == torch::kFloat ? "fp32" : "bf16"}, {"tile", opt.decode.tile},
                        {"weights", opt.vae_path.empty() ? "random" : opt.vae_path}, {"rows", rows}};
  std::ofstream(opt.json_path) << out.dump(2) << "\n";
  std::printf("wrote %s\n", opt.json_path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_options(argc, argv, opt)) return 2;
  try {
    const torch::Device device(opt.device_name);
    const auto dtype = opt.dtype_name.empty() ? (device.is_cuda() ? torch::kBFloat16 : torch::kFloat)
                       : opt.dtype_name == "fp32" ? torch::kFloat
                                                  : torch::kBFloat16;
    if (!opt.latents_path.empty() || !opt.video_path.empty()) convert_file(opt, device, dtype);
    else decode_bench(opt, device, dtype);
  } catch (const std::exception& e) {
    std::cerr << "bench_vae: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// `longshot encode-text`: runs the umT5 text encoder alone — a prompt (tokenizer + encoder) into a
// --text-embeddings file, or given token ids (a safetensors with input_ids / attention_mask) into
// last_hidden_state — and prints load time, encode time and peak memory as one JSON line. The
// GPU parity script (tests/gpu/umt5_parity.py) and docs/benchmarks.md use it.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "app/cli/command.h"
#include "engine/common/cuda_memory.h"
#include "engine/common/error.h"
#include "engine/text/checkpoint.h"
#include "engine/text/prompt_encoder.h"
#include "engine/text/tokenizer.h"
#include "engine/text/umt5.h"

namespace longshot::cli {
namespace {

const char* kEncodeUsage =
    "Usage: longshot encode-text --text-encoder FILE|DIR (--prompt TEXT [--tokenizer FILE|DIR] | --ids FILE)\n"
    "                            [--negative-prompt TEXT] [--device cpu|cuda] [--dtype fp32|bf16|fp16]\n"
    "                            [--layers N] [--reps N] [--out FILE]\n"
    "\n"
    "Runs Wan2.1's umT5 text encoder and prints one JSON line: load_s, encode_s (median of --reps),\n"
    "tokens, peak memory (process RSS; GPU allocator peak with a CUDA LibTorch), the weights' layout.\n"
    "\n"
    "  --text-encoder P   weights: a .safetensors file, a shard index, a diffusers text_encoder/ folder,\n"
    "                     a ComfyUI umt5_xxl file (fp16/bf16/fp8, scaled fp8) or Wan's .pth\n"
    "  --tokenizer P      spiece.model or its folder (default: beside the weights, or ../tokenizer/)\n"
    "  --prompt TEXT      encode one prompt; --out gets 'context' [1, tokens, d] (a --text-embeddings\n"
    "                     file for `longshot generate`), plus 'negative' with --negative-prompt\n"
    "  --ids FILE         encode token ids instead: FILE holds input_ids [B, L] and attention_mask [B, L]\n"
    "                     (int64); --out gets last_hidden_state [B, L, d] float32, padding zeroed\n"
    "  --device D         cpu (default) or cuda     --dtype T  bf16 (default; XXL: 11.4 GB), fp32 (22.7 GB), fp16\n"
    "  --layers N         expect N layers (checks the file; default: read from the file)\n"
    "  --reps N           encode N times, report the median (default 1)\n"
    "Exit codes: 0 ok, 1 invalid value or unreadable file, 2 bad usage.";

double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// The token ids to encode: a prompt (and its negative) through the tokenizer, or a file's
// input_ids / attention_mask.
struct EncodeInputs {
  torch::Tensor ids, mask, neg_ids, neg_mask;
  int64_t tokens = 0, neg_tokens = 0;
  bool truncated = false;
};

EncodeInputs read_inputs(const std::string& weights, const std::string& tokenizer_path, const std::string& ids_path,
                         const std::string* prompt, const std::string* negative) {
  EncodeInputs in;
  if (prompt) {
    text::Tokenizer tok(tokenizer_path.empty() ? text::find_tokenizer(weights) : tokenizer_path);
    const auto t = tok.encode(*prompt);
    in.ids = torch::tensor(t.ids, torch::kLong).unsqueeze(0);
    in.mask = torch::tensor(t.mask, torch::kLong).unsqueeze(0);
    in.tokens = t.length;
    in.truncated = t.truncated;
    if (negative) {
      const auto n = tok.encode(*negative);
      in.neg_ids = torch::tensor(n.ids, torch::kLong).unsqueeze(0);
      in.neg_mask = torch::tensor(n.mask, torch::kLong).unsqueeze(0);
      in.neg_tokens = n.length;
    }
  } else {
    if (!std::filesystem::is_regular_file(ids_path)) throw IoError("token ids file '" + ids_path + "': no such file");
    text::Checkpoint f(ids_path);
    in.ids = f.load("input_ids");
    in.mask = f.contains("attention_mask") ? f.load("attention_mask") : torch::ones_like(in.ids);
    in.tokens = in.mask.ne(0).sum().item<int64_t>();
  }
  return in;
}

int run_encode(const std::vector<std::string>& args) {
  std::string weights, tokenizer_path, prompt, negative, ids_path, out_path, device_text = "cpu", dtype_text;
  bool have_prompt = false, have_negative = false;
  int64_t reps = 1, layers = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (i + 1 >= args.size()) {
      std::cerr << "longshot encode-text: " << flag << " needs a value (or is unknown)\n" << kEncodeUsage << "\n";
      return 2;
    }
    const std::string& value = args[++i];
    if (flag == "--text-encoder") weights = parse_path("text-encoder", value);
    else if (flag == "--tokenizer") tokenizer_path = parse_path("tokenizer", value);
    else if (flag == "--prompt") prompt = value, have_prompt = true;
    else if (flag == "--negative-prompt") negative = value, have_negative = true;
    else if (flag == "--ids") ids_path = parse_path("ids", value);
    else if (flag == "--out") out_path = parse_path("out", value);
    else if (flag == "--device") device_text = value;
    else if (flag == "--dtype") dtype_text = value;
    else if (flag == "--reps") reps = parse_int("reps", value, 1, 1000);
    else if (flag == "--layers") layers = parse_int("layers", value, 1, 1000);
    else {
      std::cerr << "longshot encode-text: unknown flag " << flag << "\n" << kEncodeUsage << "\n";
      return 2;
    }
  }
  if (weights.empty() || have_prompt == !ids_path.empty()) {
    std::cerr << "longshot encode-text: give --text-encoder and exactly one of --prompt / --ids\n" << kEncodeUsage << "\n";
    return 2;
  }
  if (device_text != "cpu" && device_text != "cuda") throw ParameterError("device", "cpu or cuda, got '" + device_text + "'");
  const torch::Device device = device_text == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (device.is_cuda() && !torch::cuda::is_available()) throw ParameterError("device", "cuda asked for, but no GPU is usable");
  if (dtype_text.empty()) dtype_text = "bf16";
  const std::map<std::string, torch::ScalarType> dtypes = {
      {"fp32", torch::kFloat}, {"bf16", torch::kBFloat16}, {"fp16", torch::kHalf}};
  if (!dtypes.count(dtype_text)) throw ParameterError("dtype", "fp32, bf16 or fp16, got '" + dtype_text + "'");

  // Inputs first (fail before the long load): token ids from the file or the tokenizer.
  const EncodeInputs in = read_inputs(weights, tokenizer_path, ids_path, have_prompt ? &prompt : nullptr,
                                      have_prompt && have_negative ? &negative : nullptr);
  const torch::Tensor& ids = in.ids;
  const int64_t tokens = in.tokens;

  reset_peak_cuda_memory(device);
  text::UMT5LoadOptions lo;
  lo.device = device;
  lo.dtype = dtypes.at(dtype_text);
  if (layers > 0) {
    auto c = text::UMT5Config::xxl();
    c.num_layers = layers;
    lo.expect = std::make_shared<text::UMT5Config>(c);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto enc = text::UMT5Encoder::load(weights, lo);
  sync(device);
  const double load_s = seconds(t0);

  std::vector<double> times;
  torch::Tensor out;
  for (int64_t r = 0; r < reps; ++r) {
    t0 = std::chrono::steady_clock::now();
    out = enc.encode(ids, in.mask);
    sync(device);
    times.push_back(seconds(t0));
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  std::map<std::string, torch::Tensor> tensors;
  if (have_prompt) {
    // Wan's contract: the prompt's rows only (the DiT zero-pads back to text_len).
    tensors["context"] = out.narrow(1, 0, tokens).to(torch::kCPU, torch::kFloat).contiguous();
    if (have_negative)
      tensors["negative"] = enc.encode(in.neg_ids, in.neg_mask).narrow(1, 0, in.neg_tokens).to(torch::kCPU, torch::kFloat).contiguous();
  } else {
    tensors["last_hidden_state"] = out.to(torch::kCPU, torch::kFloat).contiguous();
  }
  if (!out_path.empty()) text::write_checkpoint_safetensors(out_path, tensors);

  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  nlohmann::json j;
  j["weights"] = weights;
  j["layout"] = text::to_string(enc.layout());
  j["config"] = enc.config().describe();
  j["fp8"] = enc.has_fp8();
  j["device"] = device_text;
  j["dtype"] = dtype_text;
  j["threads"] = torch::get_num_threads();
  j["tokens"] = tokens;
  j["batch"] = ids.size(0);
  j["truncated"] = in.truncated;
  j["load_s"] = load_s;
  j["encode_s"] = sorted[sorted.size() / 2];
  j["encode_s_all"] = times;
  j["weight_gb"] = double(enc.weight_bytes()) / 1e9;
  j["peak_rss_gb"] = double(ru.ru_maxrss) * 1024.0 / 1e9;
  if (const int64_t peak = peak_cuda_memory(device); peak >= 0) j["peak_gpu_gb"] = double(peak) / 1e9;
  if (!out_path.empty()) j["out"] = out_path;
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

Command encode_text_command() {
  return {"encode-text", "run Wan2.1's umT5 text encoder on a prompt or token ids: embeddings, time, memory",
          kEncodeUsage, run_encode};
}

}  // namespace longshot::cli

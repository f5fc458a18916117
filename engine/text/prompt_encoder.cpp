// Prompt encoder: tokenizer + umT5 + the on-disk embedding cache.
#include "engine/text/prompt_encoder.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/text/checkpoint.h"
#include "engine/text/tokenizer.h"

namespace longshot::text {

namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::string resolve_cache_dir(const std::string& option) {
  if (option == "none") return "";
  if (!option.empty()) return option;
  if (const char* d = std::getenv("LONGSHOT_CACHE_DIR"); d && *d) return (fs::path(d) / "text").string();
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return (fs::path(d) / "longshot" / "text").string();
  if (const char* d = std::getenv("HOME"); d && *d) return (fs::path(d) / ".cache" / "longshot" / "text").string();
  return "";
}

std::string find_tokenizer(const std::string& weights) {
  std::error_code ec;
  const fs::path w(weights);
  const fs::path dir = fs::is_directory(w, ec) ? w : w.parent_path();
  const fs::path here = dir / "spiece.model", sibling = dir.parent_path() / "tokenizer" / "spiece.model";
  if (fs::is_regular_file(here, ec)) return here.string();
  if (fs::is_regular_file(sibling, ec)) return sibling.string();
  throw IoError("no umT5 tokenizer given and none found beside the text encoder weights (looked for '" + here.string() +
                "' and '" + sibling.string() + "'); give the spiece.model file (--tokenizer)");
}

PromptEncoder::PromptEncoder(PromptEncoderOptions options) : options_(std::move(options)) {
  if (options_.weights.empty()) throw ParameterError("text-encoder", "no umT5 weights given");
  std::error_code ec;
  if (!fs::exists(options_.weights, ec)) throw IoError("text encoder weights '" + options_.weights + "': no such file or folder");
  const auto tok = options_.tokenizer.empty() ? find_tokenizer(options_.weights) : options_.tokenizer;
  tokenizer_ = std::make_unique<Tokenizer>(tok, options_.max_len);
  cache_dir_ = resolve_cache_dir(options_.cache_dir);
  weights_identity_ = checkpoint_identity(options_.weights);
}

PromptEncoder::~PromptEncoder() = default;

UMT5Encoder& PromptEncoder::encoder() {
  if (!encoder_.loaded()) {
    const auto t0 = std::chrono::steady_clock::now();
    UMT5LoadOptions lo;
    lo.expect = options_.expect;
    lo.device = options_.device;
    lo.dtype = options_.dtype;
    encoder_ = UMT5Encoder::load(options_.weights, lo);
    stats_.load_seconds = seconds_since(t0);
    if (tokenizer_->vocab_size() > encoder_.config().vocab)
      throw ShapeError("tokenizer '" + tokenizer_->path() + "' has " + std::to_string(tokenizer_->vocab_size()) +
                       " pieces but the text encoder '" + options_.weights + "' embeds only " +
                       std::to_string(encoder_.config().vocab) + ": they are not a pair");
  }
  return encoder_;
}

void PromptEncoder::release() { encoder_.release(); }

std::string PromptEncoder::cache_key(const std::string& prompt) {
  // Everything the embedding depends on; the prompt last (it may hold any byte).
  return std::string("longshot-umt5-v1\n") + weights_identity_ + "\n" + tokenizer_->identity() + "\n" +
         c10::toString(options_.dtype) + "\n" + c10::DeviceTypeName(options_.device.type()) + "\n" +
         std::to_string(options_.max_len) + "\n" + prompt;
}

std::string PromptEncoder::cache_path(const std::string& prompt) {
  if (cache_dir_.empty()) return "";
  char name[64];
  const auto key = cache_key(prompt);
  std::snprintf(name, sizeof name, "%016llx%016llx.safetensors", (unsigned long long)fnv1a(key),
                (unsigned long long)fnv1a(key, 0x84222325cbf29ce4ull));
  return (fs::path(cache_dir_) / name).string();
}

torch::Tensor PromptEncoder::encode(const std::string& prompt) {
  stats_ = {};
  const auto tokens = tokenizer_->encode(prompt);
  stats_.tokens = tokens.length;
  stats_.truncated = tokens.truncated;
  const auto key = cache_key(prompt);
  const auto file = cache_path(prompt);
  std::error_code ec;
  if (!file.empty() && fs::exists(file, ec)) {
    try {
      io::SafetensorsFile f(file);
      const auto m = f.metadata().find("key");
      if (m != f.metadata().end() && m->second == key && f.contains("context")) {
        auto ctx = f.load("context", torch::kFloat);
        if (ctx.dim() == 3 && ctx.size(0) == 1 && ctx.size(1) == tokens.length && ctx.size(1) <= options_.max_len) {
          stats_.cache_hit = true;
          auto out = torch::zeros({1, options_.max_len, ctx.size(2)}, torch::kFloat);
          out.narrow(1, 0, ctx.size(1)).copy_(ctx);
          return out;
        }
      }
      SPDLOG_WARN("text embedding cache: '{}' does not match this prompt; encoding again", file);
    } catch (const IoError& e) {
      SPDLOG_WARN("text embedding cache: '{}' is unreadable ({}); encoding again", file, e.what());
    }
  }
  auto& enc = encoder();
  const auto t0 = std::chrono::steady_clock::now();
  auto ids = torch::tensor(tokens.ids, torch::kLong).unsqueeze(0);
  auto mask = torch::tensor(tokens.mask, torch::kLong).unsqueeze(0);
  auto out = enc.encode(ids, mask).to(torch::kCPU, torch::kFloat);
  stats_.encode_seconds = seconds_since(t0);
  if (!file.empty()) {
    try {
      fs::create_directories(cache_dir_, ec);
      // Only the prompt's rows: Wan slices to the true length anyway, and it keeps files small.
      io::write_safetensors(file, {{"context", out.narrow(1, 0, tokens.length).contiguous()}}, {{"key", key}});
    } catch (const std::exception& e) {
      SPDLOG_WARN("text embedding cache: cannot write '{}' ({}); the embedding is used uncached", file, e.what());
    }
  }
  return out;
}

}  // namespace longshot::text

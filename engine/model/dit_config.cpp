// The config registry (one explicit table). Wan2.1 facts: see docs in shared research §4 (dim/ffn/heads/layers/freq/text).
#include "engine/model/dit_config.h"

#include <mutex>

#include "engine/common/error.h"
#include "engine/model/builtin_model.h"

namespace longshot::model {

void DiTConfig::validate() const {
  auto need = [](bool ok, const char* field, const std::string& why) {
    if (!ok) throw ParameterError(field, why);
  };
  need(!name.empty(), "name", "a config needs a name");
  need(dim > 0 && num_heads > 0 && dim % num_heads == 0, "num_heads", "dim must be a positive multiple of num_heads");
  need(head_dim() % 2 == 0 && head_dim() >= 6, "dim", "head_dim must be even and >= 6 for the 3D RoPE split");
  need(ffn_dim > 0, "ffn_dim", "must be positive");
  need(freq_dim > 0 && freq_dim % 2 == 0, "freq_dim", "must be positive and even");
  need(text_dim > 0 && text_len > 0, "text_dim", "text_dim and text_len must be positive");
  need(in_channels > 0 && out_channels > 0, "in_channels", "channel counts must be positive");
  need(position_channels_allowed(position_channels), "position_channels", "must be 0 or 2 (x and y planes)");
  need(num_layers > 0, "num_layers", "must be positive");
  need(patch[0] > 0 && patch[1] > 0 && patch[2] > 0, "patch", "patch sizes must be positive");
  need(temporal_stride > 0 && spatial_stride > 0, "temporal_stride", "latent strides must be positive");
}

const std::string& wan_negative_prompt() {
  // Chinese, as Wan's T2V recipe feeds it to umT5 (roughly: oversaturated, overexposed, static,
  // blurry, subtitles, worst quality, JPEG artifacts, deformed hands and faces, extra fingers, fused
  // fingers, cluttered background, three legs, crowded background, walking backwards).
  static const std::string prompt = "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";
  return prompt;
}

namespace {

DiTConfig wan_1_3b() {
  DiTConfig c;
  c.name = "wan2.1-t2v-1.3b";
  c.summary = "Wan2.1 text-to-video 1.3B (dim 1536, 30 layers, 12 heads); weights from --model PATH";
  c.dim = 1536; c.ffn_dim = 8960; c.num_heads = 12; c.num_layers = 30;
  c.default_steps = 50; c.default_shift = 5.0; c.default_guidance = 5.0;
  c.default_negative_prompt = wan_negative_prompt();
  return c;
}

DiTConfig wan_14b() {
  DiTConfig c;
  c.name = "wan2.1-t2v-14b";
  c.summary = "Wan2.1 text-to-video 14B (dim 5120, 40 layers, 40 heads); weights from --model PATH";
  c.dim = 5120; c.ffn_dim = 13824; c.num_heads = 40; c.num_layers = 40;
  c.default_steps = 50; c.default_shift = 5.0; c.default_guidance = 5.0;
  c.default_negative_prompt = wan_negative_prompt();
  return c;
}

// Random weights, pixel-space latents (3 channels, strides 1): the whole pipeline runs on a CPU
// in seconds, which is what the tests and the first end-to-end path need.
DiTConfig tiny() {
  DiTConfig c;
  c.name = "tiny";
  c.summary = "test model: Wan2.1 architecture, dim 64, 3 layers, 2 heads, random weights, pixel space";
  c.dim = 64; c.ffn_dim = 128; c.freq_dim = 32; c.text_dim = 32; c.text_len = 16;
  c.in_channels = 3; c.out_channels = 3; c.num_heads = 2; c.num_layers = 3;
  c.temporal_stride = 1; c.spatial_stride = 1;
  c.default_steps = 4; c.default_shift = 3.0; c.default_guidance = 3.0;
  c.default_sampler = "euler";  // the tests' reference path
  return c;
}

// The config table: an explicit list built on first use, so a lookup needs no earlier call (no
// static-init self-registration: a static library drops the object files nothing references).
// register_config adds or replaces entries at run time (--random-weights' per-process config).
struct Registry {
  std::mutex mutex;
  std::vector<DiTConfig> configs{wan_1_3b(), wan_14b(), tiny(), builtin_config(kBuiltinName),
                                 builtin_config(kBuiltinSparseName)};
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

std::vector<DiTConfig> registered_configs() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.configs;
}

void register_config(const DiTConfig& config) {
  config.validate();
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (auto& c : r.configs) {
    if (c.name == config.name) {
      c = config;
      return;
    }
  }
  r.configs.push_back(config);
}

bool has_config(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& c : r.configs)
    if (c.name == name) return true;
  return false;
}

DiTConfig find_config(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::string known;
  for (const auto& c : r.configs) {
    if (c.name == name) return c;
    known += (known.empty() ? "" : ", ") + c.name;
  }
  throw ParameterError("model", "unknown model config '" + name + "' (known: " + known + ", or a .safetensors path)");
}

}  // namespace longshot::model

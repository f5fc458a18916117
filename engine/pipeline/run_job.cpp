// A generation job: validate → load model (cached) → encode prompts → seeded noise → per step:
// policy (re-created when the settings change), conditional (+ unconditional) forward, guidance,
// Euler step, events → decode. Sections: [validation] · [heatmap] · [job]
#include "engine/pipeline/run_job.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include <torch/cuda.h>

#include <spdlog/spdlog.h>

#include "engine/common/address_space.h"
#include "engine/common/cuda_memory.h"
#include "engine/common/error.h"
#include "engine/model/builtin_model.h"
#include "engine/model/conditioning_impl.h"
#include "engine/model/graph_forward.h"
#include "engine/model/model_source.h"
#include "engine/model/weights.h"
#include "engine/pipeline/job_failure.h"
#include "engine/pipeline/regime.h"
#include "engine/sampler/flow_matching.h"
#include "engine/sampler/sample_loop.h"

namespace longshot::pipeline {

// ---- [validation] -------------------------------------------------------------------------------

bool runs_on_cuda(const std::string& device) {
  if (device == "cuda" && !torch::cuda::is_available())
    throw ParameterError("device", "cuda requested but no CUDA device is visible to LibTorch");
  return device == "cuda" || (device == "auto" && torch::cuda::is_available());
}

void validate_request(const GenerationRequest& r) {
  if (r.frames < 1 || r.frames > 4096) throw ParameterError("frames", "must be in [1, 4096], got " + std::to_string(r.frames));
  if (r.width < 2 || r.width > 8192) throw ParameterError("width", "must be in [2, 8192], got " + std::to_string(r.width));
  if (r.height < 2 || r.height > 8192) throw ParameterError("height", "must be in [2, 8192], got " + std::to_string(r.height));
  if (r.steps < 1 || r.steps > 1000) throw ParameterError("steps", "must be in [1, 1000], got " + std::to_string(r.steps));
  if (!(r.guidance >= 0) || !std::isfinite(r.guidance)) throw ParameterError("guidance", "must be finite and >= 0");
  if (!(r.shift > 0) || !std::isfinite(r.shift)) throw ParameterError("shift", "must be finite and > 0");
  if (!(r.fps > 0) || r.fps > 240) throw ParameterError("fps", "must be in (0, 240]");
  // Before any model loads: a named sampler and the σ grid ("" is the model's own sampler).
  const auto grid = sampler::parse_grid(r.schedule);
  if (!r.sampler.empty()) sampler::make_schedule(r.sampler, r.steps, r.shift, grid);
  if (r.model.empty() && r.dit_file.empty()) throw ParameterError("model", "is empty (name a model, or give its DiT file)");
  if (r.device != "auto" && r.device != "cpu" && r.device != "cuda")
    throw ParameterError("device", "must be auto, cpu or cuda, got '" + r.device + "'");
  model::parse_linear_precision(r.precision);  // the device check for fp8 comes with the model
  model::parse_residual_precision(r.residual);  // and bf16's dtype check
  // CUDA graphs are a GPU feature asked for by name: on a CPU they are an error, not a silent no-op
  // (the device "auto" resolves to is checked in run_job).
  if (r.cuda_graphs && r.device == "cpu") throw ParameterError("cuda-graphs", "needs a CUDA device, the job asks for the CPU");
  if (r.cuda_graphs && !model::cuda_graphs_supported())
    throw ParameterError("cuda-graphs", "this build's LibTorch has no CUDA, so there is nothing to capture");
  if (r.max_gpu_memory < 0) throw ParameterError("max-gpu-memory", "must be >= 0 bytes (0: no cap)");
  const auto& a = r.attention;
  attention::resolve_params(attention::find_policy(a.mode), a.params);
  if (a.dense_warmup_steps < 0) throw ParameterError("dense-steps", "must be >= 0");
  if (a.dense_first_layers < 0 || a.dense_last_layers < 0) throw ParameterError("dense-layers", "must be >= 0");
  if (a.block_size < 16 || a.block_size > 1024) throw ParameterError("block-size", "must be in [16, 1024]");
  if (a.adapter.empty()) throw ParameterError("adapter", "is empty (give auto, none or an adapter file)");
  if (!a.regime.empty() && a.mode == "dense")
    throw ParameterError("regime", "needs a sparse mode with a calibration table (e.g. --mode dynamicrad), not dense");
}

std::vector<int64_t> latent_shape(const GenerationRequest& r, const model::DiTConfig& c) {
  const int ts = c.temporal_stride, ss = c.spatial_stride;
  if ((r.frames - 1) % ts != 0)
    throw ParameterError("frames", "model " + c.name + " needs 1 + " + std::to_string(ts) + "k frames, got " +
                                       std::to_string(r.frames));
  const int64_t t = ts == 1 ? r.frames : 1 + (r.frames - 1) / ts;
  const int64_t unit_h = int64_t(ss) * c.patch[1], unit_w = int64_t(ss) * c.patch[2];
  if (r.width % unit_w) throw ParameterError("width", "must be a multiple of " + std::to_string(unit_w) + " for model " + c.name);
  if (r.height % unit_h) throw ParameterError("height", "must be a multiple of " + std::to_string(unit_h) + " for model " + c.name);
  if (t % c.patch[0]) throw ParameterError("frames", "latent frames must be a multiple of the temporal patch");
  return {c.in_channels, t, r.height / ss, r.width / ss};
}

// ---- [heatmap] ----------------------------------------------------------------------------------

AttentionHeatmap make_heatmap(const torch::Tensor& probs, const attention::TokenGrid& grid, int layer, int head,
                              int64_t query, int64_t max_side) {
  AttentionHeatmap hm;
  hm.layer = layer;
  hm.head = head;
  hm.query_token = query;
  hm.source_grid = grid;
  const int64_t ft = (grid.t + max_side - 1) / max_side, fh = (grid.h + max_side - 1) / max_side,
                fw = (grid.w + max_side - 1) / max_side;
  hm.grid = attention::TokenGrid{(grid.t + ft - 1) / ft, (grid.h + fh - 1) / fh, (grid.w + fw - 1) / fw};
  hm.values.assign(size_t(hm.grid.size()), 0.0f);
  auto p = probs.to(torch::kCPU, torch::kFloat).contiguous();
  const float* v = p.data_ptr<float>();
  for (int64_t i = 0; i < std::min<int64_t>(p.numel(), grid.size()); ++i) {
    int64_t t, h, w;
    grid.coords(i, t, h, w);
    hm.values[size_t(hm.grid.index(t / ft, h / fh, w / fw))] += v[i];
  }
  return hm;
}

// ---- [job] --------------------------------------------------------------------------------------

namespace {

// Masks leave the job in events (studio history, traces): without their GPU copies, so what the
// studio keeps never pins device memory. The policy's own cached mask keeps its copy.
attention::BlockMaskPtr host_only(const attention::BlockMaskPtr& mask) {
  if (!mask || (!mask->attached_device_copy() && !mask->deferred_cols)) return mask;
  auto copy = std::make_shared<attention::BlockMask>(*mask);
  copy->fetch_columns();  // a GPU-built mask's columns come to the host here, once per event
  copy->clear_device_copy();
  return copy;
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// The mask adapter the settings ask for (nullptr: none) and its file in `path`. Files load once
// onto the model's device and stay in `loaded` (the model cache's) for later jobs; the warnings
// about a block size or mode parameters other than the adapter's come with every use.
std::shared_ptr<const model::MaskAdapter> resolve_adapter(
    const AttentionSettings& s, const model::DiTConfig& config, torch::Device device, torch::ScalarType dtype,
    std::map<std::string, std::shared_ptr<const model::MaskAdapter>>& loaded, std::string& path) {
  path.clear();
  if (s.adapter == "none" || s.mode == "dense") return nullptr;
  path = s.adapter == "auto" ? model::shipped_adapter_path(config, s.mode) : s.adapter;
  if (path.empty()) return nullptr;
  if (s.adapter != "auto" && !std::filesystem::exists(path)) {
    throw ParameterError("adapter", "no such file '" + path + "' (give auto, none or an adapter file)");
  }
  auto& slot = loaded[path];
  if (!slot) {
    auto ad = std::make_shared<model::MaskAdapter>(model::load_adapter(path, config));
    ad->to(device, dtype);
    spdlog::info("mask adapter '{}': trained under {} {} (block {}, rank {})", path, ad->mode, ad->params, ad->block_size,
                 ad->rank);
    slot = std::move(ad);
  }
  const model::MaskAdapter& ad = *slot;
  if (ad.block_size != s.block_size) {
    spdlog::warn("mask adapter '{}' was trained with block {}, the job uses block {}", path, ad.block_size, s.block_size);
  }
  // Trained under other mode parameters (e.g. keep_ratio 0.2 used at 0.3): it still applies, but
  // say so — an adapter fits the mask it was distilled on.
  attention::ParamValues trained;
  try {
    std::stringstream list(ad.params);
    for (std::string kv; std::getline(list, kv, ',');)
      if (!kv.empty()) attention::parse_param_assignment(kv, trained);
  } catch (const ParameterError&) {
    trained.clear();
  }
  const auto used = attention::resolve_params(attention::find_policy(s.mode), s.params);
  for (const auto& [key, value] : trained) {
    const auto it = used.find(key);
    if (it != used.end() && std::abs(it->second - value) > 1e-9) {
      spdlog::warn("mask adapter '{}' was trained with {}={}, the job uses {}", path, key, value, it->second);
    }
  }
  return slot;
}

}  // namespace

model::ModelSpec model_spec(const GenerationRequest& r) {
  model::ModelSpec spec;
  spec.model = r.model;
  spec.dit = r.dit_file;
  spec.text_encoder = r.text_encoder_file;
  spec.tokenizer = r.tokenizer_file;
  spec.vae = r.vae_file;
  return spec;
}

model::ResolvedModel resolve_request_model(const GenerationRequest& r) {
  // Precomputed embeddings stand in for the text encoder and its tokenizer.
  std::vector<std::string> allow;
  if (!r.text_embeddings.empty()) allow = {model::kComponentTextEncoder, model::kComponentTokenizer};
  return model::resolve_model(model_spec(r), allow);
}

std::unique_ptr<model::TextEncoder> model_text_encoder(const model::ResolvedModel& resolved, const std::string& embeddings,
                                                       torch::Device device, torch::ScalarType dtype) {
  text::PromptEncoderOptions umt5;
  umt5.weights = resolved.text_encoder;
  umt5.tokenizer = resolved.tokenizer;
  umt5.device = device;
  umt5.dtype = dtype;
  return model::make_text_encoder(resolved.config, embeddings, umt5);
}

namespace {

struct EncodedPrompts {
  torch::Tensor cond, uncond;  // uncond only with classifier-free guidance
};

// Memory plan: the text encoder runs first and is released before the DiT samples (umT5-XXL is
// 11 GB in bf16), unless the request keeps it (in the cache) for the next job.
EncodedPrompts encode_prompts(const GenerationRequest& request, const model::ResolvedModel& resolved, ModelCache& cache,
                              torch::Device device, torch::ScalarType dtype, bool use_cfg) {
  const std::string text_key = resolved.key() + "|" + request.text_embeddings + "|" + device.str();
  std::shared_ptr<model::TextEncoder> encoder;
  if (cache.text_encoder && cache.text_key == text_key) encoder = cache.text_encoder;
  else encoder = model_text_encoder(resolved, request.text_embeddings, device, dtype);
  cache.text_encoder.reset();
  cache.text_key.clear();
  EncodedPrompts out;
  out.cond = encoder->encode(request.prompt).to(device);
  if (use_cfg) out.uncond = encoder->encode(request.negative_prompt).to(device);
  if (request.keep_text_encoder) {
    cache.text_encoder = encoder;
    cache.text_key = text_key;
  } else if (auto* umt5_encoder = dynamic_cast<model::UMT5TextEncoder*>(encoder.get())) {
    umt5_encoder->release();
  }
  return out;
}

// The DiT for this model, seed and device: the cached one, else loaded after the old one (and the
// adapters loaded for it) are dropped.
model::WanDiT& cached_dit(ModelCache& cache, const model::ResolvedModel& resolved, uint64_t seed, torch::Device device,
                          torch::ScalarType dtype, bool offload) {
  const std::string key = resolved.key() + "|" + std::to_string(seed) + "|" + device.str() + (offload ? "|offload" : "");
  if (cache.key != key || !cache.model) {
    cache.model = nullptr;
    cache.adapters.clear();  // loaded onto the old model's device and for its config
    cache.key.clear();
    cache.model = model::load_dit(resolved, seed, device, dtype, offload);
    cache.key = key;
  }
  return cache.model;
}

// Seeded noise for the latent shape, or the context's own (parity tests) when it fits.
torch::Tensor job_noise(const JobContext& ctx, const std::vector<int64_t>& shape, uint64_t seed, torch::Device device) {
  auto noise = sampler::seeded_noise({1, shape[0], shape[1], shape[2], shape[3]}, seed, device);
  if (ctx.initial_noise.defined()) {
    if (ctx.initial_noise.sizes() != noise.sizes())
      throw ShapeError("initial noise has shape " + c10::str(ctx.initial_noise.sizes()) + ", the job needs " +
                       c10::str(noise.sizes()));
    noise = ctx.initial_noise.to(device, torch::kFloat);
  }
  return noise;
}

// What the sampling loop's hooks share across a job: the attention settings (which may change
// between steps through ctx.take_settings) and their policy, each step's plan and probe, what its
// conditional forward learned, its timings, and the job's totals.
class JobSteps {
 public:
  struct Setup {
    const GenerationRequest& request;
    JobContext& ctx;
    const model::DiTConfig& config;
    model::WanDiT& dit;
    ModelCache& cache;
    torch::Device device;
    torch::ScalarType dtype;
    std::string& adapter_path;
    attention::TokenGrid grid;
    model::LatentDecoder& preview;  // decodes each step's x0 estimate when previews are on
    int& completed;                 // steps done, for JobCancelled
    const RegimeChoice& regime;     // the job's motion regime: its values stay under mid-job changes
  };

  explicit JobSteps(const Setup& s)
      : s_(s),
        settings_(s.request.attention),
        inspect_{s.request.inspect_layer, s.request.inspect_head, s.request.inspect_query} {
    policy_ = attention::create_policy(settings_.mode, settings_.params);
    policy_->reset();
    // --cuda-graphs: forwards go through the job's graphs (graph_forward.h), which run eagerly
    // (saying why, once) where a forward cannot be captured; freed with the job.
    if (s.request.cuda_graphs) graphs_ = std::make_unique<model::GraphForward>(s.dit);
    prev_mode_ = settings_.mode;
    prev_params_ = policy_->params();
    t_job_ = now_ms();
  }

  sampler::SampleHooks hooks(const EncodedPrompts& prompts) {
    sampler::SampleHooks h;
    h.cancel = s_.ctx.cancel;
    h.on_step_begin = [this](int step) { begin_step(step); };
    h.cond = [this, &prompts](const torch::Tensor& x, const torch::Tensor& t, int) {
      auto out = forward(x, t, prompts.cond, probe_);
      stats_ = std::move(out.stats);
      attention_ms_ = stats_.attention_ms;
      mask_ms_ = stats_.mask_ms;
      return out.velocity;
    };
    if (prompts.uncond.defined()) {
      // The unconditional pass: the same plan (masks and schedule), nothing inspected or recorded.
      h.uncond = [this, &prompts](const torch::Tensor& x, const torch::Tensor& t, int) {
        auto out = forward(x, t, prompts.uncond, {});
        attention_ms_ += out.stats.attention_ms;
        mask_ms_ += out.stats.mask_ms;
        return out.velocity;
      };
      h.guidance = s_.request.guidance;
    }
    h.on_step_end = [this](const sampler::StepOutcome& o) { end_step(o); };
    return h;
  }

  double t_job() const { return t_job_; }
  double total_attention_ms() const { return total_attention_; }
  double sparsity_sum() const { return sparsity_sum_; }  // mean sparsity counts dense steps as 0

 private:
  model::DiTOutput forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& text,
                           const model::AttentionProbe& probe) {
    return graphs_ ? graphs_->forward_with_stats(x, t, text, plan_, probe)
                   : s_.dit->forward_with_stats(x, t, text, plan_, probe);
  }

  // New settings or inspect target, then the step's plan and probe.
  void begin_step(int step) {
    auto& ctx = s_.ctx;
    if (ctx.take_inspect) {
      if (auto changed = ctx.take_inspect()) inspect_ = *changed;
    }
    if (ctx.take_settings) {
      if (auto changed = ctx.take_settings()) {
        *changed = keep_regime(s_.regime, std::move(*changed));
        attention::resolve_params(attention::find_policy(changed->mode), changed->params);
        settings_ = *changed;
        policy_ = attention::create_policy(settings_.mode, settings_.params);
        s_.dit->adapter = resolve_adapter(settings_, s_.config, s_.device, s_.dtype, s_.cache.adapters, s_.adapter_path);
      }
    }
    t_step_ = now_ms();
    plan_ = model::AttentionPlan();
    plan_.policy = policy_.get();
    plan_.dense_step = step < settings_.dense_warmup_steps;
    plan_.dense_first_layers = settings_.dense_first_layers;
    plan_.dense_last_layers = settings_.dense_last_layers;
    plan_.riflex = settings_.riflex;
    plan_.block_size = settings_.block_size;
    plan_.step = step;
    plan_.num_steps = s_.request.steps;
    plan_.cancel = ctx.cancel;
    plan_.use_adapter = s_.dit->adapter != nullptr;
    const auto& request = s_.request;
    probe_ = model::AttentionProbe();
    probe_.keep_masks = request.record_masks;
    if (request.previews) {
      probe_.layer = std::clamp(inspect_.layer, 0, int(s_.config.num_layers) - 1);
      probe_.head = std::clamp(inspect_.head, 0, int(s_.config.num_heads) - 1);
      probe_.query = inspect_.query;
      probe_.heatmap = true;
      probe_.recall = request.measure_recall;
    } else if (request.measure_recall) {
      probe_.layer = std::clamp(inspect_.layer, 0, int(s_.config.num_layers) - 1);
      probe_.recall = true;
    }
    stats_ = model::AttentionStats();
  }

  // StepFinished: the mode (and whether it changed), timings, sparsity, the inspected mask and
  // heatmap, the recorded masks, a preview.
  void end_step(const sampler::StepOutcome& o) {
    const auto& request = s_.request;
    const auto& grid = s_.grid;
    const int step = o.step;
    StepFinished ev;
    ev.job_id = s_.ctx.job_id;
    ev.step = step;
    ev.num_steps = request.steps;
    ev.mode = settings_.mode;
    ev.mode_params = policy_->params();
    ev.mode_changed = step > 0 && (settings_.mode != prev_mode_ || ev.mode_params != prev_params_);
    prev_mode_ = settings_.mode;
    prev_params_ = ev.mode_params;
    ev.dense_step = plan_.dense_step;
    if (request.previews)
      ev.preview =
          std::make_shared<const Video>(s_.preview.decode(o.sampler->predict_x0(*o.x, *o.velocity, step)[0], request.fps));
    if (o.x_next->is_cuda()) torch::cuda::synchronize();
    ev.step_ms = now_ms() - t_step_;
    ev.attention_ms = attention_ms_;
    ev.mask_ms = mask_ms_;
    ev.sparsity = stats_.sparsity;
    ev.mean_sparsity = stats_.mean_sparsity();
    ev.recall_estimate = stats_.recall;
    ev.mask = host_only(stats_.inspected_mask);
    ev.mask_from_cache = stats_.inspected_mask_cached;
    ev.mask_layer = probe_.layer < 0 ? 0 : probe_.layer;
    ev.mask_head = probe_.head;
    if (stats_.inspected_probs.defined()) {
      int64_t query = inspect_.query;
      if (query < 0 || query >= grid.size()) query = grid.index(grid.t / 2, grid.h / 2, grid.w / 2);
      ev.heatmap = std::make_shared<const AttentionHeatmap>(
          make_heatmap(stats_.inspected_probs, grid, ev.mask_layer, ev.mask_head, query));
    }
    ev.layer_masks = std::move(stats_.layer_masks);
    for (auto& m : ev.layer_masks) m = host_only(m);
    const int completed = s_.completed = step + 1;
    ev.eta_ms = (now_ms() - t_job_) / completed * (request.steps - completed);
    total_attention_ += attention_ms_;
    sparsity_sum_ += ev.mean_sparsity;
    s_.ctx.publish(std::move(ev));
  }

  Setup s_;
  AttentionSettings settings_;
  std::unique_ptr<attention::MaskPolicy> policy_;
  std::string prev_mode_;
  attention::ParamValues prev_params_;
  InspectTarget inspect_;
  model::AttentionPlan plan_;
  model::AttentionProbe probe_;
  model::AttentionStats stats_;
  std::unique_ptr<model::GraphForward> graphs_;  // with request.cuda_graphs
  double t_job_ = 0, t_step_ = 0, attention_ms_ = 0, mask_ms_ = 0;
  double total_attention_ = 0, sparsity_sum_ = 0;
};

// The real decoder (the model's VAE) loads only after sampling: never resident during it.
std::shared_ptr<const Video> decode_video(const torch::Tensor& x, const model::ResolvedModel& resolved,
                                          torch::Device device, double fps) {
  model::VaeDecoderOptions vae_options;
  vae_options.path = resolved.vae;
  vae_options.device = device;
  auto final_decoder = model::make_decoder(resolved.config, vae_options);
  return std::make_shared<const Video>(final_decoder->decode(x[0], fps));
}

}  // namespace

void run_job(const GenerationRequest& request_in, JobContext& ctx) {
  const uint64_t id = ctx.job_id;
  int completed = 0;
  JobProgress progress;  // for the failure message: where an out-of-memory error hit
  try {
    validate_request(request_in);
    ensure_address_space_headroom();  // a low `ulimit -v` is an error, not an OpenBLAS hang (F5)
    // "builtin" (the request's default) and "longshot-builtin" name the built-in model;
    // "longshot-builtin-sparse" its sparsity-aware fine-tune.
    GenerationRequest request = request_in;
    const model::ResolvedModel resolved = resolve_request_model(request);
    if (resolved.layout == model::ModelLayout::Registered) request.model = resolved.name;  // "builtin" → its name
    const auto& config = resolved.config;
    const auto shape = latent_shape(request, config);

    const bool use_cuda = runs_on_cuda(request.device);
    const torch::Device device = use_cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    if (request.cuda_graphs && !use_cuda) throw ParameterError("cuda-graphs", "needs a CUDA device, none is visible");
    progress.cuda = use_cuda;
    const auto dtype = use_cuda ? torch::kBFloat16 : torch::kFloat;

    // The cap is process-wide: every CUDA job sets its own (0 lifts the last one's).
    if (request.max_gpu_memory > 0 || device.is_cuda()) limit_cuda_memory(device, request.max_gpu_memory);
    reset_peak_cuda_memory(device);  // the job's peak: what torch.cuda.max_memory_allocated reports
    const double t_begin = now_ms();
    ModelCache local;
    ModelCache& cache = ctx.cache ? *ctx.cache : local;
    torch::NoGradGuard no_grad;

    const bool use_cfg = std::abs(request.guidance - 1.0) > 1e-9;
    progress.stage = JobStage::EncodingPrompts;
    const EncodedPrompts prompts = encode_prompts(request, resolved, cache, device, dtype, use_cfg);
    const double encode_ms = now_ms() - t_begin;
    // The motion regime (regime.h): the router reads the prompt's embedding, and the regime's
    // calibrated parameters become the mode's before any policy is made.
    // The job's token grid: its frames pick a calibration table's horizon, and the policies mask it.
    const auto grid = model::token_grid(config, shape[1], shape[2], shape[3]);
    RegimeChoice regime;
    if (!request.attention.regime.empty()) {
      regime = choose_regime(request.attention, resolved.name, prompts.cond[0], request.prompt, grid);
      request.attention.params = regime.params;
      if (!regime.warning.empty()) spdlog::warn("regime {}", regime.summary());
    }
    // Previews decode with the cheap decoder (pixels, or the latents' colour preview); the VAE
    // loads after sampling.
    auto decoder = model::make_decoder(config);
    progress.stage = JobStage::LoadingModel;
    auto& dit = cached_dit(cache, resolved, request.seed, device, dtype, request.offload);
    // Every job sets it: the cached model keeps the last job's otherwise. fp8 where it cannot run
    // is a ParameterError saying why (no bf16 fallback).
    dit->set_linear_precision(model::parse_linear_precision(request.precision));
    dit->set_residual_precision(model::parse_residual_precision(request.residual));

    std::string adapter_path;
    dit->adapter = resolve_adapter(request.attention, config, device, dtype, cache.adapters, adapter_path);

    // The sampler the job runs (the model's unless named): JobStarted and the recipe carry its name.
    if (request.sampler.empty()) request.sampler = config.default_sampler;
    JobStarted started;
    started.adapter = adapter_path;
    if (!regime.requested.empty()) started.routing = regime.summary();
    started.job_id = id;
    started.request = request;
    started.grid = grid;
    started.num_layers = int(config.num_layers);
    started.num_heads = int(config.num_heads);
    started.model_name = resolved.name;
    started.config_name = config.name;
    ctx.publish(started);

    auto smp = sampler::make_sampler(request.sampler, request.steps, request.shift, sampler::parse_grid(request.schedule));
    progress.stage = JobStage::PreparingNoise;
    const auto noise = job_noise(ctx, shape, request.seed, device);
    progress.stage = JobStage::Denoising;
    JobSteps steps({request, ctx, config, dit, cache, device, dtype, adapter_path, grid, *decoder, completed, regime});
    const sampler::SampleResult sampled = sampler::sample(*smp, noise, steps.hooks(prompts));
    if (sampled.cancelled || (ctx.cancel && ctx.cancel->load())) throw model::Cancelled();
    const torch::Tensor& x = sampled.x;
    // Non-finite latents decode to an all-black video: fail loudly instead (damaged weights of any
    // component, or a diverging sampler setting).
    if (!torch::isfinite(x).all().item<bool>())
      throw Error("the denoised video holds NaN or infinite values after " + std::to_string(request.steps) +
                  " steps (damaged weights or an unstable setting); no video made");
    const double t_decode = now_ms();
    progress.stage = JobStage::Decoding;
    auto video = decode_video(x, resolved, device, request.fps);
    const double decode_ms = now_ms() - t_decode;
    ctx.publish(FramesDecoded{id, video});
    JobFinished done;
    done.job_id = id;
    done.total_ms = now_ms() - steps.t_job();
    done.attention_ms = steps.total_attention_ms();
    done.mean_sparsity = steps.sparsity_sum() / request.steps;
    done.video = video;
    done.encode_ms = encode_ms;
    done.decode_ms = decode_ms;
    done.peak_memory_bytes = peak_cuda_memory(device);
    ctx.publish(done);
  } catch (const model::Cancelled&) {
    ctx.publish(JobCancelled{id, completed});
  } catch (const std::exception& e) {
    progress.steps_done = completed;
    ctx.publish(JobFailed{id, job_failure_message(e, request_in, progress)});
  } catch (...) {
    ctx.publish(JobFailed{id, "unknown error"});
  }
}

}  // namespace longshot::pipeline

// Q/K/V capture of a model's self-attention per motion regime (qkv_capture.h).
#include "engine/pipeline/qkv_capture.h"

#include <atomic>
#include <sstream>

#include <torch/torch.h>

#include "engine/calibrate/router.h"
#include "engine/common/error.h"
#include "engine/model/conditioning_impl.h"
#include "engine/model/model_source.h"
#include "engine/pipeline/run_job.h"
#include "engine/sampler/flow_matching.h"
#include "engine/sampler/sample_loop.h"

namespace longshot::pipeline {

namespace {

// The first `count` prompts of `regime` in `labelled`, else in the world's labelled list for `seed`.
std::vector<std::string> regime_prompts(const std::string& regime, int count, uint64_t seed,
                                        const std::vector<calibrate::LabelledPrompt>& labelled) {
  std::vector<std::string> out;
  for (const auto& p : labelled.empty() ? calibrate::world_prompts(seed, count) : labelled)
    if (p.regime == regime && int(out.size()) < count) out.push_back(p.prompt);
  if (out.empty())
    throw ParameterError("regimes", labelled.empty()
                                        ? "'" + regime + "' is not a regime of the world's captions (static, slow, fast)"
                                        : "'" + regime + "' has no prompt in the labelled list");
  return out;
}

}  // namespace

std::vector<calibrate::CapturedProxy> capture_regime_proxies(const CaptureSpec& spec,
                                                             const std::vector<calibrate::Regime>& regimes,
                                                             const CaptureProgress& progress) {
  if (regimes.empty()) throw ParameterError("regimes", "no regime given");
  if (spec.prompts_per_regime < 1) throw ParameterError("prompts", "need at least one prompt per regime");
  if (spec.steps < 1) throw ParameterError("steps", "must be >= 1");
  const int capture_step = spec.capture_step < 0 ? spec.steps / 2 : spec.capture_step;
  if (capture_step >= spec.steps)
    throw ParameterError("capture-step", std::to_string(capture_step) + " is not a step of a " + std::to_string(spec.steps) + "-step run");
  GenerationRequest req;
  req.model = spec.model;
  req.frames = spec.frames;
  req.width = spec.width;
  req.height = spec.height;
  req.steps = spec.steps;
  req.device = spec.device;  // auto, cpu or cuda (validate_request names another)
  validate_request(req);
  const model::ResolvedModel resolved = resolve_request_model(req);
  const auto& config = resolved.config;
  const auto shape = latent_shape(req, config);
  std::vector<int> layers = spec.layers;
  if (layers.empty())
    for (int l = 1; l < int(config.num_layers); ++l) layers.push_back(l);
  if (layers.empty()) layers.push_back(0);  // a one-layer model
  for (int l : layers)
    if (l < 0 || l >= int(config.num_layers))
      throw ParameterError("layers", "layer " + std::to_string(l) + " is not in [0, " + std::to_string(config.num_layers) + ")");

  const bool use_cuda = runs_on_cuda(spec.device);
  torch::NoGradGuard no_grad;
  const torch::Device device = use_cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  const auto dtype = device.is_cuda() ? torch::kBFloat16 : torch::kFloat;
  // A Wan model's umT5 (its folder's, or the component files'); the built-in models' own encoders.
  auto encoder = model_text_encoder(resolved, "", device, dtype);
  auto dit = model::load_dit(resolved, spec.seed, device, dtype);
  const auto grid = dit->token_grid(shape[1], shape[2], shape[3]);
  const double guidance = spec.guidance < 0 ? config.default_guidance : spec.guidance;
  const auto uncond = encoder->encode(config.default_negative_prompt).to(device);

  std::vector<calibrate::CapturedProxy> out;
  for (const auto& regime : regimes) {
    const auto prompts = regime_prompts(regime.name, spec.prompts_per_regime, spec.seed, spec.labelled);
    std::vector<torch::Tensor> qs, ks, vs;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (progress) progress(regime.name, prompts[i]);
      const auto cond = encoder->encode(prompts[i]).to(device);
      std::vector<torch::Tensor> lq(layers.size()), lk(layers.size()), lv(layers.size());
      std::atomic<bool> done{false};
      int step_now = 0;
      model::AttentionPlan plan;  // no policy: every layer dense, the trajectory the model samples
      plan.measure_time = false;
      model::AttentionProbe probe;
      probe.on_qkv = [&](int layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
        if (step_now != capture_step) return;
        for (size_t j = 0; j < layers.size(); ++j)
          if (layers[j] == layer) {
            // fp32 on the capture's device: on CUDA the search scores there too (calibration.cpp).
            lq[j] = q.to(torch::kFloat).contiguous();
            lk[j] = k.to(torch::kFloat).contiguous();
            lv[j] = v.to(torch::kFloat).contiguous();
          }
      };
      sampler::SampleHooks hooks;
      hooks.cancel = &done;  // set after the capture: the rest of the schedule is not needed
      hooks.on_step_begin = [&](int step) {
        step_now = step;
        plan.step = step;
        plan.num_steps = spec.steps;
      };
      hooks.cond = [&](const torch::Tensor& x, const torch::Tensor& t, int) {
        auto v = dit->forward_with_stats(x, t, cond, plan, probe).velocity;
        if (step_now == capture_step) done = true;
        return v;
      };
      if (std::abs(guidance - 1.0) > 1e-9) {
        hooks.uncond = [&](const torch::Tensor& x, const torch::Tensor& t, int) {
          return dit->forward_with_stats(x, t, uncond, plan).velocity;
        };
        hooks.guidance = guidance;
      }
      auto smp = sampler::make_sampler(config.default_sampler, spec.steps, config.default_shift, sampler::parse_grid("auto"));
      const auto noise = sampler::seeded_noise({1, shape[0], shape[1], shape[2], shape[3]}, spec.seed + i, device);
      sampler::sample(*smp, noise, hooks);
      for (size_t j = 0; j < layers.size(); ++j) {
        if (!lq[j].defined())
          throw ShapeError("model " + resolved.name + " reported no Q/K/V for layer " + std::to_string(layers[j]));
        qs.push_back(lq[j]);
        ks.push_back(lk[j]);
        vs.push_back(lv[j]);
      }
    }
    calibrate::CapturedProxy c;
    c.regime = regime;
    c.grid = grid;
    c.qkv = attention::QKV{torch::cat(qs, 1), torch::cat(ks, 1), torch::cat(vs, 1)};
    std::ostringstream src;
    src << resolved.name << ", " << spec.frames << " frames " << spec.width << "x" << spec.height << ", step "
        << capture_step << " of " << spec.steps << ", layers";
    for (int l : layers) src << " " << l;
    src << ", " << prompts.size() << " prompts: ";
    for (size_t i = 0; i < prompts.size(); ++i) src << (i ? " | " : "") << prompts[i];
    c.source = src.str();
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace longshot::pipeline

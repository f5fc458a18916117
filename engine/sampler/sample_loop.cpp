#include "engine/sampler/sample_loop.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/common/error.h"

namespace longshot::sampler {

SampleResult sample(Sampler& sampler, const torch::Tensor& noise, const SampleHooks& hooks) {
  if (!hooks.cond) throw ParameterError("model", "the sampling loop needs a conditional model call");
  if (!noise.defined()) throw ShapeError("sampling loop: the initial noise is empty");
  if (hooks.uncond && (!(hooks.guidance >= 0) || !std::isfinite(hooks.guidance)))
    throw ParameterError("guidance", "must be a finite value >= 0, got " + std::to_string(hooks.guidance));
  torch::NoGradGuard no_grad;
  sampler.reset();
  SampleResult result;
  torch::Tensor x = noise;
  const int steps = sampler.num_steps();
  for (int i = 0; i < steps; ++i) {
    if (hooks.cancel && hooks.cancel->load()) {
      result.cancelled = true;
      break;
    }
    if (hooks.on_step_begin) hooks.on_step_begin(i);
    // float, built on the host then moved: the timestep tensor the callers always gave the model.
    const auto t = torch::full({1}, sampler.timestep(i), torch::TensorOptions().dtype(torch::kFloat)).to(x.device());
    torch::Tensor v = hooks.cond(x, t, i);
    if (hooks.uncond) v = classifier_free_guidance(v, hooks.uncond(x, t, i), hooks.guidance);
    if (!v.defined() || v.sizes() != x.sizes())
      throw ShapeError("sampling loop, step " + std::to_string(i) + ": the model's velocity " +
                       (v.defined() ? c10::str(v.sizes()) : std::string("(empty)")) + " does not match the sample " +
                       c10::str(x.sizes()));
    torch::Tensor x_next = sampler.step(x, v, i);
    result.completed_steps = i + 1;
    if (hooks.on_step_end) {
      StepOutcome o;
      o.step = i;
      o.num_steps = steps;
      o.x = &x;
      o.velocity = &v;
      o.x_next = &x_next;
      o.sampler = &sampler;
      hooks.on_step_end(o);
    }
    x = std::move(x_next);
  }
  result.x = x;
  return result;
}

}  // namespace longshot::sampler

// The one sampling loop: noise → for each step (hooks, conditional and unconditional velocity,
// guidance, sampler step) → latents. Generation (run_job, hence `longshot eval` and the studio)
// and the trainer's previews call it. Sampler room: the model is a callback; no model types here.
#pragma once
#include <atomic>
#include <functional>

#include <torch/types.h>

#include "engine/sampler/flow_matching.h"

namespace longshot::sampler {

// What one step did, handed to on_step_end after the sampler's step.
struct StepOutcome {
  int step = 0;
  int num_steps = 0;
  const torch::Tensor* x = nullptr;         // the sample the model saw at this step
  const torch::Tensor* velocity = nullptr;  // the guided velocity there
  const torch::Tensor* x_next = nullptr;    // the sample after the step
  const Sampler* sampler = nullptr;         // for predict_x0 (previews), sigma, timestep
};

struct SampleHooks {
  // The velocity at (x, t) for the step: t is a float tensor [1] holding sampler.timestep(step)
  // on x's device. `cond` is required; without `uncond` no guidance is applied (one forward per
  // step), with it v = uncond + guidance·(cond − uncond).
  using ModelFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, int step)>;
  ModelFn cond;
  ModelFn uncond;
  double guidance = 1.0;
  // Before the step's forwards: settings and mode switches take effect here.
  std::function<void(int step)> on_step_begin;
  // After the step: events, previews, timing.
  std::function<void(const StepOutcome&)> on_step_end;
  // Checked before every step; set: the loop stops and says so (the caller decides what that means).
  const std::atomic<bool>* cancel = nullptr;
};

struct SampleResult {
  torch::Tensor x;           // the latents after the last completed step
  int completed_steps = 0;
  bool cancelled = false;    // stopped by the cancel flag before all steps ran
};

// Runs `sampler` from `noise` (its first step restarts the sampler's history). Throws
// ParameterError("guidance") for a bad guidance, ShapeError when a velocity's shape is not the
// sample's; whatever a hook throws passes through.
SampleResult sample(Sampler& sampler, const torch::Tensor& noise, const SampleHooks& hooks);

}  // namespace longshot::sampler

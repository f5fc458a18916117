// The one sampling loop: the same result as a hand-written Euler loop (the loop run_job and the
// trainer had), guidance only with an unconditional call, hook order, timesteps, cancel, errors.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "engine/common/error.h"
#include "engine/sampler/sample_loop.h"

using namespace longshot;
using namespace longshot::sampler;

namespace {

// A stand-in model: a fixed nonlinear function of x, t and the "prompt" (a scale).
torch::Tensor toy_model(const torch::Tensor& x, const torch::Tensor& t, double prompt) {
  return torch::tanh(x * prompt) - t.to(x.scalar_type()) / 1000.0 * x;
}

}  // namespace

TEST(SampleLoop, EulerMatchesTheHandWrittenLoopBitForBit) {
  const auto noise = seeded_noise({1, 3, 2, 4, 4}, 7);
  // The loop the pipeline and the trainer wrote before: timestep as a float [1] tensor, cond then
  // uncond, guidance, Euler step.
  FlowMatchEuler ref(6, 3.0);
  auto x = noise.clone();
  for (int i = 0; i < 6; ++i) {
    const auto t = torch::full({1}, ref.timestep(i), torch::TensorOptions().dtype(torch::kFloat));
    const auto v = classifier_free_guidance(toy_model(x, t, 1.5), toy_model(x, t, 0.5), 4.0);
    x = ref.step(x, v, i);
  }
  FlowMatchEuler smp(6, 3.0);
  SampleHooks hooks;
  hooks.cond = [](const torch::Tensor& x, const torch::Tensor& t, int) { return toy_model(x, t, 1.5); };
  hooks.uncond = [](const torch::Tensor& x, const torch::Tensor& t, int) { return toy_model(x, t, 0.5); };
  hooks.guidance = 4.0;
  const auto r = sample(smp, noise, hooks);
  EXPECT_EQ(r.completed_steps, 6);
  EXPECT_FALSE(r.cancelled);
  EXPECT_TRUE(torch::equal(r.x, x));
}

TEST(SampleLoop, HooksTimestepsAndGuidance) {
  auto smp = make_sampler("unipc", 5, 5.0);
  std::vector<std::string> calls;
  std::vector<float> seen_t;
  SampleHooks hooks;
  hooks.on_step_begin = [&](int i) { calls.push_back("begin" + std::to_string(i)); };
  hooks.cond = [&](const torch::Tensor& x, const torch::Tensor& t, int i) {
    calls.push_back("cond" + std::to_string(i));
    EXPECT_EQ(t.scalar_type(), torch::kFloat);
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{1}));
    seen_t.push_back(t.item<float>());
    return toy_model(x, t, 1.0);
  };
  hooks.on_step_end = [&](const StepOutcome& o) {
    calls.push_back("end" + std::to_string(o.step));
    EXPECT_EQ(o.num_steps, 5);
    EXPECT_EQ(o.sampler->name(), std::string("unipc"));
    EXPECT_EQ(o.x->sizes(), o.x_next->sizes());
    // No uncond: the velocity is the conditional call's own.
    const auto t = torch::full({1}, o.sampler->timestep(o.step), torch::TensorOptions().dtype(torch::kFloat));
    EXPECT_TRUE(torch::equal(*o.velocity, toy_model(*o.x, t, 1.0)));
  };
  const auto r = sample(*smp, seeded_noise({2, 8}, 1), hooks);
  EXPECT_EQ(r.completed_steps, 5);
  ASSERT_EQ(calls.size(), 15u);
  EXPECT_EQ(calls[0], "begin0");
  EXPECT_EQ(calls[1], "cond0");
  EXPECT_EQ(calls[2], "end0");
  EXPECT_EQ(calls[14], "end4");
  ASSERT_EQ(seen_t.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(seen_t[size_t(i)], float(smp->timestep(i)));
  EXPECT_EQ(seen_t[0], 999.0f);  // diffusers' ⌊1000·(1 − 1e-6)⌋
}

TEST(SampleLoop, CancelStopsBeforeTheNextStep) {
  FlowMatchEuler smp(8, 3.0);
  std::atomic<bool> cancel{false};
  int forwards = 0;
  SampleHooks hooks;
  hooks.cond = [&](const torch::Tensor& x, const torch::Tensor&, int) {
    ++forwards;
    return x * 0.5;
  };
  hooks.on_step_end = [&](const StepOutcome& o) {
    if (o.step == 2) cancel = true;
  };
  hooks.cancel = &cancel;
  const auto r = sample(smp, torch::ones({4}), hooks);
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.completed_steps, 3);
  EXPECT_EQ(forwards, 3);
  EXPECT_FALSE(torch::equal(r.x, torch::ones({4})));  // the three steps' result, not the noise
}

TEST(SampleLoop, Errors) {
  FlowMatchEuler smp(3, 3.0);
  SampleHooks none;
  EXPECT_THROW(sample(smp, torch::ones({4}), none), ParameterError);
  SampleHooks wrong;
  wrong.cond = [](const torch::Tensor&, const torch::Tensor&, int) { return torch::ones({5}); };
  EXPECT_THROW(sample(smp, torch::ones({4}), wrong), ShapeError);
  SampleHooks bad_guidance;
  bad_guidance.cond = bad_guidance.uncond = [](const torch::Tensor& x, const torch::Tensor&, int) { return x; };
  bad_guidance.guidance = -1.0;
  EXPECT_THROW(sample(smp, torch::ones({4}), bad_guidance), ParameterError);
  // A hook's exception passes through unchanged.
  SampleHooks throwing;
  throwing.cond = [](const torch::Tensor&, const torch::Tensor&, int) -> torch::Tensor { throw IoError("model file vanished"); };
  EXPECT_THROW(sample(smp, torch::ones({4}), throwing), IoError);
}

// The optimiser room (app/train/optimiser.h) and its checkpoint files: LibTorch's AdamW decays
// matrices only, computes what the trainer's earlier hand-written AdamW computed, and a run
// resumed from a checkpoint takes the same next step as one never interrupted.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "app/train/checkpoint.h"
#include "app/train/optimiser.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

// A matrix, a bias and a norm-like gain, seeded: names as the checkpoint files carry them.
std::vector<train::Named> tiny_parameters(uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto leaf = [&](std::vector<int64_t> shape) {
    return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat)).requires_grad_(true);
  };
  return {{"dit.proj.weight", leaf({5, 3})}, {"dit.proj.bias", leaf({5})}, {"text.norm.weight", leaf({3})},
          {"dit.patch_embedding.weight", leaf({2, 3, 1, 2, 2})}};
}

// A loss whose gradient depends on the weights and on the step (so every step differs).
torch::Tensor tiny_loss(const std::vector<train::Named>& params, int64_t step) {
  torch::Tensor loss = torch::zeros({});
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i].param;
    const auto target = torch::linspace(-1.0, 1.0, p.numel()).view(p.sizes()) * static_cast<double>(step + i);
    loss = loss + (p - target).pow(2).sum() * 0.5 + p.sum() * 0.1 * static_cast<double>(i);
  }
  return loss;
}

train::TrainOptions schedule_options() {
  train::TrainOptions o;
  o.lr = 1e-2;
  o.warmup = 2;
  o.steps = 10;
  o.ema_decay = 0.9;
  return o;
}

}  // namespace

// lr > 0, zero gradients, decay > 0: Adam's step is exactly zero, so a matrix shrinks by exactly
// lr·wd·w and a bias or gain stays as it was. A parameter with no gradient at all is left alone.
TEST(Optimiser, DecaysMatricesOnly) {
  auto params = tiny_parameters(1);
  std::vector<torch::Tensor> before;
  for (auto& p : params) before.push_back(p.param.detach().clone());
  const double lr = 0.5, wd = 0.1;
  train::Optimiser opt(params, wd);
  for (size_t i = 0; i < 3; ++i) params[i].param.mutable_grad() = torch::zeros_like(params[i].param);
  opt.update(lr);
  EXPECT_TRUE(torch::equal(params[0].param, before[0] * (1.0 - lr * wd))) << "the 2-D weight must shrink by lr*wd*w";
  EXPECT_FALSE(torch::equal(params[0].param, before[0]));
  EXPECT_TRUE(torch::equal(params[1].param, before[1])) << "a bias must get no weight decay";
  EXPECT_TRUE(torch::equal(params[2].param, before[2])) << "a 1-D gain must get no weight decay";
  EXPECT_TRUE(torch::equal(params[3].param, before[3])) << "no gradient: no update, not even decay";
}

// The update the trainer made with its own AdamW before it used LibTorch's (β 0.9 / 0.99, ε 1e-8,
// bias-corrected, decoupled decay on matrices), written out here as the reference: five steps with
// changing gradients and learning rates agree to float rounding.
TEST(Optimiser, MatchesTheEarlierHandWrittenAdamW) {
  auto params = tiny_parameters(2);
  std::vector<torch::Tensor> ref, m, v;
  for (auto& p : params) {
    ref.push_back(p.param.detach().clone());
    m.push_back(torch::zeros_like(p.param));
    v.push_back(torch::zeros_like(p.param));
  }
  const double wd = 0.05;
  train::Optimiser opt(params, wd);
  for (int64_t step = 1; step <= 5; ++step) {
    const double lr = 1e-2 * static_cast<double>(step);
    for (size_t i = 0; i < params.size(); ++i) {
      const auto g = torch::sin(ref[i] * static_cast<double>(step + 1) + static_cast<double>(i));
      params[i].param.mutable_grad() = g.clone();
      const double c1 = 1.0 - std::pow(0.9, static_cast<double>(step)), c2 = 1.0 - std::pow(0.99, static_cast<double>(step));
      m[i].mul_(0.9).add_(g, 0.1);
      v[i].mul_(0.99).addcmul_(g, g, 0.01);
      if (ref[i].dim() >= 2) ref[i].mul_(1.0 - lr * wd);
      ref[i].addcdiv_(m[i] / c1, (v[i] / c2).sqrt_().add_(1e-8), -lr);
    }
    opt.update(lr);
  }
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_LT((params[i].param - ref[i]).abs().max().item<double>(), 1e-6) << params[i].name;
    EXPECT_LT((opt.exp_avg(i) - m[i]).abs().max().item<double>(), 1e-7) << params[i].name;
    EXPECT_LT((opt.exp_avg_sq(i) - v[i]).abs().max().item<double>(), 1e-7) << params[i].name;
  }
}

// Two steps, a checkpoint, a third step; against other weights that load that checkpoint into a
// fresh optimiser and take the third step: the same weights, EMA and moments, bit for bit (the
// moments and their step count must reach LibTorch's AdamW state, or bias correction differs).
TEST(Optimiser, ResumeTakesTheSameNextStep) {
  const auto dir = (fs::temp_directory_path() / "longshot_train_optimiser_resume").string();
  longshot::remove_tree(dir);
  fs::create_directories(dir);
  const auto o = schedule_options();
  auto elapsed = [] { return 0.0; };

  auto run = tiny_parameters(3);
  train::Optimiser opt(run, o.weight_decay);
  int64_t step = 0;
  while (step < 2) train::optimizer_step(tiny_loss(run, step), opt, step, o, elapsed);
  train::save_checkpoint(dir, opt, step, "tiny");
  train::optimizer_step(tiny_loss(run, step), opt, step, o, elapsed);
  ASSERT_EQ(step, 3);

  auto resumed = tiny_parameters(4);  // other weights: the checkpoint must replace them
  train::Optimiser ropt(resumed, o.weight_decay);
  int64_t rstep = train::load_checkpoint(dir, ropt);
  ASSERT_EQ(rstep, 2);
  train::optimizer_step(tiny_loss(resumed, rstep), ropt, rstep, o, elapsed);
  ASSERT_EQ(rstep, 3);
  for (size_t i = 0; i < run.size(); ++i) {
    EXPECT_TRUE(torch::equal(run[i].param, resumed[i].param)) << run[i].name;
    EXPECT_TRUE(torch::equal(opt.ema()[i], ropt.ema()[i])) << run[i].name;
    EXPECT_TRUE(torch::equal(opt.exp_avg(i), ropt.exp_avg(i))) << run[i].name;
    EXPECT_TRUE(torch::equal(opt.exp_avg_sq(i), ropt.exp_avg_sq(i))) << run[i].name;
  }

  // The same resume with the step count lost (moments without it) must not agree: the test above
  // can tell a checkpoint that drops the optimiser's step.
  auto lost = tiny_parameters(4);
  train::Optimiser lopt(lost, o.weight_decay);
  int64_t lstep = train::load_checkpoint(dir, lopt);
  lopt.set_step(0);
  train::optimizer_step(tiny_loss(lost, lstep), lopt, lstep, o, elapsed);
  EXPECT_FALSE(torch::equal(run[0].param, lost[0].param));
  longshot::remove_tree(dir);
}

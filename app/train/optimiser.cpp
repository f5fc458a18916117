// AdamW, EMA and the learning-rate schedule. See optimiser.h.
#include "app/train/optimiser.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

namespace longshot::train {

std::vector<Named> all_parameters(model::WanDiTImpl& dit, model::TextNetImpl& text) {
  std::vector<Named> out;
  for (auto& p : dit.named_parameters()) out.push_back({"dit." + p.key(), p.value()});
  for (auto& p : text.named_parameters()) out.push_back({"text." + p.key(), p.value()});
  return out;
}

Optimiser::Optimiser(std::vector<Named> params, double weight_decay)
    : params_(std::move(params)), weight_decay_(weight_decay) {
  for (auto& p : params_) {
    ema_.push_back(p.param.detach().clone());
    m_.push_back(torch::zeros_like(p.param));
    v_.push_back(torch::zeros_like(p.param));
  }
}

Optimiser::~Optimiser() = default;

torch::Tensor Optimiser::exp_avg(size_t i) { return m_.at(i); }
torch::Tensor Optimiser::exp_avg_sq(size_t i) { return v_.at(i); }
void Optimiser::set_step(int64_t step) { step_ = step; }

// Bias-corrected AdamW, decoupled weight decay on matrices only.
void Optimiser::update(double lr) {
  constexpr double b1 = 0.9, b2 = 0.99, eps = 1e-8;
  torch::NoGradGuard no_grad;
  ++step_;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(step_)), c2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].param;
    if (!p.grad().defined()) continue;
    const auto& g = p.grad();
    m_[i].mul_(b1).add_(g, 1.0 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    if (p.dim() >= 2 && weight_decay_ > 0.0) p.mul_(1.0 - lr * weight_decay_);
    p.addcdiv_(m_[i] / c1, (v_[i] / c2).sqrt_().add_(eps), -lr);
  }
}

void Optimiser::update_ema(int64_t step, double max_decay) {
  torch::NoGradGuard no_grad;
  const double d = std::min(max_decay, (1.0 + step) / (10.0 + step));
  for (size_t i = 0; i < params_.size(); ++i) ema_[i].mul_(d).add_(params_[i].param.detach(), 1.0 - d);
}

double scheduled_lr(const TrainOptions& o, int64_t step, double elapsed_s) {
  const double by_time = o.time_limit_s > 0.0 && !o.lr_by_steps ? elapsed_s / o.time_limit_s : 0.0;
  const double progress = std::max(static_cast<double>(step) / std::max<int64_t>(1, o.steps), by_time);
  const double warm = std::min(1.0, static_cast<double>(step) / std::max(1, o.warmup));
  const double decay = progress < 0.75 ? 1.0 : std::max(0.1, 1.0 - 0.9 * (progress - 0.75) / 0.25);
  return o.lr * warm * decay;
}

double optimizer_step(const torch::Tensor& loss, Optimiser& opt, int64_t& step, const TrainOptions& o,
                      const std::function<double()>& elapsed_s) {
  for (auto& p : opt.params()) p.param.mutable_grad() = torch::Tensor();
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : opt.params()) grads.push_back(p.param);
  torch::nn::utils::clip_grad_norm_(grads, 1.0);
  ++step;
  const double lr = scheduled_lr(o, step, elapsed_s());
  opt.update(lr);
  opt.update_ema(step, o.ema_decay);
  return lr;
}

}  // namespace longshot::train

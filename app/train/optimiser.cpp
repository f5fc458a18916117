// AdamW, EMA and the learning-rate schedule. See optimiser.h.
#include "app/train/optimiser.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>

#include <torch/torch.h>

namespace longshot::train {

std::vector<Named> all_parameters(model::WanDiTImpl& dit, model::TextNetImpl& text) {
  std::vector<Named> out;
  for (auto& p : dit.named_parameters()) out.push_back({"dit." + p.key(), p.value()});
  for (auto& p : text.named_parameters()) out.push_back({"text." + p.key(), p.value()});
  return out;
}

namespace {

constexpr double kBeta1 = 0.9, kBeta2 = 0.99, kEps = 1e-8;

// The key torch::optim files a parameter's state under: the TensorImpl address printed as a string
// in LibTorch 1.x (c10::guts::to_string, an ostream <<, which 2.x no longer has), the address
// itself in 2.x. Chosen from the map's key type, so both compile.
template <typename Map>
typename Map::key_type state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

torch::optim::AdamWOptions adamw_options(double weight_decay) {
  torch::optim::AdamWOptions o(1e-3);  // the rate is set before every update
  o.betas(std::make_tuple(kBeta1, kBeta2)).eps(kEps).weight_decay(weight_decay).amsgrad(false);
  return o;
}

}  // namespace

Optimiser::Optimiser(std::vector<Named> params, double weight_decay) : params_(std::move(params)) {
  std::vector<torch::Tensor> matrices, others;
  for (auto& p : params_) {
    ema_.push_back(p.param.detach().clone());
    (p.param.dim() >= 2 ? matrices : others).push_back(p.param);
  }
  // Decay pulls weights toward zero: right for matrices, wrong for gains and shifts (a norm's
  // gain decayed toward 0 switches the layer off), so they get none.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!matrices.empty()) {
    groups.emplace_back(matrices, std::make_unique<torch::optim::AdamWOptions>(adamw_options(weight_decay)));
  }
  if (!others.empty()) groups.emplace_back(others, std::make_unique<torch::optim::AdamWOptions>(adamw_options(0.0)));
  adamw_ = std::make_unique<torch::optim::AdamW>(std::move(groups), adamw_options(0.0));
}

Optimiser::~Optimiser() = default;

torch::optim::AdamWParamState& Optimiser::state(size_t i) {
  const torch::Tensor& p = params_.at(i).param;
  auto& states = adamw_->state();
  const auto key = state_key<std::decay_t<decltype(states)>>(p);
  auto it = states.find(key);
  if (it == states.end()) {
    // What AdamW::step creates on a parameter's first update.
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    it = states.insert({key, std::move(s)}).first;
  }
  return static_cast<torch::optim::AdamWParamState&>(*it->second);
}

torch::Tensor Optimiser::exp_avg(size_t i) { return state(i).exp_avg(); }
torch::Tensor Optimiser::exp_avg_sq(size_t i) { return state(i).exp_avg_sq(); }

void Optimiser::set_step(int64_t step) {
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& s = state(i);
    s.step(static_cast<std::decay_t<decltype(s.step())>>(step));
  }
}

void Optimiser::update(double lr) {
  for (auto& group : adamw_->param_groups()) group.options().set_lr(lr);
  adamw_->step();
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

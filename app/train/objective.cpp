// The training objective and the attention it trains under. See objective.h.
#include "app/train/objective.h"

#include <torch/torch.h>

namespace longshot::train {

Noised noise_batch(const torch::Tensor& x0, double shift) {
  const int64_t B = x0.size(0);
  const auto u = torch::rand({B}, torch::TensorOptions().device(x0.device()));
  Noised n;
  n.sigma = shift * u / (1.0 + (shift - 1.0) * u);
  const auto noise = torch::randn_like(x0);
  const auto s = n.sigma.view({B, 1, 1, 1, 1});
  n.xt = (1.0 - s) * x0 + s * noise;
  n.target = noise - x0;
  return n;
}

torch::Tensor weighted_mean(const torch::Tensor& e, const torch::Tensor& w) { return (e * w).mean() / w.mean(); }

model::AttentionPlan training_attention() { return model::AttentionPlan::training(); }

model::AttentionPlan masked_training_attention(attention::MaskPolicy& policy, int64_t block_size, int64_t step,
                                               bool use_adapter) {
  policy.reset();
  model::AttentionPlan plan = training_attention();  // differentiable: sparse layers take the masked path
  plan.policy = &policy;
  plan.block_size = block_size;
  plan.use_adapter = use_adapter;
  plan.step = static_cast<int>(step % kMaskSteps);
  plan.num_steps = kMaskSteps;
  return plan;
}

std::unique_ptr<attention::MaskPolicy> make_policy(const std::string& mode, const std::vector<std::string>& params,
                                                   std::string& text) {
  attention::ParamValues values;
  text.clear();
  for (const auto& kv : params) {
    attention::parse_param_assignment(kv, values);  // ParameterError naming a malformed k=v
    text += (text.empty() ? "" : ",") + kv;
  }
  return attention::create_policy(mode, values);  // ParameterError: unknown mode / bad value
}

}  // namespace longshot::train

// The training objective: flow-matching noising (v = ε − x0, as the sampler expects), the
// object-weighted MSE, and the attention the model trains under (dense and differentiable, or a
// sparse mode's mask through the differentiable path). Knows the model's attention settings and
// the mask policies; nothing of the data stream, the optimiser or checkpoints.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/attention/mask_policy.h"
#include "engine/model/dit.h"

namespace longshot::train {

// The built-in model's sampling steps: the mask schedule trained on.
constexpr int kMaskSteps = 20;

// A clean batch noised at σ = shift·u / (1 + (shift − 1)·u), u ~ U(0, 1): more of the budget where
// composition and motion form. Draws u then the noise from LibTorch's default generator.
struct Noised {
  torch::Tensor sigma;   // [B]
  torch::Tensor xt;      // (1 − σ)·x0 + σ·ε
  torch::Tensor target;  // the velocity ε − x0
};
Noised noise_batch(const torch::Tensor& x0, double shift);

// mean(w · e) / mean(w), w broadcast over e's channels: the object-weighted loss (the plain mean
// when every weight is 1).
torch::Tensor weighted_mean(const torch::Tensor& e, const torch::Tensor& w);

// Every layer dense and differentiable (model::AttentionPlan::training(): attend() takes SDPA, or
// its torch-ops formula on the CPU; the reference and our kernel have no backward pass).
model::AttentionPlan training_attention();

// A sparse mode's mask through the differentiable path (SDPA with the token-expanded mask). Masks
// that depend on the sampling step (dfs refresh/cache, lvsa rotation) see every step of a 20-step
// run in turn, each scored afresh on the Q/K of this forward (the policy is reset), as inference
// would build it.
model::AttentionPlan masked_training_attention(attention::MaskPolicy& policy, int64_t block_size, int64_t step,
                                               bool use_adapter);

// The policy of `mode` with "k=v" parameters; `text` gets them joined by commas. ParameterError
// for a malformed k=v, an unknown mode or a bad value.
std::unique_ptr<attention::MaskPolicy> make_policy(const std::string& mode, const std::vector<std::string>& params,
                                                   std::string& text);

}  // namespace longshot::train

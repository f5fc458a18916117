// The optimiser room: the trained parameters by name, AdamW with decoupled weight decay on
// matrices only, the EMA of the weights, and the learning-rate schedule. Knows tensors and the
// options; nothing of the data, the loss or the checkpoint files.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "app/train/trainer.h"
#include "engine/model/dit.h"

namespace torch::optim {
class AdamW;
struct AdamWParamState;
}  // namespace torch::optim
#include "engine/model/builtin_model.h"

namespace longshot::train {

struct Named {
  std::string name;
  torch::Tensor param;
};

// "dit.<name>" then "text.<name>": the checkpoint files' tensor names, in a fixed order.
std::vector<Named> all_parameters(model::WanDiTImpl& dit, model::TextNetImpl& text);

// The parameters being trained, their AdamW state and the EMA of the weights. AdamW is
// LibTorch's own (torch::optim::AdamW) with two parameter groups; its per-parameter state is
// reached here so checkpoints keep their safetensors files (adam_m / adam_v, one tensor per
// parameter name) rather than LibTorch's archive format.
class Optimiser {
 public:
  // AdamW, β 0.9 / 0.99, ε 1e-8; decoupled weight decay `weight_decay` on matrices (dim >= 2)
  // only: biases, norm gains and other 1-D parameters are not pulled to zero. The EMA starts at
  // the parameters' current values.
  Optimiser(std::vector<Named> params, double weight_decay);
  ~Optimiser();
  Optimiser(const Optimiser&) = delete;
  Optimiser& operator=(const Optimiser&) = delete;

  const std::vector<Named>& params() const { return params_; }
  std::vector<torch::Tensor>& ema() { return ema_; }
  const std::vector<torch::Tensor>& ema() const { return ema_; }
  // Adam's first and second moments of parameter i, zeros before its first update. The optimiser's
  // own tensors: a checkpoint reads into them in place.
  torch::Tensor exp_avg(size_t i);
  torch::Tensor exp_avg_sq(size_t i);
  // The number of updates the moments hold (their bias correction): a resumed checkpoint's step,
  // for every parameter.
  void set_step(int64_t step);
  // One AdamW update at `lr` (every group) from the parameters' gradients; a parameter without a
  // gradient is left alone and its step count does not advance.
  void update(double lr);
  // The EMA toward the weights, with the warm-up decay min(max_decay, (1 + step) / (10 + step)).
  void update_ema(int64_t step, double max_decay);

 private:
  // Parameter i's state in the AdamW, created (zero moments, step 0) when it has none yet.
  torch::optim::AdamWParamState& state(size_t i);

  std::vector<Named> params_;
  std::vector<torch::Tensor> ema_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
};

// The learning rate at `step`: linear warm-up, flat, then linear decay to 0.1x over the last quarter
// of the run (by steps, or by this run's time limit unless the schedule spans several resumed runs).
double scheduled_lr(const TrainOptions& o, int64_t step, double elapsed_s);

// One optimizer step on `loss`: gradients cleared, backward, clipped to norm 1, AdamW at the
// scheduled learning rate of the new step (++step), EMA. Returns that learning rate.
double optimizer_step(const torch::Tensor& loss, Optimiser& opt, int64_t& step, const TrainOptions& o,
                      const std::function<double()>& elapsed_s);

}  // namespace longshot::train

// Evaluates a mode on given or synthetic Q/K/V: builds its mask (in the mode's ordering) and
// measures block sparsity, attention recall and the output's relative L2 error against dense
// attention. Used by `longshot masks`, the tests and the benchmarks. Attention core only.
#pragma once
#include <cstdint>
#include <string>

#include "engine/attention/block_mask.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/synthetic.h"

namespace longshot::attention {

struct MaskEvaluation {
  std::string mode;
  ParamValues params;  // resolved
  BlockMaskPtr mask;   // in `ordering`
  OrderingKind ordering = OrderingKind::Raster;
  double block_sparsity = 0.0;
  double token_sparsity = 0.0;
  double recall = 0.0;
  double rel_l2 = 0.0;
  double build_ms = 0.0;
  double attention_ms = 0.0;
};

struct EvalSetup {
  int64_t block_size = 64;
  int step = 0;
  int num_steps = 1;
  int layer = 0;
  int num_layers = 1;
  int64_t recall_query_stride = 1;
};

// The synthetic inputs and their dense output, made once and shared by every mode evaluated.
struct EvalInputs {
  TokenGrid grid;
  QKV raster;                 // raster order
  torch::Tensor dense_out;    // dense attention of `raster`, raster order
};
EvalInputs make_eval_inputs(const SyntheticSpec& spec);

// Throws ParameterError for an unknown mode / parameter (naming it).
MaskEvaluation evaluate_mode(const std::string& mode, const ParamValues& overrides, const EvalInputs& inputs,
                             const EvalSetup& setup);

}  // namespace longshot::attention

// Mode evaluation on synthetic inputs (see mask_eval.h).
#include "engine/attention/mask_eval.h"

#include <chrono>

#include "engine/attention/attention.h"
#include "engine/attention/metrics.h"
#include "engine/attention/reference.h"
#include "engine/common/error.h"

namespace longshot::attention {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

EvalInputs make_eval_inputs(const SyntheticSpec& spec) {
  EvalInputs in;
  in.grid = spec.grid;
  in.raster = make_synthetic_qkv(spec);
  in.dense_out = dense_attention_reference(in.raster.q, in.raster.k, in.raster.v);
  return in;
}

MaskEvaluation evaluate_mode(const std::string& mode, const ParamValues& overrides, const EvalInputs& in,
                             const EvalSetup& setup) {
  if (setup.block_size <= 0) throw ParameterError("block_size", "must be positive, got " + std::to_string(setup.block_size));
  const PolicyInfo& info = find_policy(mode);
  MaskEvaluation ev;
  ev.mode = mode;
  ev.params = resolve_params(info, overrides);
  auto policy = info.create(ev.params);
  ev.ordering = policy->ordering();

  // Put tokens in the policy's order; dense attention is permutation-equivariant, so the dense
  // reference is the raster one gathered the same way.
  torch::Tensor q = in.raster.q, k = in.raster.k, v = in.raster.v, ref = in.dense_out;
  if (ev.ordering != OrderingKind::Raster) {
    const Ordering ord = make_ordering(ev.ordering, in.grid);
    auto perm = torch::tensor(ord.perm, torch::kLong).to(q.device());
    q = q.index_select(2, perm);
    k = k.index_select(2, perm);
    v = v.index_select(2, perm);
    ref = ref.index_select(2, perm);
  }
  MaskRequest req;
  req.grid = in.grid;
  req.block_size = setup.block_size;
  req.num_heads = q.size(1);
  req.step = setup.step;
  req.num_steps = setup.num_steps;
  req.layer = setup.layer;
  req.num_layers = setup.num_layers;
  if (policy->needs_qk()) {
    req.q = q;
    req.k = k;
  }
  auto t0 = std::chrono::steady_clock::now();
  ev.mask = policy->build(req);
  ev.build_ms = ms_since(t0);
  ev.block_sparsity = ev.mask->block_sparsity();
  ev.token_sparsity = ev.mask->token_sparsity();
  ev.recall = attention_recall(q, k, *ev.mask, setup.recall_query_stride);
  t0 = std::chrono::steady_clock::now();
  // The fp32 reference on the inputs' device (a CUDA proxy from calibrate --device cuda scores there).
  auto out = block_sparse_attention_reference(q, k, v, *ev.mask);
  ev.attention_ms = ms_since(t0);
  ev.rel_l2 = relative_l2_error(out, ref);
  return ev;
}

}  // namespace longshot::attention

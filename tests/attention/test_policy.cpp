// Mask policies: registry, parameter errors, sparsity knobs, recall monotonicity, diagonal
// rows, LVSA anchor coverage, DFS cache refresh.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/attention/mask_eval.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/metrics.h"
#include "engine/attention/policies.h"
#include "engine/attention/synthetic.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

namespace {
const TokenGrid kGrid{8, 16, 16};  // 2048 tokens, 32 blocks of 64

const QKV& inputs() {
  static const QKV qkv = [] {
    SyntheticSpec s;
    s.grid = kGrid;
    s.heads = 4;
    s.head_dim = 32;
    return make_synthetic_qkv(s);
  }();
  return qkv;
}

// Q/K in the policy's ordering.
std::pair<torch::Tensor, torch::Tensor> qk_for(OrderingKind kind) {
  if (kind == OrderingKind::Raster) return {inputs().q, inputs().k};
  auto perm = torch::tensor(make_ordering(kind, kGrid).perm, torch::kLong);
  return {inputs().q.index_select(2, perm), inputs().k.index_select(2, perm)};
}

MaskRequest request_for(const MaskPolicy& p, int step = 0, int layer = 0) {
  MaskRequest r;
  r.grid = kGrid;
  r.block_size = 64;
  r.num_heads = 4;
  r.step = step;
  r.layer = layer;
  if (p.needs_qk()) std::tie(r.q, r.k) = qk_for(p.ordering());
  return r;
}

BlockMaskPtr build(const std::string& mode, const ParamValues& params, int step = 0, int layer = 0) {
  auto p = create_policy(mode, params);
  return p->build(request_for(*p, step, layer));
}

double recall_of(const std::string& mode, const ParamValues& params) {
  auto p = create_policy(mode, params);
  auto mask = p->build(request_for(*p));
  auto [q, k] = qk_for(p->ordering());
  return attention_recall(q, k, *mask, /*query_stride=*/2);  // the same queries for every mask
}

template <typename F>
void expect_parameter_error(F&& f, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << "no ParameterError for '" << name << "'";
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), name) << e.what();
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Registry, ListsEveryModeInOrder) {
  std::vector<std::string> names;
  for (const auto& info : registered_policies()) {
    names.push_back(info.name);
    EXPECT_FALSE(info.summary.empty());
    auto p = info.create(resolve_params(info, {}));
    EXPECT_EQ(p->name(), info.name);
    EXPECT_EQ(p->params().size(), info.params.size()) << info.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"dense", "dynamicrad", "dfsattn", "lvsa", "radial-ratio", "radial-mass",
                                            "dfs-adaptive", "local-anchors"}));
}

TEST(Params, BadValuesNameTheParameter) {
  for (const char* mode : {"radial", "dfs"}) {
    for (double bad : {0.0, -0.1, 1.5}) expect_parameter_error([&] { create_policy(mode, {{"keep_ratio", bad}}); }, "keep_ratio");
    EXPECT_NO_THROW(create_policy(mode, {{"keep_ratio", 1.0}}));
  }
  for (double bad : {0.0, 1.01, -1.0}) expect_parameter_error([&] { create_policy("radial-dynamic", {{"tau", bad}}); }, "tau");
  EXPECT_NO_THROW(create_policy("radial-dynamic", {{"tau", 1.0}}));
  expect_parameter_error([&] { create_policy("flash", {}); }, "mode");
  expect_parameter_error([&] { create_policy("lvsa", {{"windows", 2}}); }, "windows");
  expect_parameter_error([&] { create_policy("dynamicrad", {{"select", 3}}); }, "select");
  expect_parameter_error([&] { create_policy("local-anchors", {{"anchors", 2.5}}); }, "anchors");
  expect_parameter_error([&] { create_policy("dense", {{"keep_ratio", 0.5}}); }, "keep_ratio");
  ParamValues out;
  expect_parameter_error([&] { parse_param_assignment("keep_ratio", out); }, "param");
  expect_parameter_error([&] { parse_param_assignment("=0.3", out); }, "param");
  expect_parameter_error([&] { parse_param_assignment("tau=abc", out); }, "tau");
  parse_param_assignment("tau=0.75", out);
  EXPECT_DOUBLE_EQ(out.at("tau"), 0.75);
}

TEST(Params, BadRequestNamesBlockSizeAndGrid) {
  for (const auto& info : registered_policies()) {
    auto p = info.create(resolve_params(info, {}));
    MaskRequest r = request_for(*p);
    r.block_size = 0;
    expect_parameter_error([&] { p->build(r); }, "block_size");
    if (p->needs_qk()) {
      r = request_for(*p);
      r.grid = TokenGrid{8, 16, 15};  // 1920 tokens, q has 2048
      expect_parameter_error([&] { p->build(r); }, "grid");
    }
  }
  auto dfs = create_policy("dfs", {{"tile_size", 48}});
  expect_parameter_error([&] { dfs->build(request_for(*dfs)); }, "tile_size");
  auto lvsa = create_policy("local-anchors", {{"anchors", 4}, {"rotation_period", 3}});  // 4·3 < 32 blocks
  expect_parameter_error([&] { lvsa->build(request_for(*lvsa)); }, "rotation_period");
}

TEST(Policies, EveryRowKeepsItsDiagonal) {
  for (const auto& info : registered_policies()) {
    auto mask = build(info.name, {});
    mask->validate();
    for (int64_t h = 0; h < mask->num_heads; ++h) {
      for (int64_t qb = 0; qb < mask->num_q_blocks; ++qb) {
        const int64_t row = h * mask->num_q_blocks + qb;
        ASSERT_GT(mask->row_offsets[size_t(row + 1)], mask->row_offsets[size_t(row)]) << info.name;
        // dfsattn is DFSAttn's plain top-k, which forces no diagonal block.
        if (info.name != "dfsattn") ASSERT_TRUE(mask->contains(h, qb, qb)) << info.name;
      }
    }
  }
}

TEST(Policies, SparsityWithinTwoPointsOfKeepRatio) {
  for (const char* mode : {"radial", "dfs"}) {
    for (double keep : {0.2, 0.3, 0.45, 0.6, 0.8, 0.95}) {
      auto mask = build(mode, {{"keep_ratio", keep}});
      EXPECT_NEAR(mask->block_sparsity(), 1.0 - keep, 0.02) << mode << " keep " << keep;
    }
  }
  // DFS reaches low ratios too (radial's floor is its diagonal + first-frame sink).
  EXPECT_NEAR(build("dfs", {{"keep_ratio", 0.1}})->block_sparsity(), 0.9, 0.02);
  EXPECT_NEAR(build("radial", {{"keep_ratio", 0.1}, {"sink_frames", 0}})->block_sparsity(), 0.9, 0.02);
}

TEST(Policies, RecallRisesWithKeepRatio) {
  for (const char* mode : {"radial", "dfs"}) {
    double prev = 0.0;
    for (double keep : {0.1, 0.2, 0.35, 0.6, 0.85, 1.0}) {
      const double r = recall_of(mode, {{"keep_ratio", keep}});
      EXPECT_GE(r, prev - 1e-9) << mode << " keep " << keep;
      prev = r;
    }
    EXPECT_NEAR(prev, 1.0, 1e-5) << mode;
  }
}

TEST(Policies, RadialDynamicRecallRisesWithTau) {
  double prev = 0.0;
  int64_t prev_kept = 0;
  for (double tau : {0.3, 0.6, 0.9, 1.0}) {
    auto p = create_policy("radial-dynamic", {{"tau", tau}});
    auto mask = p->build(request_for(*p));
    auto [q, k] = qk_for(OrderingKind::Raster);
    const double r = attention_recall(q, k, *mask, 2);
    EXPECT_GE(r, prev - 1e-9) << tau;
    EXPECT_GE(mask->kept_blocks(), prev_kept);
    prev = r;
    prev_kept = mask->kept_blocks();
  }
  // tau = 1 keeps the whole radial candidate set, for every head.
  RadialConfig prior;
  prior.keep_ratio = 0.5;
  const auto cand = radial_keep(kGrid, 64, prior);
  int64_t cand_kept = 0;
  for (auto c : cand) cand_kept += c;
  EXPECT_EQ(prev_kept, 4 * cand_kept);
}

TEST(Policies, DfsAdaptsPerHeadAndKeepsTheMean) {
  auto mask = build("dfs", {{"keep_ratio", 0.3}, {"adaptivity", 2.0}});
  EXPECT_EQ(mask->num_heads, 4);
  std::set<int64_t> per_head;
  for (int64_t h = 0; h < 4; ++h) per_head.insert(std::llround(mask->head_block_sparsity(h) * 1000));
  EXPECT_GT(per_head.size(), 1u) << "heads with different score spreads should keep different ratios";
  EXPECT_NEAR(mask->block_sparsity(), 0.7, 0.02);
  auto uniform = build("dfs", {{"keep_ratio", 0.3}, {"adaptivity", 0.0}});
  for (int64_t h = 0; h < 4; ++h) EXPECT_NEAR(uniform->head_block_sparsity(h), 0.7, 0.02);
  EXPECT_EQ(mask->ordering, OrderingKind::Hilbert);
}

TEST(Policies, LocalAnchorsCoverEveryBlockOverOneRotation) {
  LocalAnchorsConfig c;
  c.anchors = 4;
  const int64_t nb = 32, period = 8;  // ceil(32 / 4)
  for (int64_t qb : {0, 5, 31}) {
    for (int layer : {0, 3}) {
      std::set<int32_t> seen;
      for (int step = 7; step < 7 + period; ++step) {
        for (int32_t a : local_anchor_blocks(c, nb, qb, layer, step)) seen.insert(a);
      }
      EXPECT_EQ(int64_t(seen.size()), nb) << "qb " << qb << " layer " << layer;
    }
  }
  // The anchors move with the step, the layer and the query block: no fixed grid.
  EXPECT_NE(local_anchor_blocks(c, nb, 0, 0, 0), local_anchor_blocks(c, nb, 0, 0, 1));
  EXPECT_NE(local_anchor_blocks(c, nb, 0, 0, 0), local_anchor_blocks(c, nb, 0, 1, 0));
  EXPECT_NE(local_anchor_blocks(c, nb, 0, 0, 0), local_anchor_blocks(c, nb, 1, 0, 0));

  // Through the policy's masks: every key block is reached by every row within one period.
  auto policy = create_policy("local-anchors", {{"window_frames", 0}, {"spatial_window", 0}, {"anchors", 4}});
  std::vector<std::set<int32_t>> reach(static_cast<size_t>(nb));
  for (int step = 0; step < period; ++step) {
    auto mask = policy->build(request_for(*policy, step, 2));
    EXPECT_GT(mask->block_sparsity(), 0.5);
    for (int64_t qb = 0; qb < nb; ++qb)
      for (int32_t i = mask->row_offsets[size_t(qb)]; i < mask->row_offsets[size_t(qb + 1)]; ++i)
        reach[size_t(qb)].insert(mask->col_indices[size_t(i)]);
  }
  for (const auto& r : reach) EXPECT_EQ(int64_t(r.size()), nb);
}

// The mask depends on (step + layer · layer_shift) mod P only, so the policy keeps one mask per
// phase: a later call at the same phase returns the very same mask, every cached mask equals a fresh
// policy's, and reset() forgets them.
TEST(Policies, LocalAnchorsCacheMasksPerPhase) {
  const ParamValues params{{"window_frames", 0}, {"spatial_window", 0}, {"anchors", 4}, {"layer_shift", 3}};
  auto policy = create_policy("local-anchors", params);
  const int64_t period = 8;  // ceil(32 blocks / 4 anchors)
  const auto first = policy->build(request_for(*policy, 2, 1));  // phase 2 + 3 = 5
  EXPECT_FALSE(policy->last_mask_cached());
  EXPECT_EQ(policy->build(request_for(*policy, 2, 1)).get(), first.get());
  EXPECT_TRUE(policy->last_mask_cached());
  // The same phase from another step and layer: 5 + 8 = 13 = step 10 + layer 1 · 3, and step 2 + layer 9 · 3 = 29 ≡ 5.
  EXPECT_EQ(policy->build(request_for(*policy, 2 + int(period), 1)).get(), first.get());
  EXPECT_EQ(policy->build(request_for(*policy, 2, 9)).get(), first.get());
  // Another phase is another mask, and each equals what a fresh policy builds.
  for (int step = 0; step < 12; ++step) {
    for (int layer : {0, 1, 4}) {
      const auto cached = policy->build(request_for(*policy, step, layer));
      auto fresh = create_policy("local-anchors", params);
      const auto want = fresh->build(request_for(*fresh, step, layer));
      EXPECT_EQ(cached->row_offsets, want->row_offsets) << "step " << step << " layer " << layer;
      EXPECT_EQ(cached->cols(), want->cols()) << "step " << step << " layer " << layer;
    }
  }
  EXPECT_NE(policy->build(request_for(*policy, 3, 1))->cols(), first->cols());
  // Another grid or block size is another key.
  auto other = request_for(*policy, 2, 1);
  other.block_size = 128;
  EXPECT_NE(policy->build(other).get(), first.get());
  EXPECT_FALSE(policy->last_mask_cached());
  policy->reset();
  EXPECT_NE(policy->build(request_for(*policy, 2, 1)).get(), first.get());
  EXPECT_FALSE(policy->last_mask_cached());
}

TEST(Policies, LocalAnchorsWindowIsLocal) {
  auto mask = build("local-anchors", {{"window_frames", 1}, {"spatial_window", 0}, {"anchors", 0}, {"sink_frames", 0}});
  // Frame 5's first block (rows 0-3) sees frames 4-6 only and, with spatial_window 0, only the
  // same strip of rows there (the next strip, rows 4-7, is 1 row away).
  const int64_t qb = 5 * 4;
  for (int64_t kb = 0; kb < 32; ++kb) {
    const bool expect = (kb / 4 >= 4 && kb / 4 <= 6) && kb % 4 == 0;
    EXPECT_EQ(mask->contains(0, qb, kb), expect) << kb;
  }
}

TEST(Policies, DfsCacheHoldsUntilRefresh) {
  auto policy = create_policy("dfs", {{"refresh_interval", 4}, {"warmup_steps", 2}});
  auto req = request_for(*policy, 0);
  auto warm = policy->build(req);
  EXPECT_EQ(warm->block_sparsity(), 0.0) << "warm-up steps use the full mask";
  EXPECT_FALSE(policy->last_mask_cached());

  req.step = 2;
  auto first = policy->build(req);
  EXPECT_FALSE(policy->last_mask_cached());
  EXPECT_GT(first->block_sparsity(), 0.5);
  // Different Q/K inside the refresh window: the cached mask comes back unchanged.
  auto other = req;
  other.q = torch::randn_like(req.q);
  other.k = torch::randn_like(req.k);
  for (int step = 3; step <= 5; ++step) {
    other.step = step;
    auto m = policy->build(other);
    EXPECT_TRUE(policy->last_mask_cached()) << step;
    EXPECT_EQ(m.get(), first.get());
    EXPECT_EQ(m->col_indices, first->col_indices);
  }
  // Another layer has its own cache entry.
  other.layer = 1;
  other.step = 3;
  policy->build(other);
  EXPECT_FALSE(policy->last_mask_cached());
  // Step 6 = warmup + interval: the refresh rule fires and the new Q/K are scored.
  other.layer = 0;
  other.step = 6;
  auto refreshed = policy->build(other);
  EXPECT_FALSE(policy->last_mask_cached());
  EXPECT_NE(refreshed->col_indices, first->col_indices);
  // reset() forgets everything.
  policy->reset();
  other.step = 7;
  policy->build(other);
  EXPECT_FALSE(policy->last_mask_cached());
}

TEST(Policies, DfsRatioSchedule) {
  auto policy = create_policy("dfs", {{"keep_ratio", 0.3}, {"ratio_step", 0.1}, {"refresh_interval", 2}});
  auto req = request_for(*policy);
  std::vector<double> sparsity;
  for (int step : {0, 2, 4, 6}) {
    req.step = step;
    sparsity.push_back(policy->build(req)->block_sparsity());
  }
  EXPECT_NEAR(sparsity[0], 0.7, 0.02);
  EXPECT_NEAR(sparsity[1], 0.8, 0.02);
  EXPECT_NEAR(sparsity[2], 0.9, 0.02);
  EXPECT_NEAR(sparsity[3], 0.95, 0.02);  // floored at min_keep_ratio 0.05
}

TEST(Evaluation, EveryModeOnSyntheticInputs) {
  SyntheticSpec s;
  s.grid = TokenGrid{4, 8, 16};
  s.heads = 2;
  s.head_dim = 32;
  const EvalInputs in = make_eval_inputs(s);
  EvalSetup setup;
  // The papers' modes start dense (warm-up steps, dense layers; lvsa at or below the reference
  // horizon): these overrides make step 0 of layer 0 sparse on a 4-frame grid.
  const std::map<std::string, ParamValues> sparse_now = {
      {"dynamicrad", {{"dense_steps", 0}, {"dense_layers", 0}}},
      {"dfsattn", {{"warmup_steps", 0}, {"dense_layers", 0}}},
      {"lvsa", {{"reference_frames", 1}, {"window_frames", 0}}}};
  for (const auto& info : registered_policies()) {
    const auto it = sparse_now.find(info.name);
    const MaskEvaluation ev = evaluate_mode(info.name, it == sparse_now.end() ? ParamValues{} : it->second, in, setup);
    EXPECT_GT(ev.recall, 0.0) << info.name;
    EXPECT_LE(ev.recall, 1.0 + 1e-6) << info.name;
    EXPECT_TRUE(std::isfinite(ev.rel_l2)) << info.name;
    if (info.name == "dense") {
      EXPECT_EQ(ev.block_sparsity, 0.0);
      EXPECT_LE(ev.rel_l2, 1e-5);
      EXPECT_NEAR(ev.recall, 1.0, 1e-5);
    } else {
      EXPECT_GT(ev.block_sparsity, 0.0) << info.name;
    }
  }
  expect_parameter_error([&] { evaluate_mode("nope", {}, in, setup); }, "mode");
}

TEST(Policies, SparsityKnobOnRaggedGrid) {
  // 5x9x13 = 585 tokens: 10 blocks of 64, the last one 9 tokens; frames straddle blocks.
  SyntheticSpec s;
  s.grid = TokenGrid{5, 9, 13};
  s.heads = 4;
  s.head_dim = 32;
  const EvalInputs in = make_eval_inputs(s);
  EvalSetup setup;
  for (const char* mode : {"radial", "dfs"}) {
    for (double keep : {0.4, 0.6, 0.8}) {
      const MaskEvaluation ev = evaluate_mode(mode, {{"keep_ratio", keep}}, in, setup);
      EXPECT_NEAR(ev.block_sparsity, 1.0 - keep, 0.02) << mode << " keep " << keep;
      ev.mask->validate();
      EXPECT_EQ(ev.mask->block_len(9), 9);
    }
  }
  for (const char* mode : {"radial-dynamic", "local-anchors"}) {
    const MaskEvaluation ev = evaluate_mode(mode, {}, in, setup);
    ev.mask->validate();
    EXPECT_GT(ev.recall, 0.5) << mode;
  }
}

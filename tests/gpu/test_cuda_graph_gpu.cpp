// GPU tests of the CUDA-graph forward (engine/model/graph_forward.h): a replayed graph gives what
// the eager forward gives for the same inputs, over replays with new latents, timestep and text;
// a mode whose masks change every step or come from Q/K runs eagerly and says why. Skipped without
// a GPU. Tolerance: the graph replays the eager forward's own kernels on the same shapes, so the
// outputs should be bit-identical; the bound is 1e-6 relative L2 (the max |diff| is printed).
#include <gtest/gtest.h>

#ifdef LONGSHOT_HAS_CUDA

#include <memory>
#include <string>
#include <vector>

#include "engine/attention/mask_policy.h"
#include "engine/model/dit.h"
#include "engine/model/graph_forward.h"
#include "tests/gpu/skip_without_gpu.h"

using namespace longshot;

namespace {

double rel_l2(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kCPU, torch::kFloat64), y = b.to(torch::kCPU, torch::kFloat64);
  return (x - y).norm().item<double>() / std::max(1e-30, y.norm().item<double>());
}

// The tiny DiT widened to head_dim 64 (so sparse layers run our block-sparse kernel), two layers,
// random bf16 weights on the GPU, eval mode.
model::WanDiT graph_test_model() {
  auto c = model::find_config("tiny");
  c.dim = 128;
  c.ffn_dim = 256;
  c.num_heads = 2;
  c.num_layers = 2;
  model::WanDiT m(c);
  m->init_random(11);
  m->eval();
  m->to(torch::kCUDA, torch::kBFloat16);
  return m;
}

// One call's random inputs: 8 latent frames of 16x16 pixels (8x8x8 = 512 tokens: 8 blocks of 64).
struct Inputs {
  torch::Tensor x, t, text;
};
Inputs random_inputs(const model::WanDiT& m, int seed) {
  torch::manual_seed(seed);
  const auto& c = m->config();
  Inputs in;
  in.x = torch::randn({1, c.in_channels, 8, 16, 16}, torch::kCUDA);
  in.t = torch::full({1}, 900.0 - 100.0 * seed, torch::kCUDA);
  in.text = torch::randn({1, 12, c.text_dim}, torch::kCUDA);
  return in;
}

void expect_same(const torch::Tensor& graph, const torch::Tensor& eager, const std::string& what) {
  ASSERT_EQ(graph.sizes(), eager.sizes()) << what;
  const double diff = (graph.to(torch::kFloat) - eager.to(torch::kFloat)).abs().max().item<double>();
  std::printf("  %s: max |graph - eager| = %.3g (%s)\n", what.c_str(), diff, diff == 0 ? "bit-exact" : "not bit-exact");
  EXPECT_FALSE(graph.isnan().any().item<bool>()) << what;
  EXPECT_LE(rel_l2(graph, eager), 1e-6) << what;
}

// Three calls with new inputs through the graph and eagerly; the first graph output is checked
// again at the end (replays must not overwrite what an earlier call returned).
void replays_match_eager(model::WanDiT& m, const model::AttentionPlan& plan, const std::string& label) {
  torch::NoGradGuard no_grad;
  model::GraphForward graphs(m);
  torch::Tensor first_graph, first_eager;
  for (int call = 0; call < 3; ++call) {
    const auto in = random_inputs(m, call + 1);
    const auto eager = m->forward_with_stats(in.x, in.t, in.text, plan);
    const auto graph = graphs.forward_with_stats(in.x, in.t, in.text, plan);
    ASSERT_TRUE(graphs.last_replayed()) << label << ": ran eagerly: " << graphs.last_eager_reason();
    expect_same(graph.velocity, eager.velocity, label + " call " + std::to_string(call));
    EXPECT_EQ(graph.stats.sparsity, eager.stats.sparsity) << label;
    if (call == 0) first_graph = graph.velocity, first_eager = eager.velocity;
  }
  EXPECT_EQ(graphs.captures(), 1) << label;
  EXPECT_EQ(graphs.replays(), 3) << label;
  expect_same(first_graph, first_eager, label + " first output after later replays");
}

}  // namespace

TEST(CudaGraphGpu, DenseReplayMatchesEager) {
  SKIP_WITHOUT_GPU();
  auto m = graph_test_model();
  model::AttentionPlan plan;  // no policy: every layer dense (SDPA); measure_time on, as the pipeline
  replays_match_eager(m, plan, "dense");
}

TEST(CudaGraphGpu, RadialReplayMatchesEager) {
  SKIP_WITHOUT_GPU();
  auto m = graph_test_model();
  auto policy = attention::create_policy("radial-ratio", {{"keep_ratio", 0.4}});
  model::AttentionPlan plan;
  plan.policy = policy.get();
  plan.block_size = 64;
  plan.backend = attention::Backend::Cuda;  // our block-sparse kernel on every layer
  plan.step = 5;
  plan.num_steps = 10;
  replays_match_eager(m, plan, "radial-ratio");
  // The mask really is sparse (else this would be the dense case again).
  torch::NoGradGuard no_grad;
  const auto in = random_inputs(m, 1);
  EXPECT_GT(m->forward_with_stats(in.x, in.t, in.text, plan).stats.mean_sparsity(), 0.1);
}

// local-anchors rotates its anchors with the step: each new mask set needs its own graph. With one
// graph allowed, step 0 is captured, step 1 runs eagerly (saying why), and a later step whose masks
// equal step 0's (the rotation's period) replays step 0's graph.
TEST(CudaGraphGpu, LocalAnchorsCapturesPerMaskSetAndFallsBackPastTheLimit) {
  SKIP_WITHOUT_GPU();
  auto m = graph_test_model();
  auto policy = attention::create_policy("local-anchors");
  torch::NoGradGuard no_grad;
  model::GraphForward graphs(m, /*max_graphs=*/1);
  auto plan_at = [&](int step) {
    model::AttentionPlan plan;
    plan.policy = policy.get();
    plan.block_size = 64;
    plan.backend = attention::Backend::Cuda;
    plan.step = step;
    plan.num_steps = 10;
    return plan;
  };
  // Which later step repeats step 0's masks, from the policy itself (host-side masks).
  auto masks_at = [&](int step) {
    std::vector<std::vector<int32_t>> all;
    for (int l = 0; l < 2; ++l) {
      attention::MaskRequest r;
      r.grid = m->token_grid(8, 16, 16);
      r.block_size = 64;
      r.num_heads = 2;
      r.step = step;
      r.num_steps = 10;
      r.layer = l;
      r.num_layers = 2;
      const auto mask = policy->build(r);
      all.push_back(mask->row_offsets);
      all.push_back(mask->cols());
    }
    return all;
  };
  const auto base = masks_at(0);
  ASSERT_NE(masks_at(1), base) << "step 1's masks should differ from step 0's for this test";
  int repeat = -1;
  for (int s = 2; s < 10 && repeat < 0; ++s)
    if (masks_at(s) == base) repeat = s;
  for (int step : {0, 1, repeat}) {
    if (step < 0) continue;
    const auto in = random_inputs(m, step + 1);
    const auto plan = plan_at(step);
    const auto eager = m->forward_with_stats(in.x, in.t, in.text, plan);
    const auto graph = graphs.forward_with_stats(in.x, in.t, in.text, plan);
    if (step == 1) {
      EXPECT_FALSE(graphs.last_replayed());
      EXPECT_NE(graphs.last_eager_reason().find("changed again"), std::string::npos) << graphs.last_eager_reason();
    } else {
      EXPECT_TRUE(graphs.last_replayed()) << "step " << step << ": " << graphs.last_eager_reason();
    }
    expect_same(graph.velocity, eager.velocity, "local-anchors step " + std::to_string(step));
  }
  EXPECT_EQ(graphs.captures(), 1);
  std::printf("  local-anchors: step 0's masks recur at step %d\n", repeat);
}

// radial-mass scores each step's Q/K to pick blocks: never captured, the eager forward runs.
TEST(CudaGraphGpu, DynamicModeFallsBackToEager) {
  SKIP_WITHOUT_GPU();
  auto m = graph_test_model();
  auto policy = attention::create_policy("radial-mass");
  ASSERT_TRUE(policy->needs_qk());
  model::AttentionPlan plan;
  plan.policy = policy.get();
  plan.block_size = 64;
  plan.backend = attention::Backend::Cuda;
  torch::NoGradGuard no_grad;
  model::GraphForward graphs(m);
  const auto in = random_inputs(m, 3);
  const auto eager = m->forward_with_stats(in.x, in.t, in.text, plan);
  const auto graph = graphs.forward_with_stats(in.x, in.t, in.text, plan);
  EXPECT_FALSE(graphs.last_replayed());
  EXPECT_NE(graphs.last_eager_reason().find("Q/K"), std::string::npos) << graphs.last_eager_reason();
  EXPECT_EQ(graphs.captures(), 0);
  // Two eager forwards: equal up to the dynamic scoring's summation order (ties may flip a block).
  EXPECT_LT(rel_l2(graph.velocity, eager.velocity), 2e-2);
  // Its dense warm-up steps have no masks to build, so they can be captured.
  plan.dense_step = true;
  plan.backend = attention::Backend::Auto;  // as the pipeline runs dense layers (SDPA)
  graphs.forward_with_stats(in.x, in.t, in.text, plan);
  EXPECT_TRUE(graphs.last_replayed()) << graphs.last_eager_reason();
}

#endif  // LONGSHOT_HAS_CUDA

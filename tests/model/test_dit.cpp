// The Wan2.1 DiT on the tiny config: shapes, determinism, the sparse path with a full mask equals
// the dense path (raster and Hilbert order: permute-once + permuted RoPE), statistics, dense
// layers/steps, cancel, trainability.
#include <gtest/gtest.h>

#include <set>

#include "engine/attention/mask_policy.h"
#include "engine/common/error.h"
#include "engine/model/dit.h"
#include "engine/model/graph_forward.h"
#include "tests/common/tiny_dit.h"

using namespace longshot;
using namespace longshot::model;

namespace {

WanDiT tiny_model(uint64_t seed = 1) { return longshot::testing::tiny_dit(seed); }
using Inputs = longshot::testing::TinyInputs;
Inputs inputs(uint64_t seed = 3) { return longshot::testing::tiny_inputs(seed); }

// A test policy: a fixed mask in a chosen ordering (full, or only the diagonal blocks).
class FixedPolicy : public attention::MaskPolicy {
 public:
  FixedPolicy(attention::OrderingKind ordering, bool full) : ordering_(ordering), full_(full) {}
  std::string name() const override { return "fixed"; }
  attention::OrderingKind ordering() const override { return ordering_; }
  attention::BlockMaskPtr build(const attention::MaskRequest& r) override {
    ++calls;
    const int64_t n = r.grid.size();
    if (full_) return std::make_shared<attention::BlockMask>(attention::BlockMask::full(n, r.block_size, 1, ordering_));
    const int64_t nb = attention::BlockMask::blocks_for(n, r.block_size);
    std::vector<uint8_t> keep(size_t(nb * nb), 0);
    for (int64_t b = 0; b < nb; ++b) keep[size_t(b * nb + b)] = 1;
    return std::make_shared<attention::BlockMask>(attention::BlockMask::from_dense(keep, n, r.block_size, 1, ordering_));
  }
  attention::ParamValues params() const override { return {}; }
  int calls = 0;

 private:
  attention::OrderingKind ordering_;
  bool full_;
};

}  // namespace

TEST(Config, WanFactsAndRegistry) {
  const auto c = find_config("wan2.1-t2v-1.3b");
  EXPECT_EQ(c.dim, 1536);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 12);
  EXPECT_EQ(c.ffn_dim, 8960);
  EXPECT_EQ(c.text_dim, 4096);
  EXPECT_EQ(c.head_dim(), 128);
  const auto b = find_config("wan2.1-t2v-14b");
  EXPECT_EQ(b.dim, 5120);
  EXPECT_EQ(b.num_layers, 40);
  EXPECT_EQ(b.num_heads, 40);
  EXPECT_EQ(b.ffn_dim, 13824);
  EXPECT_THROW(find_config("wan9"), ParameterError);
  DiTConfig mine = find_config("tiny");
  mine.name = "test-registered";
  mine.num_layers = 1;
  register_config(mine);
  EXPECT_EQ(find_config("test-registered").num_layers, 1);
  mine.num_heads = 5;  // 64 not divisible by 5
  EXPECT_THROW(register_config(mine), ParameterError);
}

TEST(Dit, RopeSplitMatchesWan) {
  EXPECT_EQ(rope_split(128), (std::array<int64_t, 3>{44, 42, 42}));
  EXPECT_EQ(rope_split(32), (std::array<int64_t, 3>{12, 10, 10}));
}

TEST(Dit, ParameterNamesAreWanKeys) {
  auto m = tiny_model();
  std::set<std::string> names;
  for (const auto& p : m->named_parameters()) names.insert(p.key());
  for (const char* k : {"patch_embedding.weight", "text_embedding.0.weight", "text_embedding.2.bias", "time_embedding.0.weight",
                        "time_projection.1.weight", "blocks.0.modulation", "blocks.0.self_attn.q.weight",
                        "blocks.0.self_attn.norm_q.weight", "blocks.2.cross_attn.o.bias", "blocks.1.norm3.weight",
                        "blocks.1.ffn.0.weight", "blocks.1.ffn.2.bias", "head.head.weight", "head.modulation"})
    EXPECT_TRUE(names.count(k)) << k;
  EXPECT_FALSE(names.count("blocks.0.norm1.weight"));  // norm1/norm2 have no affine
  EXPECT_EQ(m->named_parameters()["blocks.0.modulation"].sizes(), (std::vector<int64_t>{1, 6, 64}));
}

TEST(Dit, OutputShapeAndFinite) {
  auto m = tiny_model();
  auto in = inputs();
  torch::NoGradGuard ng;
  auto out = m->forward(in.x, in.t, in.text);
  EXPECT_EQ(out.sizes(), in.x.sizes());
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_GT(out.abs().mean().item<double>(), 1e-4);
  EXPECT_THROW(m->forward(torch::zeros({1, 4, 4, 8, 8}), in.t, in.text), ShapeError);
  EXPECT_THROW(m->forward(torch::zeros({1, 3, 4, 7, 8}), in.t, in.text), ShapeError);
  EXPECT_THROW(m->forward(in.x, in.t, torch::zeros({1, 5, 31})), ShapeError);
}

// RoPE gives attention relative positions only: on a flat input every token computes the same thing,
// so the model cannot tell the frame's middle from its walls. Position planes break that; with
// their patch-embedding weights at zero the model is the one without them.
TEST(Dit, PositionPlanesTellWhereATokenIs) {
  auto plain = tiny_model(7);
  auto config = find_config("tiny");
  config.position_channels = 2;
  WanDiT placed(config);
  placed->init_random(7);
  placed->eval();
  auto in = inputs();
  const auto flat = torch::full({1, 3, 4, 8, 8}, 0.3f);
  torch::NoGradGuard ng;
  // Largest change between the output and itself shifted by one patch (4 pixels) across or down.
  auto spread = [](const torch::Tensor& out) {
    const auto across = (out.narrow(4, 4, 4) - out.narrow(4, 0, 4)).abs().max();
    const auto down = (out.narrow(3, 4, 4) - out.narrow(3, 0, 4)).abs().max();
    return torch::max(across, down).item<double>();
  };
  const auto plain_out = plain->forward(flat, in.t, in.text);
  EXPECT_LT(spread(plain_out), 1e-4) << "without planes a flat input gives a flat output";
  EXPECT_GT(spread(placed->forward(flat, in.t, in.text)), 1e-3) << "with planes the output depends on position";
  EXPECT_EQ(placed->patch_embedding->weight.size(1), 5);

  // Zero weights on the planes, every other parameter copied: the output of the plain model.
  auto src = plain->named_parameters();
  for (auto& p : placed->named_parameters()) {
    auto& dst = p.value();
    if (p.key() == "patch_embedding.weight") {
      dst.zero_();
      dst.narrow(1, 0, 3).copy_(src[p.key()]);
    } else {
      dst.copy_(src[p.key()]);
    }
  }
  EXPECT_TRUE(torch::allclose(placed->forward(in.x, in.t, in.text), plain->forward(in.x, in.t, in.text), 1e-5, 1e-6));
  config.position_channels = 1;
  EXPECT_THROW(WanDiT{config}, ParameterError);
}

TEST(Dit, SameSeedSameWeightsAndOutput) {
  auto a = tiny_model(5), b = tiny_model(5), c = tiny_model(6);
  auto in = inputs();
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(a->forward(in.x, in.t, in.text), b->forward(in.x, in.t, in.text)));
  EXPECT_FALSE(torch::equal(a->forward(in.x, in.t, in.text), c->forward(in.x, in.t, in.text)));
}

TEST(Dit, FullMaskThroughSparsePathEqualsDense) {
  auto m = tiny_model();
  auto in = inputs();
  torch::NoGradGuard ng;
  const auto dense = m->forward(in.x, in.t, in.text);
  for (auto ordering : {attention::OrderingKind::Raster, attention::OrderingKind::Hilbert}) {
    FixedPolicy policy(ordering, /*full=*/true);
    AttentionPlan plan;
    plan.policy = &policy;
    plan.block_size = 16;  // 64 tokens: 4 blocks
    const auto sparse = m->forward(in.x, in.t, in.text, plan);
    EXPECT_EQ(policy.calls, 3);
    EXPECT_LT((sparse - dense).abs().max().item<double>(), 1e-4) << attention::to_string(ordering);
  }
  // The registered dense mode goes the same way.
  auto policy = attention::create_policy("dense");
  AttentionPlan plan;
  plan.policy = policy.get();
  plan.block_size = 32;
  EXPECT_LT((m->forward(in.x, in.t, in.text, plan) - dense).abs().max().item<double>(), 1e-4);
}

TEST(Dit, HilbertOrderingChangesNothingButTheMaskLayout) {
  // A non-full mask in Hilbert order must differ from dense, and differ from the same mask in raster order.
  auto m = tiny_model();
  auto in = inputs();
  torch::NoGradGuard ng;
  FixedPolicy hil(attention::OrderingKind::Hilbert, false), ras(attention::OrderingKind::Raster, false);
  AttentionPlan a, b;
  a.policy = &hil;
  b.policy = &ras;
  a.block_size = b.block_size = 16;
  const auto dense = m->forward(in.x, in.t, in.text);
  const auto oh = m->forward(in.x, in.t, in.text, a), orr = m->forward(in.x, in.t, in.text, b);
  EXPECT_GT((oh - dense).abs().max().item<double>(), 1e-4);
  EXPECT_GT((oh - orr).abs().max().item<double>(), 1e-4);
}

TEST(Dit, StatsDenseLayersAndSteps) {
  auto m = tiny_model();
  auto in = inputs();
  torch::NoGradGuard ng;
  FixedPolicy diag(attention::OrderingKind::Raster, false);
  AttentionPlan plan;
  plan.policy = &diag;
  plan.block_size = 16;  // 4×4×4 = 64 tokens → 4 blocks; the diagonal keeps 1/4
  plan.dense_first_layers = 1;
  AttentionProbe probe;
  probe.layer = 1;
  probe.head = 1;
  probe.recall = true;
  probe.heatmap = true;
  probe.keep_masks = true;
  int qkv_calls = 0;
  probe.on_qkv = [&](int layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    EXPECT_EQ(layer, qkv_calls % 3);  // every layer in order, forward after forward
    EXPECT_EQ(q.sizes(), k.sizes());
    EXPECT_EQ(q.size(2), 64);
    EXPECT_EQ(v.size(2), 64);
    ++qkv_calls;
  };
  const auto out = m->forward_with_stats(in.x, in.t, in.text, plan, probe);
  EXPECT_EQ(qkv_calls, 3);
  const auto& s = out.stats;
  ASSERT_EQ(s.sparsity.size(), 6u);
  EXPECT_EQ(s.sparsity[0], 0.0f);
  EXPECT_EQ(s.sparsity[1], 0.0f);
  EXPECT_NEAR(s.sparsity[2], 0.75, 1e-6);
  EXPECT_NEAR(s.sparsity[5], 0.75, 1e-6);
  EXPECT_NEAR(s.mean_sparsity(), 0.75 * 4 / 6, 1e-6);
  EXPECT_EQ(diag.calls, 2);
  ASSERT_TRUE(s.inspected_mask);
  EXPECT_GT(s.recall, 0.0);
  EXPECT_LT(s.recall, 1.0);
  ASSERT_TRUE(s.inspected_probs.defined());
  EXPECT_EQ(s.inspected_probs.numel(), 64);
  EXPECT_NEAR(s.inspected_probs.sum().item<double>(), 1.0, 1e-4);
  EXPECT_EQ(s.layer_masks.size(), 3u);
  EXPECT_FALSE(s.layer_masks[0]);
  EXPECT_TRUE(s.layer_masks[2]);
  EXPECT_GE(s.attention_ms, s.mask_ms);

  // The statistics are returned, never left in what was passed: a second forward under the same
  // plan with a dense step reports its own figures, and a forward without a probe inspects nothing.
  plan.dense_step = true;
  diag.calls = 0;
  const auto dense = m->forward_with_stats(in.x, in.t, in.text, plan, probe);
  EXPECT_EQ(diag.calls, 0);
  EXPECT_EQ(dense.stats.mean_sparsity(), 0.0);
  EXPECT_FALSE(dense.stats.inspected_mask);
  EXPECT_NEAR(s.sparsity[2], 0.75, 1e-6) << "the first forward's stats changed";
  plan.dense_step = false;
  const auto unprobed = m->forward_with_stats(in.x, in.t, in.text, plan);
  EXPECT_FALSE(unprobed.stats.inspected_probs.defined());
  EXPECT_TRUE(unprobed.stats.layer_masks.empty());
  EXPECT_NEAR(unprobed.stats.sparsity[2], 0.75, 1e-6);
  plan.dense_first_layers = 0;
  plan.dense_last_layers = 3;
  diag.calls = 0;
  m->forward(in.x, in.t, in.text, plan);
  EXPECT_EQ(diag.calls, 0);
}

TEST(Dit, CancelFlagStopsTheForward) {
  auto m = tiny_model();
  auto in = inputs();
  std::atomic<bool> cancel{true};
  AttentionPlan plan;
  plan.cancel = &cancel;
  torch::NoGradGuard ng;
  EXPECT_THROW(m->forward(in.x, in.t, in.text, plan), Cancelled);
}

TEST(Dit, TrainableThroughDenseAttention) {
  auto m = tiny_model();
  m->train();
  auto in = inputs();
  auto loss = m->forward(in.x, in.t, in.text).pow(2).mean();
  loss.backward();
  for (const char* k : {"blocks.0.self_attn.q.weight", "blocks.0.self_attn.norm_k.weight", "blocks.1.cross_attn.k.weight",
                        "patch_embedding.weight", "head.modulation", "text_embedding.0.weight"}) {
    auto g = m->named_parameters()[k].grad();
    ASSERT_TRUE(g.defined()) << k;
    EXPECT_GT(g.abs().sum().item<double>(), 0.0) << k;
  }
}

// The CUDA-graph forward on the CPU (graph_forward.h): no graph, the eager forward's exact output,
// and the reason in last_eager_reason (also logged once). The RoPE tables come from the model's
// device-constant cache from the second forward on: same values as the first.
TEST(CudaGraph, OnTheCpuRunsEagerlyAndSaysWhy) {
  auto m = tiny_model();
  auto in = inputs();
  torch::NoGradGuard ng;
  AttentionPlan plan;
  const auto eager = m->forward(in.x, in.t, in.text, plan);
  GraphForward graphs(m);
  const auto out = graphs.forward(in.x, in.t, in.text, plan);
  EXPECT_FALSE(graphs.last_replayed());
  EXPECT_EQ(graphs.captures(), 0);
  const std::string why = graphs.last_eager_reason();
  EXPECT_NE(why.find(cuda_graphs_supported() ? "not on a CUDA device" : "no CUDA"), std::string::npos) << why;
  EXPECT_TRUE(torch::equal(out, eager));
  EXPECT_FALSE(m->device_constants().empty());
  EXPECT_THROW(GraphForward(m, 0), ParameterError);
}

// What the refusal names, whatever the device: autograd, probes, modes that score Q/K (before
// the device is even looked at), then the CPU itself.
TEST(CudaGraph, RefusalNamesAutogradProbesAndDynamicModes) {
  auto m = tiny_model();
  const auto x = torch::zeros({1, 3, 4, 8, 8});
  AttentionPlan plan;
  EXPECT_NE(cuda_graph_refusal(*m, x, plan).find("autograd"), std::string::npos);
  torch::NoGradGuard ng;
  AttentionProbe probe;
  probe.keep_masks = true;
  EXPECT_NE(cuda_graph_refusal(*m, x, plan, probe).find("probe"), std::string::npos);
  auto dynamic = attention::create_policy("radial-mass");
  plan.policy = dynamic.get();
  EXPECT_NE(cuda_graph_refusal(*m, x, plan).find("Q/K"), std::string::npos);
  const std::string cpu = cuda_graphs_supported() ? "not on a CUDA device" : "no CUDA";
  plan.dense_step = true;  // a dense step builds no mask: only the CPU stands in the way
  EXPECT_NE(cuda_graph_refusal(*m, x, plan).find(cpu), std::string::npos);
  auto radial = attention::create_policy("radial-ratio");  // a static mode
  plan.policy = radial.get();
  plan.dense_step = false;
  EXPECT_NE(cuda_graph_refusal(*m, x, plan).find(cpu), std::string::npos);
}

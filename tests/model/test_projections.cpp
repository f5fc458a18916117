// The block's linear layers at inference (projections.h, dit_linears.cpp): q/k/v as one GEMM over
// tied weights equals the separate linears (fp32 CPU within 1e-6) and keeps parameter names and
// gradients; the text K/V cache hits across steps and cond/uncond, and misses (recomputes) when
// its key changes — the text tensor, its contents, a weight, the precision — or after clear();
// FP8 refuses clearly where it cannot run; the per-op timing hook sees every op of every block.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/common/error.h"
#include "engine/model/dit.h"
#include "tests/common/tiny_dit.h"
#include "engine/model/projections.h"

using namespace longshot;
using namespace longshot::model;

namespace {

WanDiT tiny_model(uint64_t seed = 1) { return longshot::testing::tiny_dit(seed); }
using Inputs = longshot::testing::TinyInputs;
Inputs inputs(uint64_t seed = 3) { return longshot::testing::tiny_inputs(seed); }

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Largest difference relative to the reference's largest magnitude: one GEMM over concatenated
// weights may round the last bit of a sum differently from three (fp32 ulp ~ 6e-8 relative).
double rel_diff(const torch::Tensor& got, const torch::Tensor& ref) {
  return max_abs_diff(got, ref) / std::max(1e-30, ref.abs().max().item<double>());
}

// The forward with autograd on: every linear on its own and no cache — the unfused path.
torch::Tensor unfused_forward(WanDiT& m, const Inputs& in) {
  torch::AutoGradMode grad(true);
  return m->forward(in.x, in.t, in.text).detach();
}

torch::Tensor inference_forward(WanDiT& m, const Inputs& in, const torch::Tensor& text) {
  torch::NoGradGuard no_grad;
  return m->forward(in.x, in.t, text);
}

}  // namespace

TEST(FusedLinear, OneGemmEqualsThePartsAndTiesTheirWeights) {
  torch::manual_seed(5);
  torch::nn::Linear a(16, 8), b(16, 24), c(16, 8);
  FusedLinear f({a, b, c});
  const auto x = torch::randn({2, 7, 16});
  const auto ra = a->forward(x).detach(), rb = b->forward(x).detach(), rc = c->forward(x).detach();
  torch::NoGradGuard no_grad;
  const auto outs = f.forward(x);
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_LE(rel_diff(outs[0], ra), 1e-6);
  EXPECT_LE(rel_diff(outs[1], rb), 1e-6);
  EXPECT_LE(rel_diff(outs[2], rc), 1e-6);
  // The parameters now live in the one buffer: no second copy, and their names are unchanged.
  ASSERT_TRUE(f.tied());
  EXPECT_TRUE(b->weight.is_alias_of(f.weight()));
  EXPECT_EQ(b->weight.sizes(), (std::vector<int64_t>{24, 16}));
  EXPECT_EQ(b->named_parameters().size(), 2u);
  EXPECT_FALSE(f.tie());  // already tied: nothing rebuilt
  // A write through a parameter (the weight loader's copy_) reaches the GEMM.
  b->weight.copy_(torch::ones({24, 16}));
  EXPECT_LE(rel_diff(f.forward(x)[1], b->forward(x)), 1e-6);
  // Module::to() gives each parameter its own storage: the next forward re-ties.
  b->to(torch::kDouble);
  b->to(torch::kFloat);
  EXPECT_FALSE(f.tied());
  EXPECT_LE(rel_diff(f.forward(x)[1], b->forward(x)), 1e-6);
  EXPECT_TRUE(f.tied());
}

TEST(FusedLinear, GradientsReachTheParametersWithAutogradOn) {
  torch::manual_seed(6);
  torch::nn::Linear a(8, 4), b(8, 4);
  FusedLinear f({a, b});
  {
    torch::NoGradGuard no_grad;
    f.forward(torch::randn({3, 8}));  // tie first: training after inference must still work
  }
  const auto outs = f.forward(torch::randn({3, 8}));
  (outs[0].sum() + 2 * outs[1].sum()).backward();
  ASSERT_TRUE(a->weight.grad().defined() && b->weight.grad().defined());
  EXPECT_GT(b->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_THROW(f.forward(torch::randn({3, 8}), LinearPrecision::Fp8), ParameterError);
}

TEST(DiTProjections, FusedForwardEqualsUnfusedWithin1e6) {
  auto m = tiny_model();
  const auto in = inputs();
  const auto ref = unfused_forward(m, in);
  const auto got = inference_forward(m, in, in.text);
  std::printf("fused vs unfused forward (fp32 CPU): max |diff| %.3g, relative to max |out| %.3g\n",
              max_abs_diff(got, ref), rel_diff(got, ref));
  EXPECT_LE(rel_diff(got, ref), 1e-6);
  // Weights were tied into q/k/v buffers by the inference forward; the unfused path still agrees.
  EXPECT_LE(rel_diff(unfused_forward(m, in), ref), 1e-6);
  // And the checkpoint keys are unchanged.
  EXPECT_TRUE(m->named_parameters().contains("blocks.0.self_attn.k.weight"));
  EXPECT_TRUE(m->named_parameters().contains("blocks.1.cross_attn.v.bias"));
}

TEST(TextKVCache, HitsAcrossStepsAndCondUncondMissesOnEveryKeyChange) {
  auto m = tiny_model();
  const auto in = inputs();
  auto& cache = m->text_kv_cache();
  auto cond = in.text.clone(), uncond = torch::zeros_like(in.text);
  const auto c0 = inference_forward(m, in, cond);
  const auto u0 = inference_forward(m, in, uncond);
  EXPECT_EQ(cache.misses(), 2);
  EXPECT_EQ(cache.hits(), 0);
  // Steps: the same two tensors again → hits, same outputs.
  for (int step = 0; step < 3; ++step) {
    EXPECT_LE(max_abs_diff(inference_forward(m, in, cond), c0), 0.0);
    EXPECT_LE(max_abs_diff(inference_forward(m, in, uncond), u0), 0.0);
  }
  EXPECT_EQ(cache.hits(), 6);
  EXPECT_EQ(cache.size(), 2u);
  // Same values in another tensor: the key is the tensor, so a miss (and the same output).
  EXPECT_LE(rel_diff(inference_forward(m, in, cond.clone()), c0), 1e-6);
  EXPECT_EQ(cache.misses(), 3);
  EXPECT_EQ(cache.size(), 2u);  // capacity 2: the least recently used (cond; uncond ran last) went
  inference_forward(m, in, uncond);
  EXPECT_EQ(cache.misses(), 3);
  inference_forward(m, in, cond);
  EXPECT_EQ(cache.misses(), 4);
  // The text changed in place: its version moved, the K/V are recomputed (output follows).
  cond.mul_(2);
  const auto c2 = inference_forward(m, in, cond);
  EXPECT_EQ(cache.misses(), 5);
  EXPECT_GT(max_abs_diff(c2, c0), 1e-4);
  EXPECT_LE(rel_diff(c2, unfused_forward(m, {in.x, in.t, cond})), 1e-6);
  // A weight the K/V depend on changed (in place, as the weight loader writes): recomputed.
  {
    torch::NoGradGuard no_grad;
    auto& blk = *m->blocks[1]->as<WanBlockImpl>();
    blk.cross_attn->v->weight.mul_(0.5);
  }
  const auto c3 = inference_forward(m, in, cond);
  EXPECT_EQ(cache.misses(), 6);
  EXPECT_GT(max_abs_diff(c3, c2), 1e-5);
  EXPECT_LE(rel_diff(c3, unfused_forward(m, {in.x, in.t, cond})), 1e-6);
  // clear(): empty, next forward misses.
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  inference_forward(m, in, cond);
  EXPECT_EQ(cache.misses(), 7);
  // Autograd on: never cached.
  const auto hits = cache.hits(), misses = cache.misses();
  unfused_forward(m, {in.x, in.t, cond});
  EXPECT_EQ(cache.hits(), hits);
  EXPECT_EQ(cache.misses(), misses);
}

// The residual stream's precision: bf16 needs a bf16 model (refused with the reason otherwise, at
// the setter and again at forward if the model moved); the bf16 stream rounds x after each update
// (diffusers' (x.float() + y · gate).type_as(x)), which moves the output by bf16 noise, no more.
TEST(ResidualPrecision, ParsesRefusesFp32ModelsAndRoundsTheStream) {
  EXPECT_EQ(parse_residual_precision("bf16"), ResidualPrecision::Bf16);
  EXPECT_EQ(parse_residual_precision("fp32"), ResidualPrecision::Fp32);
  EXPECT_STREQ(residual_precision_name(ResidualPrecision::Bf16), "bf16");
  EXPECT_THROW(parse_residual_precision("fp16"), ParameterError);
  auto m = tiny_model();
  try {
    m->set_residual_precision(ResidualPrecision::Bf16);
    FAIL() << "a bf16 stream accepted for an fp32 model";
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("residual"), std::string::npos) << e.what();
  }
  EXPECT_EQ(m->residual_precision(), ResidualPrecision::Fp32);
  m->to(torch::kBFloat16);
  const auto in = inputs();
  torch::NoGradGuard no_grad;
  const auto f32 = m->forward(in.x, in.t, in.text);
  m->set_residual_precision(ResidualPrecision::Bf16);
  const auto b16 = m->forward(in.x, in.t, in.text);
  const double rel = ((b16 - f32).to(torch::kDouble).norm() / f32.to(torch::kDouble).norm()).item<double>();
  std::printf("bf16 residual stream vs fp32, tiny bf16 model on the CPU: rel-L2 %.2e\n", rel);
  EXPECT_GT(rel, 0.0) << "the stream was not rounded";
  EXPECT_LT(rel, 2e-2);
  m->to(torch::kFloat);  // moved back to fp32 with the bf16 stream still asked for
  EXPECT_THROW(m->forward(in.x, in.t, in.text), ParameterError);
  m->set_residual_precision(ResidualPrecision::Fp32);
  EXPECT_NO_THROW(m->forward(in.x, in.t, in.text));
}

TEST(LinearPrecision, ParsesAndRefusesFp8WhereItCannotRun) {
  EXPECT_EQ(parse_linear_precision("fp8"), LinearPrecision::Fp8);
  EXPECT_EQ(parse_linear_precision("native"), LinearPrecision::Native);
  EXPECT_THROW(parse_linear_precision("fp16"), ParameterError);
  auto m = tiny_model();
  // A CPU model never runs FP8: a clear error naming why, and the precision stays native.
  try {
    m->set_linear_precision(LinearPrecision::Fp8);
    FAIL() << "fp8 accepted on the CPU";
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("fp8"), std::string::npos) << e.what();
  }
  EXPECT_EQ(m->linear_precision(), LinearPrecision::Native);
  EXPECT_FALSE(fp8_unsupported_reason(torch::kCPU).empty());
  // The FP8 residual GEMM refuses CPU tensors the same way, leaving x untouched.
  auto x = torch::ones({1, 4, 32});
  const auto h = torch::ones({1, 4, 32}), w = torch::ones({32, 32});
  Fp8Weight w8;
  EXPECT_THROW(fp8_residual_add_(x, h, w, torch::Tensor(), w8, torch::Tensor()), ParameterError);
  EXPECT_TRUE(x.eq(1).all().item<bool>());
}

namespace {
struct RecordingMarker : OpMarker {
  std::vector<int> blocks;
  std::vector<std::string> ops;
  void block(int layer) override { blocks.push_back(layer); }
  void mark(const char* op) override { ops.emplace_back(op); }
};
}  // namespace

TEST(OpMarker, SeesEveryOpOfEveryBlockInOrder) {
  auto m = tiny_model();
  const auto in = inputs();
  RecordingMarker rec;
  m->op_marker = &rec;
  inference_forward(m, in, in.text);
  m->op_marker = nullptr;
  const int layers = int(m->config().num_layers);
  ASSERT_EQ(rec.blocks.size(), size_t(layers));
  for (int l = 0; l < layers; ++l) EXPECT_EQ(rec.blocks[size_t(l)], l);
  // Dense forward on the CPU: no mask build.
  const std::vector<std::string> per_block = {
      "modulation",     "norm1+modulate",     "qkv projection",  "q/k norm+rope",      "self-attention",
      "inspection",     "o projection",       "residual",        "norm3",              "cross q projection",
      "cross-attention", "cross o projection", "residual",        "norm2+modulate",     "ffn up",
      "gelu",           "ffn down",           "residual"};
  ASSERT_EQ(rec.ops.size(), per_block.size() * size_t(layers));
  for (size_t i = 0; i < rec.ops.size(); ++i) EXPECT_EQ(rec.ops[i], per_block[i % per_block.size()]) << i;
}

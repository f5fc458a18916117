// GPU tests of the fused DiT-block kernels (engine/model/fused_ops.h) against the LibTorch chains
// they replace, op by op and through a whole model forward. Skipped without a GPU.
// Tolerances: outputs are 16-bit, so both sides round to bf16 (unit roundoff 2^-9 ≈ 2e-3); the
// fp32 arithmetic differs only in summation order. Rel-L2 bounds: 5e-3 per op, 2e-2 for the
// three-layer model (roundings compound through the residual stream).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#ifdef LONGSHOT_HAS_CUDA

#include "engine/attention/mask_policy.h"
#include "engine/common/error.h"
#include "engine/model/dit.h"
#include "engine/model/cuda/fused_ops.h"
#include "engine/model/fused_ops.h"
#include "tests/gpu/skip_without_gpu.h"

namespace fused = longshot::model::fused;

namespace {

double rel_l2(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kCPU, torch::kFloat64), y = b.to(torch::kCPU, torch::kFloat64);
  return (x - y).norm().item<double>() / std::max(1e-30, y.norm().item<double>());
}

// Means of x [B, H, N, D] over groups of g consecutive tokens (ragged last group), fp32:
// [B, H, ceil(N / g), D] — the reference for the fused kernel's pooled output.
torch::Tensor group_means(const torch::Tensor& x, int64_t g) {
  const int64_t n = x.size(2);
  std::vector<torch::Tensor> means;
  for (int64_t i = 0; i * g < n; ++i) means.push_back(x.narrow(2, i * g, std::min(g, n - i * g)).to(torch::kFloat).mean(2));
  return torch::stack(means, 2);
}

// The tiny DiT with random weights, bf16 on the GPU, in eval mode.
longshot::model::WanDiT tiny_gpu_model() {
  longshot::model::WanDiT m(longshot::model::find_config("tiny"));
  m->init_random(5);
  m->eval();
  m->to(torch::kCUDA, torch::kBFloat16);
  return m;
}

torch::Tensor rope_reference(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, int64_t hd) {
  const auto s = x.sizes();
  auto p = x.reshape({s[0], s[1], s[2] / hd, hd / 2, 2});
  auto x0 = p.select(-1, 0), x1 = p.select(-1, 1);
  auto c = cos.unsqueeze(0).unsqueeze(2), n = sin.unsqueeze(0).unsqueeze(2);
  return torch::stack({x0 * c - x1 * n, x0 * n + x1 * c}, -1).reshape(s);
}

}  // namespace

#define SKIP_WITHOUT_FUSED()                                                                     \
  SKIP_WITHOUT_GPU();                                                                            \
  if (![] {                                                                                      \
        torch::NoGradGuard no_grad; /* applies() is false under autograd by design */           \
        return fused::applies(torch::zeros({1}, torch::kCUDA));                                  \
      }())                                                                                       \
  GTEST_SKIP() << "fused kernels off (LONGSHOT_FUSED=0 or a build without CUDA LibTorch)"

TEST(FusedOps, LayerNormModulateMatchesTorch) {
  torch::NoGradGuard no_grad;
  SKIP_WITHOUT_FUSED();
  torch::manual_seed(1);
  const auto x = torch::randn({2, 37, 256}, torch::kCUDA) * 3 + 1;
  const auto shift = torch::randn({2, 1, 256}, torch::kCUDA), scale = torch::randn({2, 1, 256}, torch::kCUDA) * 0.5;
  const auto ref = (torch::layer_norm(x, {256}, {}, {}, 1e-6) * (1 + scale) + shift).to(torch::kBFloat16);
  const auto got = fused::layernorm_modulate(x, shift, scale, 1e-6, torch::kBFloat16);
  ASSERT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_l2(got, ref), 5e-3);
  const auto plain = fused::layernorm_modulate(x, {}, {}, 1e-6, torch::kHalf);
  EXPECT_LT(rel_l2(plain, torch::layer_norm(x, {256}, {}, {}, 1e-6)), 2e-3);
  // Widths whose CTA (C / 8 threads) is not whole warps: 24 threads (the built-in model's 192),
  // 25, 8, and 1536 (Wan 1.3B: 6 warps).
  for (const int64_t C : {192, 200, 64, 1536}) {
    const auto xc = torch::randn({3, 11, C}, torch::kCUDA) * 2 - 1;
    const auto mean_ref = torch::layer_norm(xc, {C}, {}, {}, 1e-6);
    EXPECT_LT(rel_l2(fused::layernorm_modulate(xc, {}, {}, 1e-6, torch::kBFloat16), mean_ref), 5e-3) << "C " << C;
  }
}

// The two forms of the LayerNorm kernel (one warp per row for widths 256 · N, one CTA per row for
// the rest, or when switched off) on the same rows: Wan2.1-1.3B's 1536 with per-sample modulation,
// an fp32 and a bf16 stream, 2 samples of a row count that leaves the last CTA's warps partly idle.
// They differ only in the order of the sums: both must be near LibTorch's and near each other.
TEST(FusedOps, LayerNormWarpAndCtaFormsAgree) {
  torch::NoGradGuard no_grad;
  SKIP_WITHOUT_FUSED();
  torch::manual_seed(12);
  for (const int64_t C : {int64_t(1536), int64_t(512), int64_t(2048)}) {
    const int64_t B = 2, N = 1003;
    const auto x = torch::randn({B, N, C}, torch::kCUDA) * 2 + 0.3;
    const auto shift = torch::randn({B, C}, torch::kCUDA) * 0.2, scale = torch::randn({B, C}, torch::kCUDA) * 0.3;
    const auto ref = torch::layer_norm(x, {C}, {}, {}, 1e-6) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
    for (const bool x16 : {false, true}) {
      const auto xs = x16 ? x.to(torch::kBFloat16) : x;
      const auto ref_s = x16 ? torch::layer_norm(xs.to(torch::kFloat), {C}, {}, {}, 1e-6) * (1 + scale.unsqueeze(1)) +
                                   shift.unsqueeze(1)
                             : ref;
      torch::Tensor out[2];
      for (const bool warp : {false, true}) {
        auto& o = out[warp ? 1 : 0];
        o = torch::empty({B, N, C}, x.options().dtype(torch::kBFloat16));
        longshot::model::cuda::layernorm_modulate(xs.data_ptr(), x16, shift.data_ptr<float>(), scale.data_ptr<float>(),
                                                  false, B * N, static_cast<int>(C), N, 1e-6f, o.data_ptr(), nullptr,
                                                  warp);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_LT(rel_l2(o, ref_s), 5e-3) << "C " << C << " x16 " << x16 << " warp " << warp;
      }
      // Both round the same fp32 values to bf16; a different order of the sums flips few roundings.
      EXPECT_LT(rel_l2(out[1], out[0]), 1e-3) << "C " << C << " x16 " << x16;
    }
  }
}

TEST(FusedOps, RmsNormRopeMatchesTorch) {
  torch::NoGradGuard no_grad;
  SKIP_WITHOUT_FUSED();
  torch::manual_seed(2);
  const int64_t N = 37, C = 256, hd = 64;
  const auto y = (torch::randn({2, N, C}, torch::kCUDA) * 2).to(torch::kBFloat16);
  const auto w = torch::rand({C}, torch::kCUDA) + 0.5;
  const auto ang = torch::rand({N, hd / 2}, torch::kCUDA) * 6.28;
  const auto cos = torch::cos(ang), sin = torch::sin(ang);
  const auto yf = y.to(torch::kFloat);
  const auto normed = yf * torch::rsqrt(yf.pow(2).mean(-1, true) + 1e-6) * w;
  const auto got = fused::rmsnorm_rope(y, w.to(torch::kBFloat16).to(torch::kFloat), cos, sin, 1e-6, hd);
  EXPECT_LT(rel_l2(got, rope_reference(normed, cos, sin, hd).to(torch::kBFloat16)), 5e-3);
  const auto no_rope = fused::rmsnorm_rope(y, w, {}, {}, 1e-6, hd);
  EXPECT_LT(rel_l2(no_rope, normed), 5e-3);
  // Not vacuous: the rotation changes the vector.
  EXPECT_GT(rel_l2(got, normed), 0.1);
}

// The pooled variant: the same outputs, bit for bit, and on the side the means of the stored
// outputs over groups of g consecutive tokens per head (ragged last group, batch 2, groups smaller
// and larger than the kernel's 32 rows per CTA and not aligned to them; C = 192: a partial warp).
TEST(FusedOps, RmsNormRopePoolsGroupMeans) {
  torch::NoGradGuard no_grad;
  SKIP_WITHOUT_FUSED();
  torch::manual_seed(7);
  for (const int64_t C : {256, 192}) {
    const int64_t B = 2, N = 301, hd = 64, H = C / hd;
    const auto y = (torch::randn({B, N, C}, torch::kCUDA) * 2).to(torch::kBFloat16);
    const auto w = torch::rand({C}, torch::kCUDA) + 0.5;
    const auto ang = torch::rand({N, hd / 2}, torch::kCUDA) * 6.28;
    const auto cos = torch::cos(ang), sin = torch::sin(ang);
    const auto plain = fused::rmsnorm_rope(y, w, cos, sin, 1e-6, hd);
    for (const int64_t g : {1, 5, 16, 128, 400}) {
      torch::Tensor pooled;
      const auto out = fused::rmsnorm_rope(y, w, cos, sin, 1e-6, hd, g, &pooled);
      EXPECT_TRUE(torch::equal(out, plain)) << "C " << C << " group " << g;
      const int64_t ng = (N + g - 1) / g;
      ASSERT_EQ(pooled.sizes().vec(), (std::vector<int64_t>{B, H, ng, hd})) << "group " << g;
      const auto heads = plain.view({B, N, H, hd}).permute({0, 2, 1, 3});  // [B, H, N, hd]
      EXPECT_LT(rel_l2(pooled, group_means(heads, g)), 1e-5) << "C " << C << " group " << g;
    }
    torch::Tensor no_rope_pooled;
    const auto no_rope = fused::rmsnorm_rope(y, w, {}, {}, 1e-6, hd, 16, &no_rope_pooled);
    EXPECT_TRUE(torch::equal(no_rope, fused::rmsnorm_rope(y, w, {}, {}, 1e-6, hd)));
  }
  const auto y = torch::randn({1, 8, 256}, torch::kCUDA).to(torch::kBFloat16);
  const auto w = torch::ones({256}, torch::kCUDA);
  torch::Tensor pooled;
  EXPECT_THROW(fused::rmsnorm_rope(y, w, {}, {}, 1e-6, 64, 0, &pooled), std::exception);
  EXPECT_THROW(fused::rmsnorm_rope(y, w, {}, {}, 1e-6, 48, 16, &pooled), std::exception);  // 48 does not divide 256
}

TEST(FusedOps, GatedResidualAddInPlace) {
  torch::NoGradGuard no_grad;
  SKIP_WITHOUT_FUSED();
  torch::manual_seed(3);
  auto x = torch::randn({2, 37, 256}, torch::kCUDA);
  const auto y = torch::randn({2, 37, 256}, torch::kCUDA).to(torch::kBFloat16);
  const auto gate = torch::randn({2, 1, 256}, torch::kCUDA);
  const auto ref = x + y.to(torch::kFloat) * gate;
  const auto ref_plain = ref + y.to(torch::kFloat);
  fused::gated_residual_add_(x, y, gate);
  EXPECT_LT(rel_l2(x, ref), 1e-6);
  fused::gated_residual_add_(x, y, {});
  EXPECT_LT(rel_l2(x, ref_plain), 1e-6);
  EXPECT_THROW(fused::gated_residual_add_(x, y.narrow(1, 0, 5), gate), std::exception);
}

// In the model, a dynamic mode gets Q/K's group means from the fused kernel: the handed-over means
// are those of the Q/K the policy receives (its group, its token order — Hilbert for dfs), and a
// dense layer or a mode that reads no Q/K gets none.
TEST(FusedOps, ModelHandsDynamicModesTheirPooledMeans) {
  SKIP_WITHOUT_FUSED();
  namespace la = longshot::attention;
  struct Recorder final : la::MaskPolicy {
    std::unique_ptr<la::MaskPolicy> inner;
    int handed = 0, builds = 0;
    double worst = 0;
    std::string name() const override { return inner->name(); }
    la::OrderingKind ordering() const override { return inner->ordering(); }
    bool needs_qk() const override { return inner->needs_qk(); }
    int64_t qk_pool_group(int64_t b) const override { return inner->qk_pool_group(b); }
    la::ParamValues params() const override { return inner->params(); }
    la::BlockMaskPtr build(const la::MaskRequest& r) override {
      ++builds;
      if (r.q_pooled.defined()) {
        ++handed;
        EXPECT_EQ(r.pool_group, inner->qk_pool_group(r.block_size));
        for (const bool keys : {false, true})
          worst = std::max(worst, rel_l2(keys ? r.k_pooled : r.q_pooled, group_means(keys ? r.k : r.q, r.pool_group)));
      }
      const auto mask = inner->build(r);  // the policy runs on what it was handed
      EXPECT_TRUE(mask && mask->num_q_blocks == (r.grid.size() + r.block_size - 1) / r.block_size);
      // The tiny model's head_dim 32 and block 16 are not kernel shapes: attention runs dense.
      return std::make_shared<const la::BlockMask>(la::BlockMask::full(r.grid.size(), r.block_size, 1, ordering()));
    }
  };
  auto m = tiny_gpu_model();
  torch::manual_seed(8);
  const auto x = torch::randn({1, 3, 4, 16, 16}, torch::kCUDA), t = torch::full({1}, 600.0, torch::kCUDA);
  const auto text = torch::randn({1, 5, 32}, torch::kCUDA);
  torch::NoGradGuard no_grad;
  for (const std::string mode : {"radial-dynamic", "dfs", "radial"}) {
    Recorder rec;
    rec.inner = la::create_policy(mode);
    longshot::model::AttentionPlan ctl;
    ctl.policy = &rec;
    ctl.block_size = 16;
    ctl.dense_first_layers = 1;
    m->forward(x, t, text, ctl);
    EXPECT_EQ(rec.builds, 2) << mode;
    EXPECT_EQ(rec.handed, rec.inner->needs_qk() ? 2 : 0) << mode;
    EXPECT_LT(rec.worst, 1e-5) << mode;
  }
}

// The FFN's up projection with GELU(tanh) in the cuBLASLt epilogue against GEMM then torch::gelu,
// at Wan2.1-1.3B's FFN shape (1536 -> 8960) in bf16: both round the output to bf16 once.
TEST(FusedOps, FfnUpGeluEpilogueMatchesGemmThenGelu) {
  SKIP_WITHOUT_FUSED();
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  torch::nn::Linear up(torch::nn::LinearOptions(1536, 8960));
  up->to(torch::kCUDA, torch::kBFloat16);
  longshot::model::FusedLinear lin({up});
  const auto x = torch::randn({2, 1000, 1536}, torch::kCUDA).to(torch::kBFloat16);
  const auto fused_y = lin.forward_gelu(x, /*fused_epilogue=*/true);
  const auto ref = torch::gelu(torch::linear(x, up->weight, up->bias), "tanh");
  ASSERT_EQ(fused_y.sizes(), ref.sizes());
  EXPECT_EQ(fused_y.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_l2(fused_y, ref), 5e-3);
  // Without the epilogue it is exactly GEMM then gelu(tanh).
  EXPECT_TRUE(torch::equal(lin.forward_gelu(x, false), ref));
}

// norm3's affine LayerNorm as one fused pass (shift = bias, scale = weight - 1) against LibTorch's
// layer_norm with the weights in fp32, then one rounding to bf16.
TEST(FusedOps, LayerNormAffineMatchesTorch) {
  SKIP_WITHOUT_FUSED();
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  const auto x = torch::randn({2, 300, 1536}, torch::kCUDA) * 3 + 0.5;
  const auto w = (torch::randn({1536}, torch::kCUDA) * 0.2 + 1).to(torch::kBFloat16);
  const auto b = (torch::randn({1536}, torch::kCUDA) * 0.1).to(torch::kBFloat16);
  const auto ref = torch::layer_norm(x, {1536}, w.to(torch::kFloat), b.to(torch::kFloat), 1e-6).to(torch::kBFloat16);
  const auto got = fused::layernorm_affine(x, w, b, 1e-6, torch::kBFloat16);
  ASSERT_EQ(got.sizes(), ref.sizes());
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_l2(got, ref), 5e-3);
  const auto no_bias = fused::layernorm_affine(x, w, {}, 1e-6, torch::kBFloat16);
  EXPECT_LT(rel_l2(no_bias, torch::layer_norm(x, {1536}, w.to(torch::kFloat), {}, 1e-6)), 5e-3);
}

// The residual GEMM (x += gate · (h · wᵀ + b), x being the GEMM's C and D) at Wan2.1-1.3B's FFN
// down shape (8960 -> 1536), two samples with different gates, and the o projection's shape without
// a gate. Reference: the same arithmetic in fp32 from the bf16 operands. Its error must be of the
// unfused path's size (a bf16 GEMM output, then the fused gated add): both round once to 16 bits.
TEST(FusedOps, LinearResidualAddMatchesGemmThenGatedAdd) {
  SKIP_WITHOUT_FUSED();
  torch::NoGradGuard no_grad;
  torch::manual_seed(12);
  for (const auto& [in, gated] : {std::pair<int64_t, bool>{8960, true}, {1536, false}}) {
    const auto x0 = torch::randn({2, 1000, 1536}, torch::kCUDA);
    const auto h = torch::randn({2, 1000, in}, torch::kCUDA).to(torch::kBFloat16);
    const auto w = (torch::randn({1536, in}, torch::kCUDA) / std::sqrt(double(in))).to(torch::kBFloat16);
    const auto b = (torch::randn({1536}, torch::kCUDA) * 0.1).to(torch::kBFloat16);
    const auto gate = gated ? torch::randn({2, 1, 1536}, torch::kCUDA) : torch::Tensor();
    auto y32 = torch::matmul(h.to(torch::kFloat), w.to(torch::kFloat).t()) + b.to(torch::kFloat);
    if (gated) y32 = y32 * gate;
    const auto ref = x0 + y32;
    auto fused_x = x0.clone();
    ASSERT_TRUE(fused::linear_residual_add_(fused_x, h, w, b, gate)) << "in " << in;
    auto plain_x = x0.clone();
    fused::gated_residual_add_(plain_x, torch::linear(h, w, b), gate);
    const double fused_err = rel_l2(fused_x - x0, y32), plain_err = rel_l2(plain_x - x0, y32);
    EXPECT_LT(fused_err, 5e-3) << "in " << in;
    EXPECT_LT(fused_err, 2 * plain_err + 1e-4) << "in " << in << ": unfused " << plain_err;
    EXPECT_LE(rel_l2(fused_x, ref), 2 * rel_l2(plain_x, ref) + 1e-5) << "in " << in;
  }
  // A wrong shape is an error naming the operands, not a GEMM over the wrong memory.
  auto x = torch::zeros({1, 4, 64}, torch::kCUDA);
  EXPECT_THROW(fused::linear_residual_add_(x, torch::zeros({1, 4, 32}, torch::kCUDA).to(torch::kBFloat16),
                                           torch::zeros({32, 32}, torch::kCUDA).to(torch::kBFloat16), {}, {}),
               longshot::ShapeError);
}

// On the GPU's fused path each branch's output projection adds into the residual stream from its
// GEMM: the op marks name the fused ops and no separate "residual" pass remains.
TEST(FusedOps, ModelWritesTheResidualFromItsGemms) {
  SKIP_WITHOUT_FUSED();
  torch::NoGradGuard no_grad;
  if (!fused::residual_epilogue_applies(torch::zeros({1}, torch::kCUDA))) GTEST_SKIP() << "LONGSHOT_RESIDUAL_EPILOGUE=0";
  auto m = tiny_gpu_model();
  struct Names : longshot::model::OpMarker {
    std::vector<std::string> ops;
    void block(int) override {}
    void mark(const char* op) override { ops.emplace_back(op); }
  } names;
  m->op_marker = &names;
  const auto x = torch::randn({1, 3, 4, 8, 8}, torch::kCUDA), t = torch::full({1}, 600.0, torch::kCUDA);
  m->forward(x, t, torch::randn({1, 5, 32}, torch::kCUDA));
  m->op_marker = nullptr;
  auto count = [&](const std::string& op) { return std::count(names.ops.begin(), names.ops.end(), op); };
  const auto layers = int64_t(longshot::model::find_config("tiny").num_layers);
  EXPECT_EQ(count("o projection + residual"), layers);
  EXPECT_EQ(count("cross o projection + residual"), layers);
  EXPECT_EQ(count("ffn down + residual"), layers);
  EXPECT_EQ(count("residual"), 0);
}

// The whole model: fused (no autograd) vs the LibTorch chains (autograd on disables fusion).
TEST(FusedOps, ModelForwardMatchesUnfused) {
  SKIP_WITHOUT_FUSED();
  auto m = tiny_gpu_model();
  torch::manual_seed(6);
  const auto x = torch::randn({2, 3, 4, 8, 8}, torch::kCUDA), t = torch::full({2}, 600.0, torch::kCUDA);
  const auto text = torch::randn({2, 5, 32}, torch::kCUDA);
  torch::Tensor a, b;
  {
    torch::NoGradGuard no_grad;
    ASSERT_TRUE(fused::applies(x));
    a = m->forward(x, t, text);
  }
  {
    torch::AutoGradMode grad(true);
    ASSERT_FALSE(fused::applies(x));
    b = m->forward(x, t, text).detach();
  }
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_FALSE(a.isnan().any().item<bool>());
  EXPECT_LT(rel_l2(a, b), 2e-2);
}

// The bf16 residual stream (ResidualPrecision::Bf16): each fused op reads and writes x in bf16 with
// the arithmetic in fp32 and one rounding per update, as diffusers' (x.float() + y · gate).type_as(x).
TEST(FusedOps, Bf16ResidualStreamOps) {
  SKIP_WITHOUT_FUSED();
  torch::NoGradGuard no_grad;
  torch::manual_seed(21);
  const auto x32 = torch::randn({2, 37, 256}, torch::kCUDA) * 3;
  const auto x16 = x32.to(torch::kBFloat16);
  // The norm reads the bf16 stream: the same values as an fp32 stream holding them, the same output bits.
  const auto shift = torch::randn({2, 1, 256}, torch::kCUDA), scale = torch::randn({2, 1, 256}, torch::kCUDA) * 0.2;
  EXPECT_TRUE(torch::equal(fused::layernorm_modulate(x16, shift, scale, 1e-6, torch::kBFloat16),
                           fused::layernorm_modulate(x16.to(torch::kFloat), shift, scale, 1e-6, torch::kBFloat16)));
  const auto w3 = torch::rand({256}, torch::kCUDA) + 0.5, b3 = torch::randn({256}, torch::kCUDA);
  EXPECT_TRUE(torch::equal(fused::layernorm_affine(x16, w3, b3, 1e-6, torch::kBFloat16),
                           fused::layernorm_affine(x16.to(torch::kFloat), w3, b3, 1e-6, torch::kBFloat16)));
  // A 16-bit stream of the other type is an error, not a misread.
  EXPECT_THROW(fused::layernorm_modulate(x16, shift, scale, 1e-6, torch::kHalf), longshot::ShapeError);
  // The gated add: fp32 sum, one rounding. The kernel may fuse y · gate + x into one FMA, so a few
  // sums round the other way at a bf16 tie: at most 1 % of elements, each by one bf16 ulp.
  const auto y = torch::randn({2, 37, 256}, torch::kCUDA).to(torch::kBFloat16);
  const auto gate = torch::randn({2, 1, 256}, torch::kCUDA);
  auto x = x16.clone();
  fused::gated_residual_add_(x, y, gate);
  const auto ref = (x16.to(torch::kFloat) + y.to(torch::kFloat) * gate).to(torch::kBFloat16);
  EXPECT_EQ(x.scalar_type(), torch::kBFloat16);
  const auto differ = x.ne(ref).sum().item<int64_t>();
  EXPECT_LE(differ, x.numel() / 100) << differ << " of " << x.numel() << " elements differ";
  const auto ulp = (ref.to(torch::kFloat).abs() * std::ldexp(1.0, -7)).clamp_min(1e-30);
  EXPECT_TRUE(((x.to(torch::kFloat) - ref.to(torch::kFloat)).abs() <= ulp).all().item<bool>());
  EXPECT_THROW(fused::gated_residual_add_(x, y.to(torch::kHalf), gate), longshot::ShapeError);

  // The residual GEMM into a bf16 stream: x += gate · (h · wᵀ + b) in one GEMM, against the fp32
  // product rounded once; within bf16's rounding of the sum, and no worse than GEMM-then-add.
  for (const auto& [in, gated] : {std::pair<int64_t, bool>{8960, true}, {1536, false}}) {
    const auto x0 = (torch::randn({2, 1000, 1536}, torch::kCUDA) * 2).to(torch::kBFloat16);
    const auto h = torch::randn({2, 1000, in}, torch::kCUDA).to(torch::kBFloat16);
    const auto w = (torch::randn({1536, in}, torch::kCUDA) / std::sqrt(double(in))).to(torch::kBFloat16);
    const auto b = (torch::randn({1536}, torch::kCUDA) * 0.1).to(torch::kBFloat16);
    const auto g = gated ? torch::randn({2, 1, 1536}, torch::kCUDA) : torch::Tensor();
    auto y32 = torch::matmul(h.to(torch::kFloat), w.to(torch::kFloat).t()) + b.to(torch::kFloat);
    if (gated) y32 = y32 * g;
    const auto exact = x0.to(torch::kFloat) + y32;
    auto fused_x = x0.clone();
    ASSERT_TRUE(fused::linear_residual_add_(fused_x, h, w, b, g)) << "in " << in;
    EXPECT_EQ(fused_x.scalar_type(), torch::kBFloat16);
    auto plain_x = x0.clone();
    fused::gated_residual_add_(plain_x, torch::linear(h, w, b), g);
    const double fused_err = rel_l2(fused_x, exact), plain_err = rel_l2(plain_x, exact);
    const double rounding = rel_l2(exact.to(torch::kBFloat16), exact);  // the stream's own rounding
    std::printf("  bf16 residual GEMM, in %lld%s: fused %.2e, GEMM then add %.2e, bf16 rounding of the sum %.2e\n",
                static_cast<long long>(in), gated ? ", gated" : "", fused_err, plain_err, rounding);
    EXPECT_LT(fused_err, 3 * rounding) << "in " << in;
    EXPECT_LT(fused_err, 2 * plain_err + 1e-4) << "in " << in;
  }
}

// A whole forward with the bf16 stream: fused (no autograd) against the eager chains (autograd on),
// and against the fp32 stream within bf16 noise — it does change the result (x really is rounded).
TEST(FusedOps, ModelForwardWithBf16ResidualStream) {
  SKIP_WITHOUT_FUSED();
  auto m = tiny_gpu_model();
  torch::manual_seed(6);
  const auto x = torch::randn({2, 3, 4, 8, 8}, torch::kCUDA), t = torch::full({2}, 600.0, torch::kCUDA);
  const auto text = torch::randn({2, 5, 32}, torch::kCUDA);
  torch::Tensor f32, fused16, eager16;
  {
    torch::NoGradGuard no_grad;
    f32 = m->forward(x, t, text);
    m->set_residual_precision(longshot::model::ResidualPrecision::Bf16);
    fused16 = m->forward(x, t, text);
  }
  {
    torch::AutoGradMode grad(true);
    eager16 = m->forward(x, t, text).detach();
  }
  m->set_residual_precision(longshot::model::ResidualPrecision::Fp32);
  EXPECT_FALSE(fused16.isnan().any().item<bool>());
  const double vs_eager = rel_l2(fused16, eager16), vs_f32 = rel_l2(fused16, f32);
  std::printf("  bf16 residual stream, tiny model: fused vs eager %.2e, vs the fp32 stream %.2e\n", vs_eager, vs_f32);
  EXPECT_LT(vs_eager, 2e-2);
  EXPECT_LT(vs_f32, 2e-2);
  EXPECT_GT(vs_f32, 0.0);
}

// The mask adapter on the GPU: the fused inference path (adapter deltas added before the fused
// RMSNorm+RoPE) agrees with the unfused autograd path, and attend()'s masked backend (SDPA with the
// token mask, the path adapters train through) agrees with our block-sparse kernel.
TEST(FusedOps, MaskAdapterAndMaskedAttentionOnTheGpu) {
  SKIP_WITHOUT_FUSED();
  longshot::model::DiTConfig config = longshot::model::find_config("tiny");
  config.num_heads = 1;  // head dim 64: a shape our kernel takes
  longshot::model::WanDiT m(config);
  m->init_random(5);
  m->eval();
  m->to(torch::kCUDA, torch::kBFloat16);
  auto ad = std::make_shared<longshot::model::MaskAdapter>(longshot::model::MaskAdapter::fresh(m->config(), 4, 3));
  ad->mode = "radial";
  torch::manual_seed(8);
  for (auto& layer : ad->b)
    for (auto& f : layer) f = torch::randn(f.sizes()) * 0.5;
  ad->to(torch::kCUDA, torch::kBFloat16);
  m->adapter = ad;
  auto policy = longshot::attention::create_policy("radial", {{"keep_ratio", 0.5}});
  // 8 x 16 x 16 pixels: 512 tokens, 8 blocks of 64 (the kernel's smallest block).
  const auto x = torch::randn({1, 3, 8, 16, 16}, torch::kCUDA), t = torch::full({1}, 600.0, torch::kCUDA);
  const auto text = torch::randn({1, 5, 32}, torch::kCUDA);
  auto run = [&](bool use_adapter, bool grad_mode) {
    longshot::model::AttentionPlan ctl;
    ctl.policy = policy.get();
    ctl.block_size = 64;
    ctl.use_adapter = use_adapter;
    ctl.measure_time = false;
    ctl.differentiable = grad_mode;
    torch::AutoGradMode mode(grad_mode);
    return m->forward(x, t, text, ctl).detach();
  };
  const auto fused_adapted = run(true, false), unfused_adapted = run(true, true), fused_bare = run(false, false);
  EXPECT_LT(rel_l2(fused_adapted, unfused_adapted), 2e-2);
  EXPECT_GT(rel_l2(fused_adapted, fused_bare), 5e-2) << "the adapter must act in the fused path too";

  const int64_t H = 2, N = 1000, D = 64;  // ragged last block of 128
  auto q = torch::randn({1, H, N, D}, torch::kCUDA).to(torch::kBFloat16);
  auto k = torch::randn({1, H, N, D}, torch::kCUDA).to(torch::kBFloat16);
  auto v = torch::randn({1, H, N, D}, torch::kCUDA).to(torch::kBFloat16);
  const int64_t nb = longshot::attention::BlockMask::blocks_for(N, 128);
  std::vector<uint8_t> keep(size_t(H * nb * nb), 0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t j = 0; j < nb; ++j) keep[size_t((h * nb + i) * nb + j)] = (i == j || (2 * i + j + h) % 3 == 0) ? 1 : 0;
  const auto mask = longshot::attention::BlockMask::from_dense(keep, N, 128, H);
  const auto kernel = longshot::attention::sparse_attention(q, k, v, mask, longshot::attention::Backend::Cuda);
  longshot::attention::AttendOptions masked;
  masked.backend = longshot::attention::Backend::Masked;
  const auto sdpa = longshot::attention::attend(q, k, v, {&mask}, masked);
  EXPECT_LT(rel_l2(sdpa, kernel), 1e-2);
}

#endif  // LONGSHOT_HAS_CUDA

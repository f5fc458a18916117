// GPU tests of the block's inference linears (engine/model/projections.h): FP8 (e4m3) GEMMs
// against bf16 — one linear and a whole forward of Wan2.1-1.3B-shaped blocks, errors printed —
// and the fused q/k/v path's strided RMSNorm+RoPE input. Skipped without a GPU; FP8 cases skip,
// with the reason, where FP8 cannot run (LibTorch < 2.5, not Hopper) after checking that asking
// for it there is a clear error.
// Bounds: e4m3 keeps 3 mantissa bits (relative rounding 2^-4); per-row scales and fp32
// accumulation over K = 1536 average most of it out: one linear ≤ 5e-2 rel-L2 against bf16, a
// two-block forward ≤ 0.15 (a wrong scale or layout gives ~1).
#include <gtest/gtest.h>
#include <torch/version.h>

#ifdef LONGSHOT_HAS_CUDA

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/common/error.h"
#include "engine/model/dit.h"
#include "engine/model/cuda/fp8_quant.h"
#include "engine/model/cuda/lt_gemm.h"
#include "engine/model/fused_ops.h"
#include "engine/model/projections.h"
#include "tests/gpu/skip_without_gpu.h"

using namespace longshot;
using namespace longshot::model;

namespace {

double rel_l2(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kCPU, torch::kFloat64), y = b.to(torch::kCPU, torch::kFloat64);
  return (x - y).norm().item<double>() / std::max(1e-30, y.norm().item<double>());
}

// FP8 runs here, or the case is skipped with the reason — after checking the refusal is clear.
#define SKIP_WITHOUT_FP8()                                                                              \
  do {                                                                                                  \
    const auto why = fp8_unsupported_reason(torch::Device(torch::kCUDA, 0));                            \
    if (!why.empty()) {                                                                                 \
      WanDiT probe(find_config("tiny"));                                                                \
      probe->to(torch::kCUDA, torch::kBFloat16);                                                        \
      EXPECT_THROW(probe->set_linear_precision(LinearPrecision::Fp8), ParameterError);                 \
      GTEST_SKIP() << "fp8: " << why;                                                                   \
    }                                                                                                   \
  } while (0)

}  // namespace

TEST(Fp8Linear, OneLinearNearBf16) {
  SKIP_WITHOUT_GPU();
  SKIP_WITHOUT_FP8();
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  torch::nn::Linear lin(1536, 8960);
  lin->to(torch::kCUDA, torch::kBFloat16);
  const auto x = torch::randn({2, 1000, 1536}, torch::TensorOptions().device(torch::kCUDA)).to(torch::kBFloat16);
  const auto ref = lin->forward(x);
  Fp8Weight w;
  const auto got = fp8_linear(x, lin->weight, lin->bias, w);
  ASSERT_EQ(got.sizes(), ref.sizes());
  const double err = rel_l2(got, ref);
  std::printf("fp8 linear 1536->8960 vs bf16: rel-L2 %.4f\n", err);
  EXPECT_LT(err, 5e-2);
  // GELU fused into the quantisation equals GELU then the FP8 GEMM.
  const auto g = fp8_linear(x, lin->weight, lin->bias, w, /*gelu=*/true);
  EXPECT_LT(rel_l2(g, lin->forward(torch::gelu(x, "tanh"))), 5e-2);
  // The weight is quantised once and again only when it changes.
  const auto w8 = w.w8;
  fp8_linear(x, lin->weight, lin->bias, w);
  EXPECT_TRUE(w.w8.is_same(w8));
  lin->weight.mul_(2);
  const auto doubled = fp8_linear(x, lin->weight, torch::Tensor(), w);
  EXPECT_FALSE(w.w8.is_same(w8));
  EXPECT_LT(rel_l2(doubled, lin->forward(x) - lin->bias), 5e-2);
}

TEST(Fp8Linear, WanBlockForwardNearBf16) {
  SKIP_WITHOUT_GPU();
  SKIP_WITHOUT_FP8();
  torch::NoGradGuard no_grad;
  auto config = find_config("wan2.1-t2v-1.3b");
  config.num_layers = 2;
  WanDiT m(config);
  m->init_random(7);  // Xavier-uniform linears (std ≈ 0.025 at 1536x1536), modulation N(0, 1/dim)
  m->eval();
  m->to(torch::kCUDA, torch::kBFloat16);
  auto gen = at::detail::createCPUGenerator(11);
  const auto x = torch::randn({1, 16, 4, 32, 32}, gen, torch::kFloat).to(torch::kCUDA, torch::kBFloat16);
  const auto t = torch::full({1}, 600.0).to(torch::kCUDA);
  const auto text = torch::randn({1, 64, 4096}, gen, torch::kFloat).to(torch::kCUDA, torch::kBFloat16);
  const auto bf16 = m->forward(x, t, text).to(torch::kFloat);
  m->set_linear_precision(LinearPrecision::Fp8);
  struct Names : OpMarker {
    std::vector<std::string> ops;
    void block(int) override {}
    void mark(const char* op) override { ops.emplace_back(op); }
  } names;
  m->op_marker = &names;
  const auto fp8 = m->forward(x, t, text).to(torch::kFloat);
  m->op_marker = nullptr;
  if (fused::residual_epilogue_applies(x)) {
    // FP8's three output projections write into the residual stream from their cuBLASLt GEMM.
    auto count = [&](const std::string& op) { return std::count(names.ops.begin(), names.ops.end(), op); };
    EXPECT_EQ(count("o projection + residual"), 2);
    EXPECT_EQ(count("cross o projection + residual"), 2);
    EXPECT_EQ(count("ffn down + residual"), 2);
    EXPECT_EQ(count("residual"), 0);
  }
  m->set_linear_precision(LinearPrecision::Native);
  EXPECT_LE(rel_l2(m->forward(x, t, text).to(torch::kFloat), bf16), 1e-6);  // back to native: the same forward
  // bf16's own distance from fp32, for scale.
  m->to(torch::kFloat);
  const auto fp32 = m->forward(x.to(torch::kFloat), t, text.to(torch::kFloat));
  const double e8 = rel_l2(fp8, bf16), e16 = rel_l2(bf16, fp32), e8_32 = rel_l2(fp8, fp32);
  std::printf("2-block Wan2.1-1.3B forward (4096 tokens): rel-L2 fp8 vs bf16 %.4f, fp8 vs fp32 %.4f, bf16 vs fp32 %.4f\n",
              e8, e8_32, e16);
  EXPECT_LT(e8, 0.15);
  EXPECT_TRUE(std::isfinite(e8));
}

// cuBLASLt's FP8 GEMM with per-row and per-channel scales (lt_gemm.h) against the dequantised
// operands multiplied in fp32: the same sum up to accumulation order, plus the bf16 output's
// rounding (2^-9 relative) — into bf16, and into an fp32 residual (beta = 1), where only the order
// differs. A wrong scale (per tensor, or rows and channels swapped) or layout gives ~1.
TEST(Fp8Lt, GemmMatchesDequantisedOperands) {
  SKIP_WITHOUT_GPU();
  SKIP_WITHOUT_FP8();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)  // e4m3 tensors
  torch::NoGradGuard no_grad;
  torch::manual_seed(21);
  const int64_t rows = 1000, n = 1536, k = 1536;
  const auto f32 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
  const auto a8 = torch::randn({rows, k}, f32).to(torch::kFloat8_e4m3fn);
  const auto w8 = torch::randn({n, k}, f32).to(torch::kFloat8_e4m3fn);
  const auto sa = torch::rand({rows}, f32) + 0.5, sw = (torch::rand({n}, f32) + 0.5) * 0.01;
  // Bias values exact in bf16: cuBLASLt 13.1 on the H100 takes only a bf16 bias beside FP8 scales
  // (an fp32 one gets no algorithm, so the fp32-residual call falls back to bias_bf16), and the
  // fp32 residual's reference must not depend on which one ran.
  const auto bias16 = torch::randn({n}, f32).to(torch::kBFloat16), bias32 = bias16.to(torch::kFloat);
  const auto prod = torch::mm(a8.to(torch::kFloat) * sa.unsqueeze(1), (w8.to(torch::kFloat) * sw.unsqueeze(1)).t());
  const auto workspace = torch::empty({int64_t(32) << 20}, f32.dtype(torch::kUInt8));
  longshot::model::cuda::Fp8Operands op;
  op.a8 = a8.data_ptr(), op.a_scale = sa.data_ptr<float>(), op.w8 = w8.data_ptr(), op.w_scale = sw.data_ptr<float>();

  auto y = torch::empty({rows, n}, f32.dtype(torch::kBFloat16));
  bool bias_left = false;  // the contract: no bias epilogue beside these scales, the caller adds it
  op.bias = bias16.data_ptr(), op.out = y.data_ptr(), op.bias_left_out = &bias_left;
  auto why = longshot::model::cuda::gemm_fp8(op, rows, int(n), int(k), workspace.data_ptr(), size_t(32) << 20, nullptr);
  ASSERT_TRUE(why.empty()) << why;
  if (bias_left) y.add_(bias16);
  const double e_bf16 = rel_l2(y, prod + bias32);
  EXPECT_LT(e_bf16, 5e-3);

  const auto x0 = torch::randn({rows, n}, f32);
  auto x = x0.clone();
  const bool bias_left_bf16 = bias_left;
  bias_left = false;
  op.bias = bias32.data_ptr(), op.bias_bf16 = bias16.data_ptr(), op.out = x.data_ptr(), op.residual = true;
  why = longshot::model::cuda::gemm_fp8(op, rows, int(n), int(k), workspace.data_ptr(), size_t(32) << 20, nullptr);
  ASSERT_TRUE(why.empty()) << why;
  if (bias_left) x.add_(bias32);
  std::printf("cuBLASLt FP8: bias in the epilogue: bf16 out %s, fp32 residual %s\n", bias_left_bf16 ? "no" : "yes",
              bias_left ? "no" : "yes");
  const double e_res = rel_l2(x - x0, prod + bias32);
  std::printf("cuBLASLt FP8 %ldx%ldx%ld vs dequantised fp32: bf16 out rel-L2 %.2e, fp32 residual %.2e\n", long(rows),
              long(n), long(k), e_bf16, e_res);
  EXPECT_LT(e_res, 1e-3);
#endif
}

// fp8_residual_add_ (per-sample gates folded into the channel scales, GELU in the quantiser)
// against fp8_linear's bf16 output added by hand: equal up to that output's bf16 rounding.
TEST(Fp8Lt, ResidualAddMatchesLinearThenGatedAdd) {
  SKIP_WITHOUT_GPU();
  SKIP_WITHOUT_FP8();
  torch::NoGradGuard no_grad;
  torch::manual_seed(22);
  torch::nn::Linear lin(1536, 1536);
  lin->to(torch::kCUDA, torch::kBFloat16);
  const auto f32 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
  const auto h = torch::randn({2, 700, 1536}, f32).to(torch::kBFloat16);
  const auto gate = torch::randn({2, 1, 1536}, f32) * 0.3;
  const auto x0 = torch::randn({2, 700, 1536}, f32);
  for (const bool gelu : {false, true}) {
    for (const bool gated : {true, false}) {
      Fp8Weight w;
      const auto g = gated ? gate : torch::Tensor();
      const auto y = fp8_linear(h, lin->weight, lin->bias, w, gelu).to(torch::kFloat);
      const auto want = gated ? y * gate : y;
      auto x = x0.clone();
      ASSERT_TRUE(fp8_residual_add_(x, h, lin->weight, lin->bias, w, g, gelu))
          << "cuBLASLt's FP8 residual GEMM did not run (see the log)";
      const double e = rel_l2(x - x0, want);
      std::printf("fp8_residual_add_ gelu=%d gated=%d: rel-L2 of the update %.2e\n", int(gelu), int(gated), e);
      EXPECT_LT(e, 1e-2);
      // Into a bf16 stream (ResidualPrecision::Bf16): the fp32 stream's result rounded once, up to
      // bf16's rounding of the sum.
      const auto x16_0 = x0.to(torch::kBFloat16);
      auto x16 = x16_0.clone();
      ASSERT_TRUE(fp8_residual_add_(x16, h, lin->weight, lin->bias, w, g, gelu)) << "bf16 stream";
      ASSERT_EQ(x16.scalar_type(), torch::kBFloat16);
      const auto exact16 = x16_0.to(torch::kFloat) + want;
      const double e16 = rel_l2(x16.to(torch::kFloat), exact16), rounding = rel_l2(exact16.to(torch::kBFloat16), exact16);
      std::printf("  into a bf16 stream: rel-L2 %.2e (bf16 rounding of the sum %.2e)\n", e16, rounding);
      EXPECT_LT(e16, 3 * rounding + 2e-3);
    }
  }
  auto bad = torch::zeros({2, 700, 1024}, f32);
  Fp8Weight w;
  EXPECT_THROW(fp8_residual_add_(bad, h, lin->weight, lin->bias, w, gate), ShapeError);
}

// The activation quantisation's two forms (each row held in registers, or read twice) give the
// same bits and scales: Wan's FFN hidden (8,960, GELU first), a model width (1536, strided rows as
// a slice of a wider tensor), and a row too long for registers (12,288: both calls take the
// two-read kernel). The scales are the rows' amax / 448 (of GELU(x) where asked).
TEST(Fp8Quant, RowsInRegistersEqualTwoReads) {
  SKIP_WITHOUT_GPU();
  torch::NoGradGuard no_grad;
  torch::manual_seed(23);
  struct Case { int64_t K, ld; bool gelu; };
  for (const Case c : {Case{8960, 8960, true}, Case{8960, 8960, false}, Case{1536, 4608, false}, Case{12288, 12288, true}}) {
    const int64_t rows = 517;
    const auto x = (torch::randn({rows, c.ld}, torch::kCUDA) * 3).to(torch::kBFloat16);
    torch::Tensor bits[2], scales[2];
    for (const bool regs : {false, true}) {
      auto& b = bits[regs ? 1 : 0];
      auto& sc = scales[regs ? 1 : 0];
      b = torch::empty({rows, c.K}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kUInt8));
      sc = torch::empty({rows}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat));
      cuda::quantize_rows_e4m3(x.data_ptr(), false, rows, static_cast<int>(c.K), c.ld, c.gelu,
                               static_cast<uint8_t*>(b.data_ptr()), sc.data_ptr<float>(), nullptr, regs);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    }
    EXPECT_TRUE(torch::equal(bits[0], bits[1])) << "K " << c.K << " gelu " << c.gelu;
    EXPECT_TRUE(torch::equal(scales[0], scales[1])) << "K " << c.K << " gelu " << c.gelu;
    auto v = x.narrow(1, 0, c.K).to(torch::kFloat);
    if (c.gelu) v = torch::gelu(v, "tanh");
    const auto want = std::get<0>(v.abs().max(1)) / 448.f;
    EXPECT_LT(rel_l2(scales[1], want), 1e-5) << "K " << c.K;
    // Not all zeros: e4m3 of v / scale has the row's amax at ±448 (bits 0x7e / 0xfe).
    EXPECT_GT(bits[1].to(torch::kInt).bitwise_and(0x7f).eq(0x7e).sum().item<int64_t>(), rows / 2) << "K " << c.K;
  }
}

TEST(FusedProjections, RmsnormRopeReadsTheStridedQkvSlices) {
  SKIP_WITHOUT_GPU();
  if (!fused::applies(torch::zeros({1}, torch::kCUDA))) GTEST_SKIP() << "fused kernels off (LONGSHOT_FUSED=0)";
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  const int64_t B = 2, N = 300, C = 256, hd = 64;
  const auto opts = torch::TensorOptions().device(torch::kCUDA);
  const auto qkv = torch::randn({B, N, 3 * C}, opts).to(torch::kBFloat16);
  const auto w = torch::rand({C}, opts) + 0.5;
  const auto cos = torch::rand({N, hd / 2}, opts), sin = torch::rand({N, hd / 2}, opts);
  for (int part = 0; part < 3; ++part) {
    const auto slice = qkv.narrow(2, part * C, C);
    ASSERT_FALSE(slice.is_contiguous());
    const auto strided = fused::rmsnorm_rope(slice, w, cos, sin, 1e-6, hd);
    const auto packed = fused::rmsnorm_rope(slice.contiguous(), w, cos, sin, 1e-6, hd);
    EXPECT_TRUE(torch::equal(strided, packed)) << "part " << part;
  }
  // A slice whose rows are not evenly strided across the batch is refused, not misread.
  const auto uneven = torch::randn({B, N + 1, C}, opts).to(torch::kBFloat16).narrow(1, 0, N);
  EXPECT_THROW(fused::rmsnorm_rope(uneven, w, {}, {}, 1e-6, hd), std::exception);
}

#endif  // LONGSHOT_HAS_CUDA

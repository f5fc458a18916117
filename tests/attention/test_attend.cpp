// attend(): the CPU backends (reference, SDPA's torch-ops formula, the masked path, eager) agree on
// small random cases with and without a mask; choose_backend() picks what its rules say; requests
// a backend cannot run are refused with the reason; gradients flow where the options ask for them.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "engine/attention/attend.h"
#include "engine/attention/metrics.h"
#include "engine/attention/reference.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

namespace {

// A random keep pattern with the diagonal, plus one head whose query block 1 keeps nothing (the
// contract: such rows give zeros).
BlockMask random_mask(int64_t heads, int64_t seq_len, int64_t block, uint64_t seed, bool empty_row) {
  const int64_t nb = BlockMask::blocks_for(seq_len, block);
  std::mt19937 rng(seed);
  std::bernoulli_distribution coin(0.4);
  std::vector<uint8_t> keep(size_t(heads * nb * nb));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t j = 0; j < nb; ++j)
        keep[size_t((h * nb + i) * nb + j)] = !(empty_row && h == heads - 1 && i == 1) && (i == j || coin(rng));
  return BlockMask::from_dense(keep, seq_len, block, heads);
}

// The block mask as an additive bias [1, Hm, N, N]: 0 where kept, −inf elsewhere.
torch::Tensor mask_bias(const BlockMask& m) {
  auto bias = torch::zeros({m.num_heads, m.seq_len, m.seq_len});
  auto acc = bias.accessor<float, 3>();
  for (int64_t h = 0; h < m.num_heads; ++h)
    for (int64_t i = 0; i < m.seq_len; ++i)
      for (int64_t j = 0; j < m.seq_len; ++j)
        if (!m.contains(h, i / m.block_size, j / m.block_size)) acc[h][i][j] = -std::numeric_limits<float>::infinity();
  return bias.unsqueeze(0);
}

AttendOptions with(Backend b, bool differentiable = false) {
  AttendOptions o;
  o.backend = b;
  o.differentiable = differentiable;
  return o;
}

}  // namespace

TEST(Attend, CpuBackendsAgreeUnderASparseMask) {
  torch::manual_seed(11);
  const int64_t N = 100;  // blocks of 32: 32, 32, 32, 4 (ragged)
  auto q = torch::randn({2, 3, N, 16}), k = torch::randn({2, 3, N, 16}), v = torch::randn({2, 3, N, 8});
  for (int64_t heads : {1, 3}) {
    const auto m = random_mask(heads, N, 32, 5 + uint64_t(heads), /*empty_row=*/false);
    ASSERT_FALSE(m.is_full());
    const auto ref = attend(q, k, v, {&m}, with(Backend::Reference));
    const auto masked = attend(q, k, v, {&m}, with(Backend::Masked));
    // Eager with the mask as a −inf bias: the masked softmax written as transformers would.
    const auto eager = attend(q, k, v, {nullptr, mask_bias(m)}, with(Backend::Eager));
    EXPECT_LE(relative_l2_error(masked, ref), 1e-5) << heads;
    EXPECT_LE(relative_l2_error(eager, ref), 1e-5) << heads;
    // Auto on the CPU without gradients is the reference, bit for bit.
    EXPECT_TRUE(torch::equal(attend(q, k, v, {&m}), ref)) << heads;
    // And the mask matters: dense attention is far from it.
    EXPECT_GT(relative_l2_error(attend(q, k, v, {}, with(Backend::Sdpa)), ref), 0.05) << heads;
  }
}

TEST(Attend, EmptyRowsGiveZerosInEveryMaskedBackend) {
  torch::manual_seed(12);
  const int64_t N = 96;
  auto q = torch::randn({1, 2, N, 16}), k = torch::randn({1, 2, N, 16}), v = torch::randn({1, 2, N, 16});
  const auto m = random_mask(2, N, 32, 7, /*empty_row=*/true);
  for (Backend b : {Backend::Reference, Backend::Masked}) {
    const auto out = attend(q, k, v, {&m}, with(b));
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>()) << backend_name(b);
    EXPECT_EQ(out[0][1].narrow(0, 32, 32).abs().max().item<float>(), 0.0f) << backend_name(b);
    EXPECT_GT(out[0][0].narrow(0, 32, 32).abs().max().item<float>(), 0.0f) << backend_name(b);
  }
}

TEST(Attend, CpuBackendsAgreeDense) {
  torch::manual_seed(13);
  auto q = torch::randn({1, 2, 70, 32}), k = torch::randn({1, 2, 70, 32}), v = torch::randn({1, 2, 70, 32});
  const auto ref = dense_attention_reference(q, k, v);
  const auto full = BlockMask::full(70, 32, 1);
  EXPECT_LE(relative_l2_error(attend(q, k, v, {}, with(Backend::Sdpa)), ref), 1e-5);
  EXPECT_LE(relative_l2_error(attend(q, k, v, {&full}, with(Backend::Masked)), ref), 1e-5);
  EXPECT_LE(relative_l2_error(attend(q, k, v, {}, with(Backend::Eager)), ref), 1e-5);
  EXPECT_LE(relative_l2_error(attend(q, k, v, {&full}, with(Backend::Reference)), ref), 1e-6);
  // A custom scale reaches every backend: 0.5 is not 1/sqrt(32).
  AttendOptions half_scale;
  half_scale.scale = 0.5;
  const auto ref_half = dense_attention_reference(q, k, v, 0.5);
  EXPECT_GT(relative_l2_error(ref_half, ref), 0.05);
  for (Backend b : {Backend::Reference, Backend::Sdpa, Backend::Eager}) {
    half_scale.backend = b;
    EXPECT_LE(relative_l2_error(attend(q, k, v, {}, half_scale), ref_half), 1e-5) << backend_name(b);
  }
}

TEST(Attend, CrossAttentionAndPaddingBias) {
  torch::manual_seed(14);
  // Queries over 50 tokens, keys over 12 of which the last 4 are padding.
  auto q = torch::randn({2, 2, 50, 16}), k = torch::randn({2, 2, 12, 16}), v = torch::randn({2, 2, 12, 8});
  const auto expect = torch::matmul(torch::softmax(torch::matmul(q, k.narrow(2, 0, 8).transpose(2, 3)) / 4.0, -1),
                                    v.narrow(2, 0, 8));
  auto pad = torch::zeros({2, 1, 1, 12});
  pad.narrow(3, 8, 4).fill_(-3.0e38f);  // the dtype's lowest, as umT5 pads
  EXPECT_LE(relative_l2_error(attend(q, k, v, {nullptr, pad}), expect), 1e-5);  // Auto: eager
  EXPECT_LE(relative_l2_error(attend(q, k.narrow(2, 0, 8), v.narrow(2, 0, 8)), expect), 1e-5);  // Auto: sdpa
  // T5 scores: no 1/sqrt(D), a bias per head.
  auto rel = torch::randn({1, 2, 50, 12});
  AttendOptions t5;
  t5.scale = 1.0;
  const auto t5_expect = torch::matmul(torch::softmax(torch::matmul(q, k.transpose(2, 3)) + rel, -1), v);
  EXPECT_LE(relative_l2_error(attend(q, k, v, {nullptr, rel}, t5), t5_expect), 1e-5);
}

TEST(Attend, GradientsWhereAsked) {
  torch::manual_seed(15);
  auto q = torch::randn({1, 2, 64, 16}).requires_grad_(), k = torch::randn({1, 2, 64, 16}), v = torch::randn({1, 2, 64, 16});
  const auto m = random_mask(1, 64, 32, 9, false);
  for (auto [b, mask] : {std::pair{Backend::Sdpa, (const BlockMask*)nullptr}, std::pair{Backend::Masked, &m},
                         std::pair{Backend::Eager, (const BlockMask*)nullptr}}) {
    auto out = attend(q, k, v, {mask}, with(b, true));
    ASSERT_TRUE(out.requires_grad()) << backend_name(b);
    auto g = torch::autograd::grad({out.pow(2).sum()}, {q});
    EXPECT_GT(g[0].abs().sum().item<double>(), 0.0) << backend_name(b);
  }
  // Auto with differentiable: the masked path for a sparse mask, SDPA's formula for dense.
  EXPECT_TRUE(attend(q, k, v, {&m}, with(Backend::Auto, true)).requires_grad());
  EXPECT_TRUE(attend(q, k, v, {}, with(Backend::Auto, true)).requires_grad());
  // The reference cannot give gradients and says so rather than returning a constant.
  EXPECT_THROW(attend(q, k, v, {}, with(Backend::Reference, true)), ParameterError);
}

TEST(Attend, ChooserFollowsItsRules) {
  AttendProblem cpu;
  cpu.head_dim = 64;
  cpu.q_len = cpu.k_len = 256;
  EXPECT_EQ(choose_backend(cpu), Backend::Reference);
  auto cross = cpu;
  cross.k_len = 77;
  EXPECT_EQ(choose_backend(cross), Backend::Sdpa);
  auto biased = cpu;
  biased.bias = true;
  EXPECT_EQ(choose_backend(biased), Backend::Eager);
  auto sparse = cpu;
  sparse.mask = MaskKind::Sparse;
  sparse.block_size = 128;
  EXPECT_EQ(choose_backend(sparse), Backend::Reference);
  auto train = sparse;
  train.differentiable = true;
  EXPECT_EQ(choose_backend(train), Backend::Masked);
  train.mask = MaskKind::Full;
  EXPECT_EQ(choose_backend(train), Backend::Sdpa);  // a full mask is dense attention
  auto full = cpu;
  full.mask = MaskKind::Full;
  full.block_size = 64;
  EXPECT_EQ(choose_backend(full), Backend::Reference);

  AttendProblem gpu = cpu;
  gpu.cuda = gpu.half = true;
  gpu.kernel_available = true;
  gpu.sdpa_available = true;
  EXPECT_EQ(choose_backend(gpu), Backend::Sdpa);  // dense on CUDA: cuDNN / flash
  auto gpu_sparse = gpu;
  gpu_sparse.mask = MaskKind::Sparse;
  gpu_sparse.block_size = 128;
  EXPECT_EQ(choose_backend(gpu_sparse), Backend::Cuda);
  auto gpu_full = gpu_sparse;
  gpu_full.mask = MaskKind::Full;
  EXPECT_EQ(choose_backend(gpu_full), Backend::Sdpa);
  auto old_torch = gpu;
  old_torch.sdpa_available = false;
  EXPECT_EQ(choose_backend(old_torch), Backend::Cuda);  // dense through our kernel where it fits
  old_torch.head_dim = 96;
  EXPECT_EQ(choose_backend(old_torch), Backend::Sdpa);  // ... else the torch-ops formula
  // A sparse mask the kernel cannot take on CUDA is an error naming why, not a slow detour.
  auto fp32_sparse = gpu_sparse;
  fp32_sparse.half = false;
  try {
    choose_backend(fp32_sparse);
    ADD_FAILURE() << "fp32 sparse on CUDA was accepted";
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("bf16 or fp16"), std::string::npos) << e.what();
  }
  auto gpu_train = gpu_sparse;
  gpu_train.differentiable = true;
  EXPECT_EQ(choose_backend(gpu_train), Backend::Masked);

  // Requests are checked, then kept.
  auto req = gpu_full;
  req.requested = Backend::Cuda;
  EXPECT_EQ(choose_backend(req), Backend::Cuda);
  req.requested = Backend::Reference;
  EXPECT_THROW(choose_backend(req), ParameterError);
  auto no_kernel = req;
  no_kernel.requested = Backend::Cuda;
  no_kernel.kernel_available = false;
  EXPECT_THROW(choose_backend(no_kernel), ParameterError);
  auto sdpa_sparse = sparse;
  sdpa_sparse.requested = Backend::Sdpa;
  EXPECT_THROW(choose_backend(sdpa_sparse), ParameterError);
  auto bias_and_mask = sparse;
  bias_and_mask.bias = true;
  EXPECT_THROW(choose_backend(bias_and_mask), ParameterError);
}

TEST(Attend, DescribeReadsTheCall) {
  auto q = torch::randn({1, 2, 40, 8}).to(torch::kBFloat16), k = torch::randn({1, 2, 40, 8}).to(torch::kBFloat16);
  const auto m = BlockMask::full(40, 16, 1);
  AttendOptions o;
  o.scale = 1.0 / std::sqrt(8.0);
  auto p = describe(q, k, k, {&m}, o);
  EXPECT_TRUE(p.half);
  EXPECT_FALSE(p.cuda);
  EXPECT_EQ(p.mask, MaskKind::Full);
  EXPECT_EQ(p.block_size, 16);
  EXPECT_FALSE(p.custom_scale);  // the default scale, spelled out
  o.scale = 1.0;
  EXPECT_TRUE(describe(q, k, k, {}, o).custom_scale);
  EXPECT_FALSE(describe(q, k.to(torch::kFloat), k, {}, o).half);
}

TEST(Attend, BadInputsNameTheTensor) {
  auto q = torch::randn({1, 2, 32, 16}), k = torch::randn({1, 2, 32, 16});
  auto expect_msg = [](auto&& fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning " << part;
    } catch (const ShapeError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { attend(q, k.narrow(3, 0, 8), k); }, "'k'");
  expect_msg([&] { attend(q, k, k.narrow(2, 0, 8)); }, "'v'");
  expect_msg([&] { attend(q[0], k, k); }, "'q'");
  expect_msg([&] { attend(q, k, k, {nullptr, torch::zeros({3, 32})}); }, "'bias'");
  const auto m = BlockMask::full(64, 32, 1);
  expect_msg([&] { attend(q, k, k, {&m}); }, "seq_len");
  // The heatmap helper refuses an index out of range instead of reading past the tensor.
  EXPECT_THROW(query_probabilities(q, k, 2, 0), ParameterError);
  EXPECT_THROW(query_probabilities(q, k, 0, 32), ParameterError);
  const auto p = query_probabilities(q, k, 1, 5);
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-5);
}

// GPU tests of the block-sparse kernel and GPU mask building against the CPU fp32 reference.
// Every case skips with a message where no CUDA device (or no CUDA LibTorch) exists.
//
// Tolerances: inputs are rounded to bf16/fp16 first and the reference runs on those rounded
// values in fp32, so the error comes from the kernel's own roundings: P (probabilities) rounded
// to 16 bits before the PV product and the 16-bit output. bf16 keeps 8 mantissa bits
// (unit roundoff 2^-9 ≈ 2e-3), fp16 11 bits (2^-12 ≈ 2.4e-4). Measured relative L2 errors are a
// few units of that; the bounds are ~3× the bf16/fp16 noise: rel-L2 1e-2 (bf16), 2e-3 (fp16).
#include <gtest/gtest.h>

// Without CUDA kernels (LONGSHOT_CUDA=OFF) the adapter is not built: the suite is one skipped case.
#ifndef LONGSHOT_HAS_CUDA
TEST(GpuSuite, BuiltWithoutCuda) { GTEST_SKIP() << "this build has no CUDA kernels (LONGSHOT_CUDA=OFF)"; }
#else

#include <random>

#include <cuda_runtime_api.h>

#include "engine/attention/block_mask.h"
#include "engine/attention/cuda/torch_adapter.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/reference.h"
#include "engine/attention/synthetic.h"
#include "engine/attention/token_grid.h"
#include "engine/common/error.h"
#include "tests/gpu/skip_without_gpu.h"

namespace la = longshot::attention;
namespace lc = longshot::attention::cuda;

namespace {

double rel_l2(const torch::Tensor& out, const torch::Tensor& ref) {
  const auto o = out.to(torch::kCPU, torch::kFloat64);
  const auto r = ref.to(torch::kCPU, torch::kFloat64);
  const double den = r.norm().item<double>();
  return (o - r).norm().item<double>() / (den > 0 ? den : 1.0);
}

double tolerance(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? 1e-2 : 2e-3; }

// Random BSR with per-row density `keep`; rows may end up empty when `allow_empty`.
la::BlockMask random_mask(int64_t seq_len, int64_t block, int64_t heads, double keep, bool allow_empty,
                          uint32_t seed) {
  const int64_t nb = la::BlockMask::blocks_for(seq_len, block);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<uint8_t> dense(static_cast<size_t>(heads * nb * nb), 0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t qb = 0; qb < nb; ++qb)
      for (int64_t kb = 0; kb < nb; ++kb) {
        const bool diag = !allow_empty && kb == qb;
        dense[(h * nb + qb) * nb + kb] = diag || u(rng) < keep ? 1 : 0;
      }
  if (allow_empty)  // make sure at least one row is empty and the last key block is used
    for (int64_t kb = 0; kb < nb; ++kb) {
      dense[(0 * nb + 1) * nb + kb] = 0;
      dense[(0 * nb + 0) * nb + kb] = kb == nb - 1 ? 1 : dense[(0 * nb + 0) * nb + kb];
    }
  return la::BlockMask::from_dense(dense, seq_len, block, heads);
}

struct Inputs {
  torch::Tensor q, k, v;           // CUDA, 16-bit
  torch::Tensor q32, k32, v32;     // CPU fp32 copies of the rounded values
};

// [B, H, N, D]; `model_layout` makes them transposed views of [B, N, H, D] memory.
Inputs make_inputs(int64_t B, int64_t H, int64_t N, int64_t D, torch::ScalarType dtype, bool model_layout,
                   uint64_t seed) {
  torch::manual_seed(seed);
  auto make = [&] {
    auto base = model_layout ? torch::randn({B, N, H, D}).transpose(1, 2) : torch::randn({B, H, N, D});
    return base;
  };
  Inputs in;
  auto q = make(), k = make(), v = make();
  auto to_dev = [&](const torch::Tensor& t) {
    // keep the memory layout: convert on CPU, then move the same-strided tensor
    auto r = t.to(dtype);
    if (model_layout) r = r.transpose(1, 2).contiguous().transpose(1, 2);
    return r.to(torch::kCUDA);
  };
  in.q = to_dev(q * 1.5);  // sharper softmax than unit logits
  in.k = to_dev(k);
  in.v = to_dev(v);
  in.q32 = in.q.to(torch::kCPU, torch::kFloat32);
  in.k32 = in.k.to(torch::kCPU, torch::kFloat32);
  in.v32 = in.v.to(torch::kCPU, torch::kFloat32);
  return in;
}

struct SweepCase {
  torch::ScalarType dtype;
  int64_t head_dim;
  int64_t block;
  int64_t seq_len;
  bool per_head;
};

std::string describe(const SweepCase& c) {
  return std::string(c.dtype == torch::kBFloat16 ? "bf16" : "fp16") + "_d" + std::to_string(c.head_dim) +
         "_b" + std::to_string(c.block) + "_n" + std::to_string(c.seq_len) + (c.per_head ? "_perhead" : "_shared");
}
std::string case_name(const testing::TestParamInfo<SweepCase>& info) { return describe(info.param); }
// gtest (and so the CTest names) print parameters with this instead of raw bytes.
void PrintTo(const SweepCase& c, std::ostream* os) { *os << describe(c); }

class KernelSweep : public testing::TestWithParam<SweepCase> {};

}  // namespace

// Random masks (with an empty row when per-head) over ragged lengths: the last block holds
// more than one key tile (1000 % 128 = 104), less than one (930 % 128 = 34, 1000 % 64 = 40) or
// exactly fills (1024).
TEST_P(KernelSweep, MatchesReference) {
  SKIP_WITHOUT_GPU();
  const auto& c = GetParam();
  const int64_t B = 1, H = 3;
  auto in = make_inputs(B, H, c.seq_len, c.head_dim, c.dtype, /*model_layout=*/true, 7);
  const auto mask = random_mask(c.seq_len, c.block, c.per_head ? H : 1, 0.35, c.per_head, 11);
  const auto out = lc::block_sparse_attention(in.q, in.k, in.v, mask);
  ASSERT_EQ(out.sizes(), in.q.sizes());
  const auto ref = la::block_sparse_attention_reference(in.q32, in.k32, in.v32, mask);
  const double err = rel_l2(out, ref);
  EXPECT_LT(err, tolerance(c.dtype)) << describe(c);
  EXPECT_FALSE(out.isnan().any().item<bool>());
  if (c.block == 128) {  // every kernel that serves block 128 must agree with the reference
    auto dm = lc::upload_mask(mask, torch::kCUDA, H);
    for (int m_tiles : {1, 2})
      EXPECT_LT(rel_l2(lc::block_sparse_attention(in.q, in.k, in.v, dm, 0.0, lc::KernelPath::Mma, m_tiles), ref),
                tolerance(c.dtype))
          << "mma.sync, " << m_tiles << " band(s) per warp";
    if (lc::hopper_kernel_applies(in.q, c.block))
      EXPECT_LT(rel_l2(lc::block_sparse_attention(in.q, in.k, in.v, dm, 0.0, lc::KernelPath::Hopper), ref),
                tolerance(c.dtype))
          << "Hopper kernel";
  }
  if (c.per_head) {  // head 0, query block 1 is empty: zeros by contract
    const auto row = out.select(1, 0).narrow(1, c.block, c.block).to(torch::kCPU, torch::kFloat32);
    EXPECT_EQ(row.abs().max().item<float>(), 0.f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Gpu, KernelSweep,
    testing::Values(SweepCase{torch::kBFloat16, 128, 128, 1000, true}, SweepCase{torch::kBFloat16, 128, 128, 930, false},
                    SweepCase{torch::kBFloat16, 64, 128, 1000, false}, SweepCase{torch::kBFloat16, 64, 64, 1000, true},
                    SweepCase{torch::kBFloat16, 128, 64, 1024, false}, SweepCase{torch::kHalf, 128, 128, 1000, true},
                    SweepCase{torch::kHalf, 64, 64, 930, false}, SweepCase{torch::kHalf, 64, 128, 1024, true},
                    SweepCase{torch::kHalf, 128, 64, 1000, false}),
    case_name);

// On an H100/H200 the default path is the Hopper kernel for block 128, and forcing it where it
// does not apply (block 64) is an error, not a silent fallback.
TEST(GpuKernel, HopperKernelIsTheDefaultOnHopper) {
  SKIP_WITHOUT_GPU();
  cudaDeviceProp props{};
  ASSERT_EQ(cudaGetDeviceProperties(&props, 0), cudaSuccess);
  if (props.major != 9 || props.minor != 0) GTEST_SKIP() << props.name << " is not compute capability 9.0";
  auto in = make_inputs(1, 2, 640, 128, torch::kBFloat16, /*model_layout=*/true, 5);
  EXPECT_TRUE(lc::hopper_kernel_applies(in.q, 128));
  EXPECT_FALSE(lc::hopper_kernel_applies(in.q, 64));
  auto dm64 = lc::upload_mask(la::BlockMask::full(640, 64), torch::kCUDA, 2);
  EXPECT_THROW(lc::block_sparse_attention(in.q, in.k, in.v, dm64, 0.0, lc::KernelPath::Hopper), std::exception);
  // Same inputs, both kernels: they agree to bf16 noise.
  auto dm = lc::upload_mask(la::BlockMask::full(640, 128), torch::kCUDA, 2);
  const auto hopper = lc::block_sparse_attention(in.q, in.k, in.v, dm, 0.0, lc::KernelPath::Hopper);
  const auto mma = lc::block_sparse_attention(in.q, in.k, in.v, dm, 0.0, lc::KernelPath::Mma);
  EXPECT_LT(rel_l2(hopper, mma), tolerance(torch::kBFloat16));
}

TEST(GpuKernel, FullMaskMatchesDenseReferenceBatched) {
  SKIP_WITHOUT_GPU();
  auto in = make_inputs(2, 2, 777, 128, torch::kBFloat16, /*model_layout=*/false, 3);
  const auto mask = la::BlockMask::full(777, 128);
  const auto out = lc::block_sparse_attention(in.q, in.k, in.v, mask);
  const auto ref = la::dense_attention_reference(in.q32, in.k32, in.v32);
  EXPECT_LT(rel_l2(out, ref), tolerance(torch::kBFloat16));
  // The array-free full mask also serves block 64; a full BlockMask uploads as no arrays.
  EXPECT_LT(rel_l2(lc::dense_attention(in.q, in.k, in.v, 64), ref), tolerance(torch::kBFloat16));
  EXPECT_TRUE(lc::upload_mask(mask, torch::kCUDA, 2).full);
}

// Every registered mode builds its mask from synthetic video Q/K (tokens in the mode's ordering);
// the kernel must match the reference on that mask.
TEST(GpuKernel, EveryModeMaskMatchesReference) {
  SKIP_WITHOUT_GPU();
  const la::TokenGrid grid{5, 12, 20};  // 1200 tokens: ragged for both block sizes
  for (const int64_t D : {64, 128}) {
    la::SyntheticSpec spec;
    spec.grid = grid;
    spec.heads = 4;
    spec.head_dim = D;
    const auto qkv = la::make_synthetic_qkv(spec);
    for (const auto& info : la::registered_policies()) {
      for (const int64_t block : {64, 128}) {
        auto policy = info.create(la::resolve_params(info, {}));
        const auto ordering = la::make_ordering(policy->ordering(), grid);
        const auto perm = lc::permutation_tensors(ordering, torch::kCPU);
        auto q = lc::permute_tokens(qkv.q, perm.perm, 2);
        auto k = lc::permute_tokens(qkv.k, perm.perm, 2);
        auto v = lc::permute_tokens(qkv.v, perm.perm, 2);
        la::MaskRequest req;
        req.grid = grid;
        req.block_size = block;
        req.num_heads = spec.heads;
        req.num_steps = 50;
        req.step = 20;
        req.num_layers = 30;
        req.layer = 3;
        if (policy->needs_qk()) {
          req.q = q;
          req.k = k;
        }
        const auto mask = policy->build(req);
        ASSERT_TRUE(mask);
        const auto qb = q.to(torch::kBFloat16), kb = k.to(torch::kBFloat16), vb = v.to(torch::kBFloat16);
        const auto out = lc::block_sparse_attention(qb.cuda(), kb.cuda(), vb.cuda(), *mask);
        const auto ref = la::block_sparse_attention_reference(qb.to(torch::kFloat32), kb.to(torch::kFloat32),
                                                              vb.to(torch::kFloat32), *mask);
        EXPECT_LT(rel_l2(out, ref), tolerance(torch::kBFloat16))
            << info.name << " D=" << D << " block=" << block << " sparsity=" << mask->block_sparsity();
      }
    }
  }
}

TEST(GpuKernel, PreparedDeviceMaskAndScheduleHeavyFirst) {
  SKIP_WITHOUT_GPU();
  // Per-head and shared (num_heads 1) masks; rows of very different lengths.
  for (const int64_t mask_heads : {3, 1}) {
    const int64_t H = 3;
    const auto mask = random_mask(1000, 128, mask_heads, 0.4, false, 5);
    auto dm = lc::upload_mask(mask, torch::kCUDA, H);
    const auto sched = dm.schedule.to(torch::kCPU, torch::kInt64);
    const int64_t nq = mask.num_q_blocks;
    ASSERT_EQ(sched.numel(), H * nq);
    // A permutation of all work items ...
    auto sorted = std::get<0>(sched.sort());
    EXPECT_TRUE(torch::equal(sorted, torch::arange(sched.numel(), torch::kInt64)));
    auto len = [&](int64_t item) {
      const int64_t row = mask_heads == 1 ? item % nq : item;
      return mask.row_offsets[size_t(row + 1)] - mask.row_offsets[size_t(row)];
    };
    int64_t longest = 0;
    for (int64_t i = 0; i < sched.numel(); ++i) longest = std::max<int64_t>(longest, len(i));
    ASSERT_GT(longest, 0);
    // ... heavy first: row lengths (Sorted) or weight bands (Bands) never increase; within a band
    // the natural head-major order stays (Bands, Natural).
    const auto order = lc::schedule_order();
    auto band = [&](int64_t item) { return (len(item) * 4 + longest - 1) / longest; };
    int64_t prev_key = std::numeric_limits<int64_t>::max(), prev_item = -1;
    for (int64_t i = 0; i < sched.numel(); ++i) {
      const int64_t item = sched[i].item<int64_t>();
      const int64_t key = order == lc::ScheduleOrder::Sorted ? len(item) : order == lc::ScheduleOrder::Bands ? band(item) : 0;
      EXPECT_LE(key, prev_key) << "position " << i;
      if (order != lc::ScheduleOrder::Sorted && key == prev_key) EXPECT_GT(item, prev_item) << "position " << i;
      prev_key = key;
      prev_item = item;
    }
    if (order == lc::ScheduleOrder::Bands) EXPECT_EQ(band(sched[0].item<int64_t>()), 4) << "a longest-band row runs first";
    const auto back = lc::download_mask(dm);
    EXPECT_EQ(back.row_offsets, mask.row_offsets);
    EXPECT_EQ(back.col_indices, mask.col_indices);
  }
}

TEST(GpuKernel, RejectsBadInputsNamingThem) {
  SKIP_WITHOUT_GPU();
  auto in = make_inputs(1, 2, 256, 64, torch::kBFloat16, false, 1);
  const auto mask = la::BlockMask::full(256, 128);
  auto expect_msg = [](auto&& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const longshot::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { lc::block_sparse_attention(in.q.cpu(), in.k, in.v, mask); }, "q must be a CUDA tensor");
  expect_msg([&] { lc::block_sparse_attention(in.q, in.k.to(torch::kHalf), in.v, mask); }, "k dtype");
  expect_msg([&] { lc::block_sparse_attention(in.q, in.k, in.v.to(torch::kFloat32), mask); }, "v must be bf16");
  auto q96 = torch::randn({1, 2, 256, 96}, in.q.options());
  expect_msg([&] { lc::block_sparse_attention(q96, q96, q96, mask); }, "head dim 96");
  expect_msg([&] { lc::block_sparse_attention(in.q, in.k, in.v, la::BlockMask::full(300, 128)); }, "seq_len");
  expect_msg([&] { lc::block_sparse_attention(in.q, in.k, in.v, la::BlockMask::full(256, 32)); }, "block_size");
}

// ---- GPU mask building

TEST(GpuMaskBuild, PoolAndScoresMatchCpu) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(2);
  const auto x = torch::randn({2, 3, 1000, 64});
  const auto pooled_gpu = lc::block_mean_pool(x.cuda().to(torch::kBFloat16), 128).cpu();
  const auto pooled_cpu = lc::block_mean_pool(x.to(torch::kBFloat16), 128);
  ASSERT_EQ(pooled_gpu.sizes().vec(), (std::vector<int64_t>{2, 3, 8, 64}));
  EXPECT_TRUE(torch::allclose(pooled_gpu, pooled_cpu, 1e-4, 1e-4));
  // Ragged last block: mean over its 104 real tokens.
  const auto tail = x.narrow(2, 896, 104).to(torch::kBFloat16).to(torch::kFloat32).mean(2);
  EXPECT_TRUE(torch::allclose(pooled_gpu.select(2, 7), tail, 1e-4, 1e-4));
  const auto s = lc::block_scores(x.cuda(), x.flip(2).cuda(), 128).cpu();
  ASSERT_EQ(s.sizes().vec(), (std::vector<int64_t>{3, 8, 8}));
  EXPECT_TRUE(torch::allclose(s.sum(-1), torch::ones({3, 8}), 1e-5, 1e-5));
}

TEST(GpuMaskBuild, TopKKeepsDiagonalAndBestBlocks) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(4);
  const int64_t N = 2000, block = 128, nb = 16, k = 5;
  const auto scores = torch::rand({2, nb, nb}, torch::kCUDA);
  auto dm = lc::select_topk(scores, k, N, block);
  const auto mask = lc::download_mask(dm);
  mask.validate();
  const auto cpu_scores = scores.cpu();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t qb = 0; qb < nb; ++qb) {
      auto row = cpu_scores[h][qb].clone();
      row[qb] = -1.f;  // the diagonal is kept anyway; the other k − 1 are the best of the rest
      const auto top = std::get<1>(row.topk(k - 1));
      for (int64_t i = 0; i < k - 1; ++i) EXPECT_TRUE(mask.contains(h, qb, top[i].item<int64_t>()));
      EXPECT_TRUE(mask.contains(h, qb, qb));
      EXPECT_EQ(mask.row_offsets[h * nb + qb + 1] - mask.row_offsets[h * nb + qb], k);
    }
  // Scores are untouched (the diagonal override works on a copy).
  EXPECT_TRUE(torch::equal(scores.cpu(), cpu_scores));
}

// Top-k with a candidate set, against a CPU stable sort: the diagonal first, then candidates by
// decreasing score, then non-candidates (rows with fewer than k candidates), ties to the lower
// index; offsets and schedule written by the kernel. And the means path: top-k on the logits
// (B = 1) keeps the blocks top-k on the softmax scores keeps.
TEST(GpuMaskBuild, TopKWithCandidatesAndFromMeans) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(21);
  const int64_t nb = 300, N = nb * 64 - 17, block = 64, H = 3;
  for (const int64_t k : {1, 7, 40, 300}) {
    auto scores = torch::rand({H, nb, nb}).mul_(8).floor_();  // many ties
    const auto cand = torch::rand({nb, nb}).lt(0.1);             // ~30 candidates per row: some rows short of 40
    auto dm = lc::select_topk(scores.cuda(), k, N, block, la::OrderingKind::Raster, cand.cuda());
    const auto mask = lc::download_mask(dm);
    mask.validate();
    EXPECT_TRUE(torch::equal(dm.schedule.cpu(), torch::arange(H * nb, torch::kInt32)));
    auto s = scores.clone().masked_fill_(cand.logical_not().unsqueeze(0), -1.0f);
    s.diagonal(0, 1, 2).fill_(1e9);
    const auto order = std::get<1>(torch::sort(s, /*stable=*/true, -1, /*descending=*/true)).narrow(-1, 0, k);
    const auto expect = std::get<0>(order.sort(-1)).to(torch::kInt32).reshape({-1});
    ASSERT_EQ(static_cast<int64_t>(mask.cols().size()), H * nb * k) << "k " << k;
    EXPECT_TRUE(torch::equal(torch::tensor(mask.cols(), torch::kInt32), expect)) << "k " << k;
  }
  // From means: B = 1 logits vs the softmax scores of the same means.
  const auto q = torch::randn({1, 4, 5000, 128}, torch::kCUDA).to(torch::kBFloat16);
  const auto kk = torch::randn({1, 4, 5000, 128}, torch::kCUDA).to(torch::kBFloat16);
  const auto qp = lc::block_mean_pool(q, 128), kp = lc::block_mean_pool(kk, 128);
  const int64_t nb2 = qp.size(2);
  auto a = lc::select_topk_from_means(qp, kp, 9, 5000, 128);
  auto b = lc::select_topk(lc::block_scores(q, kk, 128), 9, 5000, 128);
  const auto ma = lc::download_mask(a), mb = lc::download_mask(b);
  int64_t same = 0;
  for (size_t i = 0; i < ma.cols().size(); ++i) same += ma.cols()[i] == mb.cols()[i];
  EXPECT_GE(double(same) / double(ma.cols().size()), 0.995) << "logit order vs softmax order";
  EXPECT_EQ(ma.row_offsets, mb.row_offsets);
  EXPECT_EQ(ma.num_q_blocks, nb2);
  // Batch 2 averages the softmax: the same as block_scores on both batch elements.
  const auto q2 = torch::cat({q, q.flip(2)}), k2 = torch::cat({kk, kk.flip(2)});
  auto c = lc::select_topk_from_means(lc::block_mean_pool(q2, 128), lc::block_mean_pool(k2, 128), 9, 5000, 128);
  auto d = lc::select_topk(lc::block_scores(q2, k2, 128), 9, 5000, 128);
  EXPECT_EQ(lc::download_mask(c).cols(), lc::download_mask(d).cols());
  EXPECT_THROW(lc::select_topk(lc::block_scores(q, kk, 128), 9, 5000, 128, la::OrderingKind::Raster,
                               torch::ones({3, 3}, torch::kCUDA)),
               std::exception);
}

// The pooling kernel on the model's layout ([B, N, H, D] memory), D = 128, fp16, ragged tail.
TEST(GpuMaskBuild, PoolKernelOnModelLayout) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(12);
  const auto x = torch::randn({2, 777, 3, 128}).to(torch::kHalf);  // [B, N, H, D]
  const auto view_gpu = x.cuda().transpose(1, 2);                  // [B, H, N, D], D contiguous
  const auto pooled = lc::block_mean_pool(view_gpu, 128).cpu();
  const auto ref = lc::block_mean_pool(x.transpose(1, 2).to(torch::kFloat32), 128);
  ASSERT_EQ(pooled.sizes().vec(), (std::vector<int64_t>{2, 3, 7, 128}));
  EXPECT_TRUE(torch::allclose(pooled, ref, 1e-4, 1e-4)) << (pooled - ref).abs().max().item<float>();
}

// The top-k kernel on long rows with many ties: exactly k per row, the diagonal, every kept
// score >= every dropped one, and among equal scores the lower block index first.
TEST(GpuMaskBuild, TopKKernelOnLongRowsWithTies) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(9);
  const int64_t nb = 1000, block = 128, N = nb * block - 50, k = 97;
  const auto scores = torch::randint(0, 20, {2, nb, nb}).to(torch::kFloat32).div_(20.0).cuda();
  const auto mask = lc::download_mask(lc::select_topk(scores, k, N, block));
  mask.validate();
  const auto cpu = scores.cpu();
  const auto acc = cpu.accessor<float, 3>();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t qb = 0; qb < nb; ++qb) {
      const int64_t r = h * nb + qb;
      ASSERT_EQ(mask.row_offsets[r + 1] - mask.row_offsets[r], k) << "row " << r;
      ASSERT_TRUE(mask.contains(h, qb, qb));
      float min_kept = 2.f, max_dropped = -1.f;
      int64_t last_kept_at_min = -1, first_dropped_at_max = nb;
      for (int64_t kb = 0; kb < nb; ++kb) {
        if (kb == qb) continue;
        const float v = acc[h][qb][kb];
        if (mask.contains(h, qb, kb)) {
          if (v < min_kept) min_kept = v, last_kept_at_min = kb;
          else if (v == min_kept) last_kept_at_min = kb;
        } else if (v > max_dropped) {
          max_dropped = v, first_dropped_at_max = kb;
        }
      }
      ASSERT_GE(min_kept, max_dropped) << "row " << r;
      if (min_kept == max_dropped) ASSERT_LT(last_kept_at_min, first_dropped_at_max) << "tie order, row " << r;
    }
}

TEST(GpuMaskBuild, CumulativeThresholdIsMinimal) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(5);
  const int64_t nb = 12, N = nb * 64;
  const auto scores = torch::softmax(torch::randn({3, nb, nb}) * 3, -1);
  const double tau = 0.8;
  const auto mask = lc::download_mask(lc::select_cumulative(scores.cuda(), tau, N, 64));
  mask.validate();
  for (int64_t h = 0; h < 3; ++h)
    for (int64_t qb = 0; qb < nb; ++qb) {
      const auto row = scores[h][qb];
      const auto sorted = std::get<0>(row.sort(-1, true));
      // Minimal prefix reaching tau, plus possibly the diagonal.
      int64_t need = 0;
      double acc = 0;
      while (acc < tau * row.sum().item<double>()) acc += sorted[need++].item<double>();
      const int64_t kept = mask.row_offsets[h * nb + qb + 1] - mask.row_offsets[h * nb + qb];
      double kept_mass = 0;
      for (int64_t kb = 0; kb < nb; ++kb)
        if (mask.contains(h, qb, kb)) kept_mass += row[kb].item<double>();
      EXPECT_GE(kept_mass, tau - 1e-5);
      EXPECT_TRUE(kept == need || kept == need + 1) << "kept " << kept << " need " << need;
      EXPECT_TRUE(mask.contains(h, qb, qb));
    }
}

TEST(GpuMaskBuild, KeepMatrixRoundTripsAndHilbertPermutation) {
  SKIP_WITHOUT_GPU();
  const auto ref = random_mask(1500, 64, 2, 0.3, false, 9);
  const auto dense = ref.to_dense();
  const int64_t nb = ref.num_q_blocks;
  auto keep = torch::from_blob(const_cast<uint8_t*>(dense.data()), {2, nb, nb}, torch::kUInt8).to(torch::kCUDA);
  const auto back = lc::download_mask(lc::mask_from_keep(keep, 1500, 64, false));
  EXPECT_EQ(back.row_offsets, ref.row_offsets);
  EXPECT_EQ(back.col_indices, ref.col_indices);

  const la::TokenGrid grid{3, 10, 14};
  const auto ord = la::make_ordering(la::OrderingKind::Hilbert, grid);
  const auto p = lc::permutation_tensors(ord, torch::kCUDA);
  const auto x = torch::randn({1, 2, grid.size(), 8}, torch::kCUDA);
  const auto y = lc::permute_tokens(x, p.perm, 2);
  EXPECT_TRUE(torch::equal(y.select(2, 5), x.select(2, ord.perm[5])));
  EXPECT_TRUE(torch::equal(lc::permute_tokens(y, p.inverse, 2), x));
}

// Dynamic pipeline end to end on the GPU: pooled scores → top-k → kernel, vs the reference on
// the downloaded mask.
TEST(GpuMaskBuild, DynamicMaskDrivesKernel) {
  SKIP_WITHOUT_GPU();
  auto in = make_inputs(1, 4, 1100, 128, torch::kBFloat16, true, 13);
  const auto scores = lc::block_scores(in.q, in.k, 128);
  auto dm = lc::select_topk(scores, 3, 1100, 128);
  const auto out = lc::block_sparse_attention(in.q, in.k, in.v, dm);
  const auto ref = la::block_sparse_attention_reference(in.q32, in.k32, in.v32, lc::download_mask(dm));
  EXPECT_LT(rel_l2(out, ref), tolerance(torch::kBFloat16));
}

#endif  // LONGSHOT_HAS_CUDA

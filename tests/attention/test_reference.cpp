// Reference attention: full mask == dense, block-sparse == the −inf-masked softmax, ragged
// blocks, empty rows, chunking at N = 4096, input checks.
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "engine/attention/attention.h"
#include "engine/attention/metrics.h"
#include "engine/attention/reference.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

namespace {
// Independent oracle: one dense softmax with an additive −inf bias built token by token.
torch::Tensor masked_softmax_oracle(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const BlockMask& m) {
  const int64_t H = q.size(1), N = q.size(2);
  auto bias = torch::zeros({H, N, N}, torch::kFloat32);
  auto acc = bias.accessor<float, 3>();
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        if (!m.contains(h, i / m.block_size, j / m.block_size)) acc[h][i][j] = -std::numeric_limits<float>::infinity();
  auto s = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(double(q.size(3))) + bias.unsqueeze(0);
  return torch::matmul(torch::softmax(s, -1), v);
}

std::vector<uint8_t> random_keep(int64_t heads, int64_t nb, double p, uint64_t seed) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution coin(p);
  std::vector<uint8_t> keep(size_t(heads * nb * nb));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t j = 0; j < nb; ++j) keep[size_t((h * nb + i) * nb + j)] = (i == j) || coin(rng);
  return keep;
}
}  // namespace

TEST(Reference, FullMaskEqualsDense) {
  torch::manual_seed(3);
  auto q = torch::randn({2, 3, 200, 32}), k = torch::randn({2, 3, 200, 32}), v = torch::randn({2, 3, 200, 32});
  auto dense = dense_attention_reference(q, k, v);
  for (int64_t bs : {64, 128}) {
    auto sparse = block_sparse_attention_reference(q, k, v, BlockMask::full(200, bs, 3));
    EXPECT_LE(relative_l2_error(sparse, dense), 1e-5) << bs;
    EXPECT_LE(relative_l2_error(sparse_attention(q, k, v, BlockMask::full(200, bs, 1)), dense), 1e-5);
  }
  // And dense itself against a one-shot softmax.
  auto direct = torch::matmul(torch::softmax(torch::matmul(q, k.transpose(2, 3)) / std::sqrt(32.0), -1), v);
  EXPECT_LE(relative_l2_error(dense, direct), 1e-5);
}

TEST(Reference, BlockSparseIsMaskedSoftmax) {
  torch::manual_seed(4);
  const int64_t N = 150;  // ragged: 64, 64, 22
  auto q = torch::randn({1, 2, N, 16}), k = torch::randn({1, 2, N, 16}), v = torch::randn({1, 2, N, 8});
  for (int64_t heads : {1, 2}) {
    const BlockMask m = BlockMask::from_dense(random_keep(heads, 3, 0.4, 7 + heads), N, 64, heads);
    auto out = block_sparse_attention_reference(q, k, v, m);
    EXPECT_LE(relative_l2_error(out, masked_softmax_oracle(q, k, v, m)), 1e-5) << heads;
  }
}

TEST(Reference, EmptyRowGivesZeros) {
  auto q = torch::randn({1, 1, 128, 8}), k = torch::randn({1, 1, 128, 8}), v = torch::randn({1, 1, 128, 8});
  const BlockMask m = BlockMask::from_dense({1, 0, 0, 0}, 128, 64, 1);  // row 1 empty
  auto out = block_sparse_attention_reference(q, k, v, m);
  EXPECT_EQ(out.narrow(2, 64, 64).abs().max().item<float>(), 0.0f);
  EXPECT_FALSE(torch::isnan(out).any().item<bool>());
}

TEST(Reference, ChunkedLongSequence) {
  // N = 4096 spans several 8 MB query chunks: the first rows against a direct full-row softmax,
  // the last rows of a diagonal-only mask against attention within their own block.
  torch::manual_seed(5);
  const int64_t N = 4096;
  auto q = torch::randn({1, 1, N, 16}), k = torch::randn({1, 1, N, 16}), v = torch::randn({1, 1, N, 16});
  const BlockMask full = BlockMask::full(N, 128, 1);
  auto out = block_sparse_attention_reference(q, k, v, full);
  // Rows 0..127 against a direct computation.
  auto s = torch::matmul(q.narrow(2, 0, 128), k.transpose(2, 3)) / 4.0;
  auto direct = torch::matmul(torch::softmax(s, -1), v);
  EXPECT_LE(relative_l2_error(out.narrow(2, 0, 128), direct), 1e-5);
  auto diag = BlockMask::from_dense(random_keep(1, 32, 0.0, 1), N, 128, 1);
  auto out_diag = block_sparse_attention_reference(q, k, v, diag);
  auto s_last = torch::matmul(q.narrow(2, N - 128, 128), k.narrow(2, N - 128, 128).transpose(2, 3)) / 4.0;
  EXPECT_LE(relative_l2_error(out_diag.narrow(2, N - 128, 128),
                              torch::matmul(torch::softmax(s_last, -1), v.narrow(2, N - 128, 128))),
            1e-5);
}

TEST(Reference, ShapeErrorsNameTheTensor) {
  auto q = torch::randn({1, 2, 64, 8});
  try {
    dense_attention_reference(q, torch::randn({1, 2, 60, 8}), q);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'k'"), std::string::npos) << e.what();
  }
  try {
    block_sparse_attention_reference(q, q, q, BlockMask::full(128, 64));
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("seq_len"), std::string::npos) << e.what();
  }
  EXPECT_THROW(block_sparse_attention_reference(q, q, q, BlockMask::full(64, 64, 3)), ShapeError);
  EXPECT_THROW(dense_attention_reference(torch::randn({2, 64, 8}), q, q), ShapeError);
}

TEST(Dispatch, CpuPathAndUnsupportedCombinations) {
  auto q = torch::randn({1, 2, 64, 8});
  EXPECT_NO_THROW(sparse_attention(q, q, q, BlockMask::full(64, 64)));
  if (!cuda_backend_available()) {
    // Asking for the kernel without CUDA tensors / a CUDA build is an error, never a fallback.
    EXPECT_THROW(sparse_attention(q, q, q, BlockMask::full(64, 64), Backend::Cuda), ShapeError);
    EXPECT_THROW(dense_attention(q, q, q, Backend::Cuda), ShapeError);
  }
  EXPECT_FALSE(backend_description().empty());
}

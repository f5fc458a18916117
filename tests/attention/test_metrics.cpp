// Metrics: recall of full/diagonal masks, strided recall, relative L2.
#include <gtest/gtest.h>

#include "engine/attention/metrics.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

TEST(Metrics, RecallOfFullMaskIsOne) {
  auto q = torch::randn({1, 2, 130, 16}), k = torch::randn({1, 2, 130, 16});
  EXPECT_NEAR(attention_recall(q, k, BlockMask::full(130, 64)), 1.0, 1e-6);
}

TEST(Metrics, RecallMatchesDirectSum) {
  torch::manual_seed(11);
  auto q = torch::randn({1, 1, 128, 8}), k = torch::randn({1, 1, 128, 8});
  const BlockMask m = BlockMask::from_dense({1, 0, 1, 1}, 128, 64, 1);
  auto p = torch::softmax(torch::matmul(q, k.transpose(2, 3)) / std::sqrt(8.0), -1)[0][0];
  const double expect = (p.narrow(0, 0, 64).narrow(1, 0, 64).sum().item<double>() + 64.0) / 128.0;
  EXPECT_NEAR(attention_recall(q, k, m), expect, 1e-5);
  // Strided: every 2nd query, still close on random data with this many rows.
  const double strided = attention_recall(q, k, m, 2);
  EXPECT_GT(strided, 0.0);
  EXPECT_LE(strided, 1.0);
  EXPECT_THROW(attention_recall(q, k, m, 0), ParameterError);
}

TEST(Metrics, RelativeL2) {
  auto a = torch::ones({4, 4});
  EXPECT_DOUBLE_EQ(relative_l2_error(a, a), 0.0);
  EXPECT_NEAR(relative_l2_error(a * 1.1, a), 0.1, 1e-6);
  EXPECT_THROW(relative_l2_error(a, torch::ones({4, 5})), ShapeError);
}

// Synthetic inputs: seeded determinism, energy decay with distance, motion links.
#include <gtest/gtest.h>

#include "engine/attention/synthetic.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

TEST(Synthetic, SeededAndDeterministic) {
  SyntheticSpec s;
  s.grid = {4, 8, 8};
  s.heads = 2;
  s.head_dim = 32;
  const QKV a = make_synthetic_qkv(s), b = make_synthetic_qkv(s);
  EXPECT_TRUE(torch::equal(a.q, b.q));
  EXPECT_TRUE(torch::equal(a.k, b.k));
  EXPECT_TRUE(torch::equal(a.v, b.v));
  EXPECT_EQ(a.q.sizes(), (std::vector<int64_t>{1, 2, 256, 32}));
  s.seed = 2;
  EXPECT_FALSE(torch::equal(a.q, make_synthetic_qkv(s).q));
}

TEST(Synthetic, AttentionMassDecaysWithDistance) {
  SyntheticSpec s;
  s.grid = {6, 12, 12};
  s.heads = 3;
  s.head_dim = 64;
  s.motion_links = 0;
  const QKV x = make_synthetic_qkv(s);
  auto p = torch::softmax(torch::matmul(x.q, x.k.transpose(2, 3)) / 8.0, -1).mean(at::IntArrayRef{0, 1});  // [N, N]
  // Mean probability by Chebyshev distance bucket.
  const TokenGrid& g = s.grid;
  std::vector<double> sum(8, 0.0), count(8, 0.0);
  auto acc = p.accessor<float, 2>();
  for (int64_t i = 0; i < g.size(); i += 7) {
    int64_t ti, yi, xi;
    g.coords(i, ti, yi, xi);
    for (int64_t j = 0; j < g.size(); ++j) {
      int64_t tj, yj, xj;
      g.coords(j, tj, yj, xj);
      const int64_t d = std::max({std::llabs(ti - tj), std::llabs(yi - yj), std::llabs(xi - xj)});
      if (d < 8) sum[size_t(d)] += acc[i][j], count[size_t(d)] += 1;
    }
  }
  for (int d = 1; d < 6; ++d) EXPECT_GT(sum[size_t(d - 1)] / count[size_t(d - 1)], sum[size_t(d)] / count[size_t(d)]) << d;
  // Nearby keys (distance <= 2) hold far more than their share of the mass.
  EXPECT_GT(sum[0] / count[0], 20.0 / double(g.size()));
}

TEST(Synthetic, MotionLinksAttendFar) {
  SyntheticSpec s;
  s.grid = {6, 12, 12};
  s.heads = 1;
  s.head_dim = 64;
  s.motion_links = 0;
  const QKV plain = make_synthetic_qkv(s);
  s.motion_links = 4;
  const QKV linked = make_synthetic_qkv(s);
  // Links touch only the last dims: the max logit over far keys rises for some queries.
  auto far_max = [&](const QKV& x) {
    auto logits = torch::matmul(x.q, x.k.transpose(2, 3))[0][0] / 8.0;
    return logits.max().item<double>();
  };
  EXPECT_GT(far_max(linked), far_max(plain));
  EXPECT_FALSE(torch::equal(plain.q, linked.q));
}

TEST(Synthetic, BadSpecNamesTheField) {
  SyntheticSpec s;
  s.heads = 0;
  try {
    make_synthetic_qkv(s);
    FAIL();
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "heads");
  }
  s = SyntheticSpec{};
  s.grid = {0, 4, 4};
  EXPECT_THROW(make_synthetic_qkv(s), ParameterError);
}

// Flow-matching Euler sampler: the shifted schedule, exactness on a straight flow, guidance,
// seeded noise, parameter errors.
#include <gtest/gtest.h>

#include "engine/common/error.h"
#include "engine/sampler/flow_matching.h"

using namespace longshot;
using namespace longshot::sampler;

TEST(FlowMatch, ScheduleShiftsTowardNoise) {
  FlowMatchEuler plain(10, 1.0), shifted(10, 5.0);
  EXPECT_EQ(plain.num_steps(), 10);
  EXPECT_DOUBLE_EQ(plain.sigma(0), 1.0);
  EXPECT_DOUBLE_EQ(plain.sigma(10), 0.0);
  EXPECT_NEAR(plain.sigma(3), 0.7, 1e-12);
  EXPECT_NEAR(plain.timestep(3), 700.0, 1e-9);
  // shift(σ) = 5σ / (1 + 4σ): σ = 0.5 → 5/6.
  EXPECT_NEAR(shifted.sigma(5), 2.5 / 3.0, 1e-12);
  for (int i = 0; i < 10; ++i) {
    EXPECT_GT(shifted.sigma(i), shifted.sigma(i + 1));
    EXPECT_GE(shifted.sigma(i), plain.sigma(i));
  }
}

TEST(FlowMatch, EulerIsExactOnAStraightFlow) {
  // With the true velocity ε − x0 every Euler step stays on the line, so the end point is x0.
  auto x0 = torch::randn({2, 3, 4});
  auto eps = seeded_noise({2, 3, 4}, 11);
  FlowMatchEuler s(7, 3.0);
  auto x = eps.clone();
  for (int i = 0; i < s.num_steps(); ++i) {
    EXPECT_LT((s.predict_x0(x, eps - x0, i) - x0).abs().max().item<double>(), 1e-5);
    x = s.step(x, eps - x0, i);
  }
  EXPECT_LT((x - x0).abs().max().item<double>(), 1e-5);
}

TEST(FlowMatch, GuidanceAndNoise) {
  auto c = torch::full({3}, 2.0), u = torch::full({3}, 1.0);
  EXPECT_TRUE(torch::allclose(classifier_free_guidance(c, u, 5.0), torch::full({3}, 6.0)));
  EXPECT_TRUE(torch::equal(classifier_free_guidance(c, u, 1.0), c));
  EXPECT_THROW(classifier_free_guidance(c, u, -1.0), ParameterError);
  EXPECT_TRUE(torch::equal(seeded_noise({4, 5}, 3), seeded_noise({4, 5}, 3)));
  EXPECT_FALSE(torch::equal(seeded_noise({4, 5}, 3), seeded_noise({4, 5}, 4)));
  EXPECT_NEAR(seeded_noise({200, 200}, 1).std().item<double>(), 1.0, 0.02);
}

TEST(FlowMatch, ParameterErrors) {
  EXPECT_THROW(FlowMatchEuler(0, 5.0), ParameterError);
  EXPECT_THROW(FlowMatchEuler(10, 0.0), ParameterError);
  try {
    FlowMatchEuler(10, -1.0);
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "shift");
  }
}

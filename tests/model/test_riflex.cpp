// RIFLEx on the temporal RoPE: the intrinsic index and the rewritten frequency, against the rule of
// LVSA's lvsa/riflex.py (identify_intrinsic_k, _build_riflex_temporal_table), values worked out
// with its formula: Wan2.1-1.3B's temporal part is 44 dims (head 128 − 4·21), the built-in
// model's 24 (head 64 − 4·10).
#include <gtest/gtest.h>

#include <cmath>

#include "engine/model/dit.h"

using namespace longshot::model;

TEST(Riflex, IntrinsicIndexIsThePeriodNearestTheTrainingLength) {
  // Periods 2π·10000^(2j/44): j = 3 gives 2π·10000^(6/44) ≈ 22.6, the nearest to 21 frames.
  EXPECT_EQ(riflex_intrinsic_index(44, 21, 10000.0), 3);
  EXPECT_EQ(riflex_intrinsic_index(44, 16, 10000.0), 2);
  EXPECT_EQ(riflex_intrinsic_index(24, 16, 10000.0), 1);
  EXPECT_EQ(rope_split(128)[0], 44);
}

TEST(Riflex, OnlyPastTheHorizonAndOnlyTheIntrinsicFrequency) {
  const auto plain = temporal_rope_freqs(44, 10000.0, 81, 21, false);
  ASSERT_EQ(plain.size(), 22u);
  EXPECT_DOUBLE_EQ(plain[1], 1.0 / std::pow(10000.0, 2.0 / 44.0));
  EXPECT_EQ(temporal_rope_freqs(44, 10000.0, 21, 21, true), plain) << "at the horizon: no change";
  EXPECT_EQ(temporal_rope_freqs(44, 10000.0, 81, 0, true), plain) << "no known horizon: no change";
  const auto ext = temporal_rope_freqs(44, 10000.0, 81, 21, true);
  for (size_t j = 0; j < plain.size(); ++j) {
    if (j == 3) EXPECT_DOUBLE_EQ(ext[j], 2.0 * M_PI / 81.0) << "one period over the 81 frames (s = 81/21)";
    else EXPECT_EQ(ext[j], plain[j]) << j;
  }
}

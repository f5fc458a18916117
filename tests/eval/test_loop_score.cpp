// The VQeval-style loop score: a clip that replays itself or stands still scores far below one
// whose content keeps moving on; its parts behave as their formulas say.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/common/error.h"
#include "engine/eval/metrics.h"

namespace longshot::eval {
namespace {

// A bright square moving right by `speed` px per frame over a dark background (non-repeating:
// it leaves the frame slowly), or replaying the first `period` frames when period > 0.
Video square_video(int frames, int period, double speed) {
  Video v;
  v.frames = frames;
  v.height = 32;
  v.width = 96;
  v.rgb.assign(size_t(frames) * v.frame_bytes(), 20);
  for (int t = 0; t < frames; ++t) {
    const int src = period > 0 ? t % period : t;
    const int x0 = int(std::lround(4 + speed * src));
    uint8_t* px = v.frame(t);
    for (int y = 10; y < 22; ++y)
      for (int x = x0; x < std::min(v.width, x0 + 12); ++x)
        for (int c = 0; c < 3; ++c) px[(size_t(y) * v.width + x) * 3 + c] = uint8_t(200 + 20 * c);
  }
  return v;
}

TEST(LoopScore, ReplayingAndFrozenClipsScoreLow) {
  const auto moving = loop_score(square_video(40, 0, 2.0));
  const auto looping = loop_score(square_video(40, 8, 2.0));
  const auto frozen = loop_score(square_video(40, 1, 2.0));
  EXPECT_GT(moving.score, 0.7) << moving.severity;
  EXPECT_LT(looping.score, moving.score - 0.3);
  EXPECT_LT(frozen.score, moving.score - 0.3);
  // The replay: its period is the cycle's, its frames are near-duplicates of earlier ones.
  EXPECT_EQ(looping.cycle_period % 8, 0);
  EXPECT_GT(looping.duplicate, 0.3);  // 1/8 of the far pairs repeat, × 3
  EXPECT_GE(looping.longest_repeat, 20);
  EXPECT_NEAR(moving.duplicate, 0.0, 1e-12);
  // Standing still: nothing changes, VQeval's fixed autocorrelation of 0.8.
  EXPECT_DOUBLE_EQ(frozen.autocorrelation, 0.8);
  // On raw pixels too.
  EXPECT_LT(loop_score(square_video(40, 8, 2.0), 1).score, loop_score(square_video(40, 0, 2.0), 1).score - 0.3);
}

TEST(LoopScore, SeverityIsTheWeightedSum) {
  const auto r = loop_score(square_video(30, 6, 3.0));
  EXPECT_NEAR(r.severity, 0.35 * r.cycle + 0.25 * r.duplicate + 0.20 * r.periodicity + 0.20 * r.autocorrelation, 1e-12);
  EXPECT_NEAR(r.score, 1.0 - r.severity, 1e-12);
  for (double part : {r.cycle, r.duplicate, r.periodicity, r.autocorrelation}) {
    EXPECT_GE(part, 0.0);
    EXPECT_LE(part, 1.0);
  }
}

TEST(LoopScore, BadInputNamesTheParameter) {
  EXPECT_THROW(loop_score(square_video(5, 0, 1.0)), ParameterError);
  try {
    loop_score(square_video(10, 0, 1.0), 0);
    ADD_FAILURE();
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "pool");
  }
}

}  // namespace
}  // namespace longshot::eval

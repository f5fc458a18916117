// Metrics against ground truth: rendered clips score high; frozen, looping and wrong-colour
// clips score low; PSNR / SSIM behave as their formulas say.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/common/error.h"
#include "engine/data/world.h"
#include "engine/eval/metrics.h"

namespace longshot::eval {
namespace {

using data::Clip;

// Every frame from `from` on repeats frame `from`.
Video frozen_after(Video v, int from) {
  for (int t = from + 1; t < v.frames; ++t) std::copy(v.frame(from), v.frame(from) + v.frame_bytes(), v.frame(t));
  return v;
}

// From `from` on, replays the `period` frames before it.
Video looping_after(Video v, int from, int period) {
  for (int t = from; t < v.frames; ++t) {
    const int src = from - period + (t - from) % period;
    std::copy(v.frame(src), v.frame(src) + v.frame_bytes(), v.frame(t));
  }
  return v;
}

TEST(Adherence, GroundTruthScoresHigh) {
  // One object: nothing occludes it, every check should pass.
  data::WorldOptions single;
  single.max_objects = 1;
  double sum = 0;
  const int n = 30;
  for (uint64_t seed = 0; seed < n; ++seed) {
    const Clip clip = data::generate_clip(seed, 32, 64, 64, single);
    const Adherence a = prompt_adherence(clip.video, clip.caption);
    sum += a.accuracy;
    EXPECT_GE(a.accuracy, 0.9) << clip.caption << " presence " << a.presence << " size " << a.size << " motion " << a.motion;
  }
  EXPECT_GE(sum / n, 0.97);
  // Up to three objects: overlapping objects hide each other for a while (the metric sees pixels,
  // not layers), so the bar is lower.
  sum = 0;
  for (uint64_t seed = 0; seed < n; ++seed) {
    const Clip clip = data::generate_clip(seed, 32, 64, 64);
    sum += prompt_adherence(clip.video, clip.caption).accuracy;
  }
  EXPECT_GE(sum / n, 0.9);
}

TEST(Adherence, WrongColourWrongMotionWrongSizeScoreLow) {
  const Clip clip = data::generate_clip(3, 32, 64, 64);
  auto info = *data::parse_caption(clip.caption);
  // A colour the clip does not contain.
  auto wrong = info;
  for (auto& o : wrong.objects) {
    for (int c = 0; c < static_cast<int>(data::object_colors().size()); ++c) {
      bool used = false;
      for (const auto& s : clip.spec.objects) used |= s.color == c;
      if (!used) { o.color = c; break; }
    }
  }
  EXPECT_LT(prompt_adherence(clip.video, wrong).accuracy, 0.1);

  // A right-mover asked to go left; a large object asked to be small.
  data::ClipSpec spec;
  data::ObjectSpec o;
  o.shape = data::Shape::Circle;
  o.color = 2;
  o.size = data::Size::Large;
  o.motion = data::Motion::BounceRight;
  o.x0 = 0.2; o.y0 = 0.5; o.speed = 0.03;
  spec.objects = {o};
  const Video v = data::render(spec, 32, 64, 64);
  data::CaptionInfo asked;
  asked.objects = {{o.shape, o.color, o.size, data::Motion::BounceRight}};
  const Adherence good = prompt_adherence(v, asked);
  EXPECT_GE(good.accuracy, 0.95);
  asked.objects[0].motion = data::Motion::Fall;
  EXPECT_LT(prompt_adherence(v, asked).motion, 0.2);
  asked.objects[0].motion = data::Motion::BounceRight;
  asked.objects[0].size = data::Size::Small;
  EXPECT_LT(prompt_adherence(v, asked).size, 0.2);
  // Frozen: present and sized, but no motion.
  asked.objects[0].size = data::Size::Large;
  EXPECT_LT(prompt_adherence(frozen_after(v, 0), asked).motion, 0.2);
  EXPECT_THROW(prompt_adherence(v, "a cat"), ParameterError);
}

TEST(TemporalHealth, GroundTruthHealthyAtLongHorizons) {
  for (uint64_t seed = 0; seed < 12; ++seed) {
    const Clip clip = data::generate_clip(seed, 96, 48, 48);
    const TemporalHealth h = temporal_health(clip.video, 32);
    EXPECT_GE(h.score, 0.7) << clip.caption << " retention " << h.energy_retention << " loop " << h.loop << " lag " << h.loop_lag;
  }
}

TEST(TemporalHealth, FrozenAndLoopingScoreLow) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const Clip clip = data::generate_clip(seed, 96, 48, 48);
    const TemporalHealth frozen = temporal_health(frozen_after(clip.video, 31), 32);
    EXPECT_LT(frozen.score, 0.1) << clip.caption;
    EXPECT_LT(frozen.energy_retention, 0.1);
    const TemporalHealth loop = temporal_health(looping_after(clip.video, 32, 12), 32);
    EXPECT_LT(loop.score, 0.2) << clip.caption;
    EXPECT_EQ(loop.loop_lag, 12);
  }
  EXPECT_THROW(temporal_health(data::generate_clip(1, 3, 8, 8).video, 32), ParameterError);
}

TEST(Fidelity, PsnrSsim) {
  const Clip clip = data::generate_clip(4, 6, 32, 32);
  EXPECT_DOUBLE_EQ(psnr(clip.video, clip.video), 100.0);
  EXPECT_NEAR(ssim(clip.video, clip.video), 1.0, 1e-9);
  // Uniform error of 5 levels: PSNR = 10 log10(255² / 25).
  Video shifted = clip.video;
  for (auto& b : shifted.rgb) b = static_cast<uint8_t>(b < 250 ? b + 5 : b - 5);
  EXPECT_NEAR(psnr(clip.video, shifted), 10.0 * std::log10(255.0 * 255.0 / 25.0), 1e-6);
  EXPECT_GT(ssim(clip.video, shifted), 0.9);
  const Clip other = data::generate_clip(5, 6, 32, 32);
  EXPECT_LT(psnr(clip.video, other.video), 25.0);
  EXPECT_LT(ssim(clip.video, other.video), ssim(clip.video, shifted));
  EXPECT_THROW(psnr(clip.video, data::generate_clip(4, 5, 32, 32).video), ShapeError);
}

}  // namespace
}  // namespace longshot::eval

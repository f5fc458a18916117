// Folding Generator events into the studio's state; playback clock; compare numbers.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/common/error.h"
#include "ui/compare.h"
#include "ui/playback.h"
#include "ui/panels/panel.h"
#include "ui/studio_state.h"

namespace lu = longshot::ui;
namespace lp = longshot::pipeline;

namespace {
lp::StepFinished step(uint64_t job, int i, const std::string& mode, bool changed) {
  lp::StepFinished s;
  s.job_id = job;
  s.step = i;
  s.num_steps = 4;
  s.mode = mode;
  s.mode_changed = changed;
  s.step_ms = 100;
  s.attention_ms = 40;
  s.sparsity = {0.1f, 0.3f, 0.5f, 0.7f};  // 2 layers × 2 heads
  s.mean_sparsity = 0.4;
  return s;
}
lp::JobStarted start(uint64_t job) {
  lp::JobStarted s;
  s.job_id = job;
  s.request.steps = 4;
  s.grid = {2, 4, 4};
  s.num_layers = 2;
  s.num_heads = 2;
  return s;
}
}  // namespace

TEST(StudioState, FoldsARunWithAModeSwitch) {
  lu::StudioState state;
  std::vector<lp::Event> batch = {start(7), step(7, 0, "dense", false), step(7, 1, "dense", false),
                                  step(7, 2, "lvsa", true)};
  auto mask = std::make_shared<longshot::attention::BlockMask>(longshot::attention::BlockMask::full(32, 8));
  std::get<lp::StepFinished>(batch.back()).mask = mask;
  EXPECT_EQ(state.apply_all(batch), 4u);
  ASSERT_NE(state.current(), nullptr);
  const auto& r = *state.current();
  EXPECT_EQ(r.job_id, 7u);
  EXPECT_EQ(r.status, lu::RunStatus::Running);
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_EQ(r.steps[0].layer_sparsity, (std::vector<float>{0.2f, 0.6f}));
  ASSERT_EQ(r.mode_switches.size(), 1u);
  EXPECT_EQ(r.mode_switches[0].step, 2);
  EXPECT_EQ(r.mode_switches[0].from, "dense");
  EXPECT_EQ(r.mode_switches[0].to, "lvsa");
  EXPECT_EQ(state.mode_switch_count(), 1u);
  EXPECT_EQ(r.mask.get(), mask.get());  // shared, not copied
  EXPECT_NEAR(state.steps_per_second(), 10.0, 1e-9);
  EXPECT_NEAR(state.eta_seconds(), 0.1, 1e-9);
  EXPECT_TRUE(state.running());

  auto video = std::make_shared<longshot::Video>();
  video->frames = 1;
  state.apply(lp::JobFinished{7, 400, 160, 0.4, video});
  EXPECT_EQ(r.status, lu::RunStatus::Finished);
  EXPECT_EQ(r.frames().get(), video.get());
  EXPECT_FALSE(state.running());
  EXPECT_EQ(state.eta_seconds(), 0);
}

TEST(StudioState, PreviousRunFailuresAndHistory) {
  lu::StudioState state(2);
  state.apply(start(1));
  state.apply(lp::JobFinished{1, 1, 1, 0, nullptr});
  state.apply(start(2));
  EXPECT_EQ(state.previous()->job_id, 1u);
  state.apply(lp::JobFailed{2, "invalid parameter 'frames': must be positive"});
  EXPECT_EQ(state.current()->status, lu::RunStatus::Failed);
  const auto errors = state.take_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("frames"), std::string::npos);
  EXPECT_TRUE(state.take_errors().empty());
  state.apply(start(3));
  state.apply(lp::JobCancelled{3, 1});
  EXPECT_EQ(state.runs().size(), 2u);  // history of 2
  EXPECT_EQ(state.find(1), nullptr);
  EXPECT_EQ(state.current()->status, lu::RunStatus::Cancelled);
  state.apply(lp::JobFailed{99, "late failure"});  // unknown job: still surfaces
  EXPECT_EQ(state.take_errors().size(), 1u);
  EXPECT_EQ(state.events_applied(), 7u);
}

TEST(Playback, PlaysLoopsScrubsAndStops) {
  lu::Playback p;
  p.set_frame_count(4);
  p.play();
  p.advance(0.25, 8.0);  // two frames
  EXPECT_EQ(p.frame(), 2);
  p.advance(0.25, 8.0);
  EXPECT_EQ(p.frame(), 0);  // looped
  p.set_loop(false);
  p.advance(1.0, 8.0);
  EXPECT_EQ(p.frame(), 3);
  EXPECT_FALSE(p.playing());
  p.scrub(99);
  EXPECT_EQ(p.frame(), 3);
  p.set_frame_count(2);
  EXPECT_EQ(p.frame(), 1);
  p.set_frame_count(1);
  p.play();
  EXPECT_FALSE(p.playing());
}

TEST(Compare, PsnrAndDifference) {
  longshot::Video a, b;
  a.frames = b.frames = 2;
  a.height = b.height = 2;
  a.width = b.width = 2;
  a.rgb.assign(24, 100);
  b.rgb = a.rgb;
  b.rgb[12] = 110;  // frame 1 differs in one byte
  const auto p = lu::per_frame_psnr(a, b);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(std::isinf(p[0]));
  EXPECT_NEAR(p[1], 10 * std::log10(255.0 * 255.0 * 12 / 100.0), 1e-9);
  const auto d = lu::difference_image(a, b, 1, 4.f);
  EXPECT_EQ(d[0], 40);
  EXPECT_EQ(d[1], 0);
  b.width = 3;
  EXPECT_THROW(lu::per_frame_psnr(a, b), longshot::ShapeError);
  b.width = 2;
  EXPECT_THROW(lu::difference_image(a, b, 2), longshot::ParameterError);
}

// The views cache textures by (job, step that published the payload), never by a buffer's address:
// a payload that stays keeps its key, a newer one (or the final clip) changes it.
TEST(StudioState, PayloadKeysFollowTheStepThatPublished) {
  lu::StudioState state;
  state.apply(start(3));
  EXPECT_FALSE(lu::frames_key(state.current()).valid());
  EXPECT_FALSE(lu::heatmap_key(state.current()).valid());
  EXPECT_FALSE(lu::mask_key(state.current()).valid());
  auto s1 = step(3, 1, "dense", false);
  s1.heatmap = std::make_shared<lp::AttentionHeatmap>();
  s1.mask = std::make_shared<longshot::attention::BlockMask>(longshot::attention::BlockMask::full(32, 8));
  s1.preview = std::make_shared<longshot::Video>();
  state.apply(s1);
  const auto heat = lu::heatmap_key(state.current()), mask = lu::mask_key(state.current());
  const auto frames = lu::frames_key(state.current());
  EXPECT_TRUE(heat.valid());
  EXPECT_EQ(heat.job, 3u);
  EXPECT_EQ(heat.step, 1);
  EXPECT_EQ(mask, (lu::PayloadKey{3, 1}));
  EXPECT_EQ(frames, (lu::PayloadKey{3, 1}));
  state.apply(step(3, 2, "dense", false));  // publishes nothing new: the keys stay
  EXPECT_EQ(lu::heatmap_key(state.current()), heat);
  EXPECT_EQ(lu::mask_key(state.current()), mask);
  EXPECT_EQ(lu::frames_key(state.current()), frames);
  auto s3 = step(3, 3, "dense", false);
  s3.heatmap = std::make_shared<lp::AttentionHeatmap>();
  s3.preview = std::make_shared<longshot::Video>();
  state.apply(s3);
  EXPECT_EQ(lu::heatmap_key(state.current()), (lu::PayloadKey{3, 3}));
  EXPECT_EQ(lu::frames_key(state.current()), (lu::PayloadKey{3, 3}));
  EXPECT_EQ(lu::mask_key(state.current()), mask);
  lp::FramesDecoded decoded;
  decoded.job_id = 3;
  decoded.video = std::make_shared<longshot::Video>();
  state.apply(decoded);
  EXPECT_EQ(lu::frames_key(state.current()), (lu::PayloadKey{3, lu::PayloadKey::kFinalFrames}));
  // Another job's payloads never share a key with this one's.
  state.apply(start(4));
  auto t1 = step(4, 1, "dense", false);
  t1.heatmap = std::make_shared<lp::AttentionHeatmap>();
  state.apply(t1);
  EXPECT_NE(lu::heatmap_key(state.current()), heat);
}

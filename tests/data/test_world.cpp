// The procedural world: determinism per seed, captions that agree with the trajectories, the
// caption grammar read back, any clip length, tokenizer behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "engine/common/error.h"
#include "engine/data/tokenizer.h"
#include "engine/data/world.h"

namespace longshot::data {
namespace {

TEST(World, DeterministicPerSeed) {
  for (uint64_t seed : {0ull, 1ull, 77ull, 123456789ull}) {
    const Clip a = generate_clip(seed, 12, 32, 32);
    const Clip b = generate_clip(seed, 12, 32, 32);
    EXPECT_EQ(a.caption, b.caption);
    EXPECT_EQ(a.video.rgb, b.video.rgb) << "seed " << seed;
  }
  EXPECT_NE(generate_clip(1, 12, 32, 32).video.rgb, generate_clip(2, 12, 32, 32).video.rgb);
}

TEST(World, SamplesCoverTheGrammar) {
  std::set<int> motions, shapes, counts, backgrounds;
  int pans = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const ClipSpec s = sample_clip(seed);
    ASSERT_GE(s.objects.size(), 1u);
    ASSERT_LE(s.objects.size(), 3u);
    counts.insert(static_cast<int>(s.objects.size()));
    backgrounds.insert(static_cast<int>(s.background));
    std::set<int> colors;
    for (const auto& o : s.objects) {
      motions.insert(static_cast<int>(o.motion));
      shapes.insert(static_cast<int>(o.shape));
      colors.insert(o.color);
    }
    EXPECT_EQ(colors.size(), s.objects.size()) << "colours must be distinct within a clip";
    pans += s.pan != Pan::None;
  }
  EXPECT_EQ(motions.size(), 8u);
  EXPECT_EQ(shapes.size(), 4u);
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_EQ(backgrounds.size(), 3u);
  EXPECT_GT(pans, 10);
}

// The caption's motion phrase must be what the ground-truth trajectory does.
TEST(World, CaptionsMatchTrajectories) {
  const int T = 48, W = 64, H = 64;
  int checked = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Clip clip;  // trajectories and caption only: rendering is checked elsewhere
    clip.spec = sample_clip(seed);
    clip.caption = caption(clip.spec);
    clip.trajectory = simulate(clip.spec, T, W, H);
    const auto parsed = parse_caption(clip.caption);
    ASSERT_TRUE(parsed) << clip.caption;
    ASSERT_EQ(parsed->objects.size(), clip.spec.objects.size());
    for (size_t k = 0; k < clip.spec.objects.size(); ++k) {
      const auto& o = clip.spec.objects[k];
      EXPECT_EQ(parsed->objects[k].motion, o.motion) << clip.caption;
      EXPECT_EQ(parsed->objects[k].color, o.color);
      EXPECT_EQ(parsed->objects[k].shape, o.shape);
      EXPECT_EQ(parsed->objects[k].size, o.size);
      const auto& f0 = clip.trajectory[0][k];
      const auto& f4 = clip.trajectory[4][k];
      double sx = 0, sy = 0, sr = 0, turn = 0;
      for (int t = 0; t + 1 < T; ++t) {
        double dx = clip.trajectory[t + 1][k].x - clip.trajectory[t][k].x;
        dx -= W * std::round(dx / W);
        sx += std::abs(dx);
        sy += std::abs(clip.trajectory[t + 1][k].y - clip.trajectory[t][k].y);
        sr += std::abs(clip.trajectory[t + 1][k].radius - clip.trajectory[t][k].radius);
        if (t + 2 < T) {
          const auto& a = clip.trajectory[t][k];
          const auto& b = clip.trajectory[t + 1][k];
          const auto& c = clip.trajectory[t + 2][k];
          turn += (b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x);
        }
      }
      switch (o.motion) {
        case Motion::BounceRight: EXPECT_GT(f4.x, f0.x); EXPECT_EQ(sy, 0.0); EXPECT_GT(sx, 10.0); break;
        case Motion::BounceLeft: EXPECT_LT(f4.x, f0.x); EXPECT_EQ(sy, 0.0); EXPECT_GT(sx, 10.0); break;
        case Motion::BounceVertical: EXPECT_EQ(sx, 0.0); EXPECT_GT(sy, 10.0); break;
        case Motion::Fall: EXPECT_EQ(sx, 0.0); EXPECT_GT(f4.y, f0.y) << "falls first"; EXPECT_GT(sy, 10.0); break;
        case Motion::OrbitClockwise: EXPECT_GT(turn, 0.0); break;
        case Motion::OrbitCounterclockwise: EXPECT_LT(turn, 0.0); break;
        case Motion::Pulse: EXPECT_EQ(sx + sy, 0.0); EXPECT_GT(sr, 1.0); break;
        case Motion::Still:
          EXPECT_NE(clip.spec.pan, Pan::None);
          EXPECT_EQ(sy, 0.0);
          if (clip.spec.pan == Pan::Left) EXPECT_GT(f4.x - f0.x - W * std::round((f4.x - f0.x) / W), 0.0);
          break;
      }
      // Objects stay inside the frame (a panning scene wraps instead).
      for (int t = 0; t < T && clip.spec.pan == Pan::None; ++t) {
        const auto& s = clip.trajectory[t][k];
        ASSERT_GE(s.x - s.radius, -1e-6);
        ASSERT_LE(s.x + s.radius, W + 1e-6);
        ASSERT_GE(s.y - s.radius, -1e-6);
        ASSERT_LE(s.y + s.radius, H + 1e-6);
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(World, RenderedObjectSitsWhereTheTrajectorySays) {
  ClipSpec spec;
  ObjectSpec o;
  o.shape = Shape::Square;
  o.color = 0;  // red
  o.size = Size::Large;
  o.motion = Motion::BounceRight;
  o.x0 = 0.3;
  o.y0 = 0.6;
  o.speed = 0.03;
  spec.objects.push_back(o);
  const int W = 40, H = 40;
  const Video v = render(spec, 6, W, H);
  const auto traj = simulate(spec, 6, W, H);
  for (int t = 0; t < 6; ++t) {
    double sx = 0, sy = 0;
    int n = 0;
    for (int y = 0; y < H; ++y) {
      for (int x = 0; x < W; ++x) {
        const uint8_t* p = v.frame(t) + (y * W + x) * 3;
        if (p[0] == 225 && p[1] == 40 && p[2] == 40) {
          sx += x + 0.5;
          sy += y + 0.5;
          ++n;
        }
      }
    }
    ASSERT_GT(n, 0);
    EXPECT_NEAR(sx / n, traj[t][0].x, 0.75);
    EXPECT_NEAR(sy / n, traj[t][0].y, 0.75);
  }
}

// The training loss weights object pixels by this footprint: it must cover every pixel an object
// touches (render minus the same scene without objects) and leave most of the frame out.
TEST(World, ObjectFootprintCoversTheObjectsAndLittleElse) {
  double covered_share = 0.0;
  int clips = 0;
  bool saw_pan = false;
  for (uint64_t seed = 0; seed < 60; ++seed) {
    const Clip clip = generate_clip(seed, 16, 48, 48);
    ClipSpec empty = clip.spec;
    empty.objects.clear();
    const Video bg = render(empty, 16, 48, 48);
    const auto fp = object_footprint(clip.spec, clip.trajectory, 48, 48, 1.0);
    ASSERT_EQ(fp.sizes(), (std::vector<int64_t>{16, 48, 48}));
    const float* f = fp.data_ptr<float>();
    for (size_t i = 0; i < bg.rgb.size(); ++i) {
      if (bg.rgb[i] != clip.video.rgb[i]) {
        ASSERT_EQ(f[i / 3], 1.0f) << "seed " << seed << ": object pixel " << i / 3 << " outside the footprint";
      }
    }
    covered_share += fp.mean().item<double>();
    ++clips;
    saw_pan = saw_pan || clip.spec.pan != Pan::None;
  }
  EXPECT_TRUE(saw_pan) << "no panning clip among the seeds: the wrap-around copies went untested";
  EXPECT_LT(covered_share / clips, 0.35);
  EXPECT_GT(covered_share / clips, 0.02);
  const Clip clip = generate_clip(3, 4, 32, 32);
  auto short_traj = clip.trajectory;
  short_traj[1].pop_back();
  EXPECT_THROW(object_footprint(clip.spec, short_traj, 32, 32, 1.0), ShapeError);
  EXPECT_THROW(object_footprint(clip.spec, clip.trajectory, 0, 32, 1.0), ParameterError);
}

TEST(World, AnyLengthStaysInMotion) {
  const Clip clip = generate_clip(5, 400, 24, 24);
  ASSERT_EQ(clip.video.frames, 400);
  // Energy-conserving laws: the last frames still move.
  const auto& a = clip.trajectory[398];
  const auto& b = clip.trajectory[399];
  double moved = 0;
  for (size_t k = 0; k < a.size(); ++k) moved += std::abs(a[k].x - b[k].x) + std::abs(a[k].y - b[k].y) + std::abs(a[k].radius - b[k].radius);
  EXPECT_GT(moved, 0.0);
}

TEST(World, CaptionGrammarRoundTrip) {
  const auto info = parse_caption("A Small RED circle bounces left to right, and a large yellow square falls and bounces "
                                  "on a dark blue checkered background.");
  ASSERT_TRUE(info);
  ASSERT_EQ(info->objects.size(), 2u);
  EXPECT_EQ(info->objects[0].size, Size::Small);
  EXPECT_EQ(object_colors()[info->objects[0].color].name, "red");
  EXPECT_EQ(info->objects[0].motion, Motion::BounceRight);
  EXPECT_EQ(info->objects[1].shape, Shape::Square);
  EXPECT_EQ(info->objects[1].motion, Motion::Fall);
  ASSERT_TRUE(info->background_color);
  EXPECT_EQ(background_colors()[*info->background_color].name, "dark blue");
  EXPECT_EQ(info->background, BackgroundKind::Checkered);
  EXPECT_FALSE(parse_caption("a cat playing piano"));
  // spec_for_caption keeps what the caption names.
  const ClipSpec spec = spec_for_caption(*info, 3);
  const auto again = parse_caption(caption(spec));
  ASSERT_TRUE(again);
  EXPECT_EQ(caption(spec), "a small red circle bounces left to right and a large yellow square falls and bounces on a "
                           "dark blue checkered background");
}

TEST(World, TensorRoundTripAndErrors) {
  const Clip clip = generate_clip(9, 4, 16, 16);
  const auto t = video_to_tensor(clip.video);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 4, 16, 16}));
  EXPECT_LE(t.max().item<float>(), 1.0f);
  EXPECT_GE(t.min().item<float>(), -1.0f);
  EXPECT_EQ(tensor_to_video(t).rgb, clip.video.rgb);
  EXPECT_THROW(tensor_to_video(torch::zeros({4, 2, 2})), ShapeError);
  EXPECT_THROW(render(sample_clip(1), 0, 16, 16), ParameterError);
  EXPECT_THROW(render(sample_clip(1), 4, 0, 16), ParameterError);
  WorldOptions bad;
  bad.max_objects = 4;
  EXPECT_THROW(sample_clip(1, bad), ParameterError);
}

TEST(Tokenizer, KnownUnknownPaddingDeterminism) {
  const Tokenizer tok;
  EXPECT_GT(tok.vocab_size(), 40);
  const auto ids = tok.encode("a small red circle bounces left to right", 12);
  ASSERT_EQ(ids.size(), 12u);
  EXPECT_EQ(ids[0], Tokenizer::kBos);
  for (int i = 1; i <= 8; ++i) EXPECT_GT(ids[i], Tokenizer::kBos) << i;
  for (int i = 9; i < 12; ++i) EXPECT_EQ(ids[i], Tokenizer::kPad);
  EXPECT_EQ(tok.decode(ids), "<bos> a small red circle bounces left to right");
  const auto unk = tok.encode("a purple elephant", 6);
  EXPECT_EQ(unk[3], Tokenizer::kUnk);
  EXPECT_EQ(tok.encode("A SMALL, red circle!", 8), tok.encode("a small red circle", 8));
  EXPECT_EQ(Tokenizer().words(), tok.words());
  EXPECT_EQ(tok.encode("a b c d e f g h", 4).size(), 4u);
  EXPECT_THROW(tok.encode("x", 1), ParameterError);
  // Every caption the world produces is fully known.
  for (uint64_t seed = 0; seed < 100; ++seed) {
    for (int64_t id : tok.encode(caption(sample_clip(seed)), 48)) EXPECT_NE(id, Tokenizer::kUnk);
  }
}

}  // namespace
}  // namespace longshot::data

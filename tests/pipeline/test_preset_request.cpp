// pipeline::apply_preset: what a method preset sets in a generation request (the CLI's --preset
// and the studio's preset menu both go through it).
#include <gtest/gtest.h>

#include "engine/attention/presets.h"
#include "engine/pipeline/preset_request.h"

using namespace longshot;

TEST(PresetRequest, SetsModeParamsAndSamplingFieldsItNames) {
  const auto p = attention::parse_preset(
      R"({"mode": "dfsattn", "params": {"keep_ratio": 0.25}, "dense_first_layers": 2, "block_size": 128,
          "sampler": "unipc", "steps": 40, "shift": 5.0})",
      "inline");
  pipeline::GenerationRequest r;
  r.guidance = 3.5;
  r.steps = 8;
  r.attention.dense_last_layers = 1;
  const auto applied = pipeline::apply_preset(p, r);
  EXPECT_EQ(r.attention.mode, "dfsattn");
  EXPECT_DOUBLE_EQ(r.attention.params.at("keep_ratio"), 0.25);
  EXPECT_EQ(r.attention.dense_first_layers, 2);
  EXPECT_EQ(r.attention.dense_last_layers, 1);  // not named: unchanged
  EXPECT_EQ(r.attention.block_size, 128);
  EXPECT_EQ(r.sampler, "unipc");
  EXPECT_EQ(r.steps, 40);
  EXPECT_DOUBLE_EQ(r.shift, 5.0);
  EXPECT_DOUBLE_EQ(r.guidance, 3.5);  // not named: unchanged
  EXPECT_TRUE(applied.steps);
  EXPECT_TRUE(applied.shift);
  EXPECT_FALSE(applied.guidance);
}

TEST(PresetRequest, EveryShippedPresetApplies) {
  const auto presets = attention::shipped_presets();
  ASSERT_FALSE(presets.empty());
  for (const auto& p : presets) {
    pipeline::GenerationRequest r;
    pipeline::apply_preset(p, r);
    EXPECT_EQ(r.attention.mode, p.mode) << p.name;
    if (p.steps) EXPECT_EQ(r.steps, *p.steps) << p.name;
  }
}

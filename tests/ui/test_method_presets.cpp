// The studio's preset menu reads the shipped presets through the engine's parser and describes
// each: every value a preset sets must appear in its read-out.
#include <gtest/gtest.h>

#include "engine/attention/presets.h"
#include "ui/method_presets.h"

namespace longshot::ui {
namespace {

TEST(MethodPresets, SettingsTextNamesEveryValue) {
  const auto presets = attention::shipped_presets();
  ASSERT_GE(presets.size(), 4u) << "assets/presets/*.json not found";
  for (const auto& p : presets) {
    SCOPED_TRACE(p.name);
    const std::string text = preset_settings_text(p);
    EXPECT_EQ(text.rfind("mode " + p.mode, 0), 0u) << text;
    for (const auto& [k, v] : p.params) EXPECT_NE(text.find(k + "="), std::string::npos) << k << " missing in " << text;
    if (p.block_size) EXPECT_NE(text.find("block " + std::to_string(*p.block_size)), std::string::npos) << text;
    if (p.steps) EXPECT_NE(text.find(std::to_string(*p.steps) + " steps"), std::string::npos) << text;
    if (!p.sampler.empty()) EXPECT_NE(text.find("sampler " + p.sampler), std::string::npos) << text;
    if (!p.model.empty()) EXPECT_NE(text.find("published for " + p.model), std::string::npos) << text;
  }
}

TEST(MethodPresets, SettingsTextOfAHandMadePreset) {
  attention::MethodPreset p;
  p.mode = "lvsa";
  p.params = {{"window_frames", 3}, {"rotate", 1}};
  p.dense_warmup_steps = 0;  // zeros are not worth a line
  p.dense_first_layers = 2;
  p.guidance = 5.0;
  p.shift = 3.0;
  EXPECT_EQ(preset_settings_text(p), "mode lvsa: rotate=1, window_frames=3\n2 dense first layers\nguidance 5, shift 3");
}

}  // namespace
}  // namespace longshot::ui

// Settings round trips through the flat map and JSON presets; malformed input never throws from
// settings, always names the field in presets.
#include <gtest/gtest.h>

#include "engine/common/error.h"
#include "ui/settings.h"

namespace lu = longshot::ui;

TEST(Settings, MapRoundTripKeepsEveryField) {
  lu::StudioSettings s;
  s.request.prompt = "a small red circle bounces, \"quoted\" = yes";
  s.request.negative_prompt = "blur";
  s.request.model = "tiny";
  s.request.frames = 17;
  s.request.width = 96;
  s.request.height = 48;
  s.request.steps = 7;
  s.request.guidance = 3.3;
  s.request.seed = 18446744073709551615ull;
  s.request.attention.mode = "lvsa";
  s.request.attention.params = {{"keep_ratio", 0.1}, {"window", 3}};
  s.request.attention.dense_warmup_steps = 2;
  s.request.inspect_query = 123;
  s.view.colormap = "ice";
  s.view.log_scale = false;
  s.view.panels = {{"Preview", true}, {"Compare", false}};
  s.add_recent("/a.json");
  s.add_recent("/b.json");
  s.add_recent("/a.json");
  ASSERT_EQ(s.recent_files, (std::vector<std::string>{"/a.json", "/b.json"}));

  std::vector<std::string> warnings;
  const auto back = lu::from_map(lu::to_map(s), &warnings);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(back.request.prompt, s.request.prompt);
  EXPECT_EQ(back.request.negative_prompt, "blur");
  EXPECT_EQ(back.request.model, "tiny");
  EXPECT_EQ(back.request.frames, 17);
  EXPECT_EQ(back.request.width, 96);
  EXPECT_EQ(back.request.height, 48);
  EXPECT_EQ(back.request.steps, 7);
  EXPECT_DOUBLE_EQ(back.request.guidance, 3.3);
  EXPECT_EQ(back.request.seed, s.request.seed);
  EXPECT_EQ(back.request.attention.mode, "lvsa");
  EXPECT_EQ(back.request.attention.params, s.request.attention.params);
  EXPECT_EQ(back.request.attention.dense_warmup_steps, 2);
  EXPECT_EQ(back.request.inspect_query, 123);
  EXPECT_EQ(back.view.colormap, "ice");
  EXPECT_FALSE(back.view.log_scale);
  EXPECT_EQ(back.view.panels, s.view.panels);
  EXPECT_EQ(back.recent_files, s.recent_files);
  EXPECT_EQ(lu::to_map(back), lu::to_map(s));
}

TEST(Settings, MalformedValuesKeepDefaultsWithWarnings) {
  lu::SettingsMap m = {{"request/frames", "twelve"}, {"request/steps", "9"}, {"view/log_scale", "maybe"},
                       {"request/seed", "-1"}, {"request/attention/params/keep_ratio", "x"}};
  std::vector<std::string> warnings;
  const auto s = lu::from_map(m, &warnings);
  EXPECT_EQ(s.request.frames, lu::StudioSettings{}.request.frames);
  EXPECT_EQ(s.request.steps, 9);
  EXPECT_TRUE(s.view.log_scale);
  EXPECT_EQ(s.request.seed, 42u);
  EXPECT_TRUE(s.request.attention.params.empty());
  ASSERT_EQ(warnings.size(), 4u);
  EXPECT_NE(warnings[0].find("request/frames"), std::string::npos);
}

TEST(Settings, PresetJsonRoundTripAndErrors) {
  longshot::pipeline::GenerationRequest r;
  r.prompt = "orbit";
  r.steps = 3;
  r.attention.mode = "radial";
  r.attention.params["decay"] = 0.25;
  r.attention.adapter = "none";
  r.attention.regime = "auto";  // the dock's motion regime and a table of the user's (issue 25)
  r.attention.calibration = "/data/my-table.json";
  const std::string json = lu::request_to_json(r);
  EXPECT_NE(json.find("\"attention/regime\": \"auto\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"steps\": 3"), std::string::npos) << json;  // typed, not "3"
  EXPECT_NE(json.find("\"prompt\": \"orbit\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"previews\": true"), std::string::npos) << json;
  const auto back = lu::request_from_json(json);
  EXPECT_EQ(back.prompt, "orbit");
  EXPECT_EQ(back.steps, 3);
  EXPECT_EQ(back.attention.mode, "radial");
  EXPECT_EQ(back.attention.params, r.attention.params);
  EXPECT_EQ(back.attention.adapter, "none");
  EXPECT_EQ(back.attention.regime, "auto");
  EXPECT_EQ(back.attention.calibration, "/data/my-table.json");
  try {
    lu::request_from_json(R"({"steps": "many"})");
    FAIL();
  } catch (const longshot::ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("steps"), std::string::npos);
  }
  EXPECT_THROW(lu::request_from_json(R"({"colour": 1})"), longshot::ParameterError);
  EXPECT_THROW(lu::request_from_json("{"), longshot::ParameterError);
  EXPECT_THROW(lu::request_from_json("[1]"), longshot::ParameterError);
}

// Issue 27, F2: a preset whose value nests 100,000 levels deep crashed Load preset (a recursive
// dump() of the value); now it is refused before parsing, and a structured field value by name.
TEST(Settings, DeepOrStructuredPresetValuesAreRefused) {
  const std::string deep = "{\"frames\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  try {
    lu::request_from_json(deep);
    FAIL();
  } catch (const longshot::ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("nests deeper"), std::string::npos) << e.what();
  }
  try {
    lu::request_from_json(R"({"frames": [[1, 2], {"a": 3}]})");
    FAIL();
  } catch (const longshot::ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("'frames' must be a string, number or boolean"), std::string::npos) << e.what();
  }
}

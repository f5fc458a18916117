// The recipe reader (an MP4's longshot_recipe tag: `generate --from`, the studio's drag and drop)
// against hostile JSON. fuzz_recipe found the first case: a field nested 100,000 levels deep
// overflowed the stack in the error message's recursive dump() (tests/fixtures/hardening/
// preset_deep_frames.json, replayed by fuzz/RecipeCorpus under ASan).
#include <gtest/gtest.h>

#include <string>

#include "engine/common/error.h"
#include "engine/pipeline/recipe.h"

using namespace longshot;

TEST(RecipeHardening, DeepFieldIsRefusedWithoutRecursion) {
  const std::string deep = "{\"frames\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  try {
    pipeline::request_from_recipe(deep);
    FAIL() << "a 100,000-deep recipe was accepted";
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("nests deeper than 8 levels"), std::string::npos) << e.what();
  }
  // A number that overflows a double: nlohmann quotes it whole; the message stays short.
  try {
    pipeline::request_from_recipe("{\"frames\":" + std::string(5000, '1') + "}");
    FAIL() << "an overflowing number was accepted";
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
    EXPECT_LT(std::string(e.what()).size(), 300u) << e.what();
  }
  // A field of the wrong type is named with a bounded rendering of its value.
  std::string wide = "{\"frames\":[1";
  for (int i = 0; i < 2000; ++i) wide += ",1";
  wide += "]}";
  try {
    pipeline::request_from_recipe(wide);
    FAIL() << "an array for 'frames' was accepted";
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("recipe field 'frames' is not an integer"), std::string::npos) << e.what();
    EXPECT_LT(std::string(e.what()).size(), 300u) << e.what();
  }
  // A prompt that is not UTF-8 is written (as U+FFFD) instead of failing the export.
  pipeline::GenerationRequest bad;
  bad.prompt = "a \xff ball";
  EXPECT_EQ(pipeline::request_from_recipe(pipeline::recipe_json(bad)).prompt, "a \xef\xbf\xbd ball");
  // What our own writer makes still reads back.
  pipeline::GenerationRequest r;
  r.prompt = "a red ball";
  r.attention.mode = "lvsa";
  EXPECT_EQ(pipeline::request_from_recipe(pipeline::recipe_json(r)).attention.mode, "lvsa");
}

// libFuzzer target: the recipe reader (pipeline::request_from_recipe: the JSON an MP4 carries in
// its longshot_recipe tag, read by `generate --from clip.mp4` and the studio's drag and drop). A
// recipe it accepts must survive our own writer: recipe_json of the request reads back equal in
// its main fields, and a written recipe reads back to the same parameters. Any exception but longshot::Error is a finding; so is a failed round trip (trap).
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/common/error.h"
#include "engine/pipeline/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longshot::pipeline;
  const std::string text(reinterpret_cast<const char*>(data), size);
  GenerationRequest request;
  try {
    request = request_from_recipe(text);
  } catch (const longshot::Error&) {
    return 0;
  }
  const GenerationRequest again = request_from_recipe(recipe_json(request));
  if (again.prompt != request.prompt || again.seed != request.seed || again.steps != request.steps ||
      again.attention.mode != request.attention.mode)
    __builtin_trap();
  // The writer records every parameter of a known mode, defaults included, so the params match from
  // the first written recipe on (not the input's, which may leave defaults out).
  const GenerationRequest third = request_from_recipe(recipe_json(again));
  if (third.attention.params != again.attention.params) __builtin_trap();
  return 0;
}

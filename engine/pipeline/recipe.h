// A job's recipe: everything needed to make the same video again (prompts, seed, model and its
// component files, sampler, steps, guidance, shift, size, attention mode and parameters, the
// Longshot version), as the JSON an MP4 carries in its `longshot_recipe` tag. Pipeline room: no
// UI; the file formats are io's.
#pragma once
#include <map>
#include <string>

#include "engine/pipeline/job.h"

namespace longshot::pipeline {

// The MP4 tag that holds the recipe JSON.
inline constexpr const char* kRecipeTag = "longshot_recipe";

// Longshot's version (the CMake project version).
const char* longshot_version();

// `resolved_model` / `config`: what the model resolved to (shown, not needed to re-run).
std::string recipe_json(const GenerationRequest& request, const std::string& resolved_model = "",
                        const std::string& config = "");
// Fills a request from recipe JSON; fields the recipe lacks keep their defaults. Throws
// ParameterError("from", ...) for malformed JSON or a field of the wrong type, naming the field.
GenerationRequest request_from_recipe(const std::string& json);

// The container tags an MP4 of this job gets: the recipe, plus title = prompt and a comment
// naming Longshot, so players and ffprobe show them.
std::map<std::string, std::string> recipe_tags(const GenerationRequest& request, const std::string& resolved_model = "",
                                               const std::string& config = "");
// The recipe an MP4 carries (read_mp4_metadata). Throws IoError naming the file when it has none.
GenerationRequest request_from_mp4(const std::string& path);

}  // namespace longshot::pipeline

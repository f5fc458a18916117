// Recipe JSON ⇄ GenerationRequest. Unknown keys are ignored (a newer Longshot may add some); a
// known key of the wrong type is an error naming it.
#include "engine/pipeline/recipe.h"

#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "engine/io/file_checks.h"
#if defined(LONGSHOT_WITH_FFMPEG)
#include "engine/io/mp4.h"
#endif

#ifndef LONGSHOT_VERSION
#define LONGSHOT_VERSION "unknown"
#endif

namespace longshot::pipeline {

using nlohmann::json;

const char* longshot_version() { return LONGSHOT_VERSION; }

std::string recipe_json(const GenerationRequest& r, const std::string& resolved_model, const std::string& config) {
  json j;
  j["longshot_version"] = longshot_version();
  j["prompt"] = r.prompt;
  j["negative_prompt"] = r.negative_prompt;
  j["seed"] = r.seed;
  j["model"] = r.model;
  if (!resolved_model.empty()) j["model_name"] = resolved_model;
  if (!config.empty()) j["config"] = config;
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"dit_file", &r.dit_file},
                                   {"text_encoder_file", &r.text_encoder_file},
                                   {"tokenizer_file", &r.tokenizer_file},
                                   {"vae_file", &r.vae_file},
                                   {"text_embeddings", &r.text_embeddings}})
    if (!value->empty()) j[key] = *value;
  j["sampler"] = r.sampler;
  j["schedule"] = r.schedule;
  j["steps"] = r.steps;
  j["guidance"] = r.guidance;
  j["shift"] = r.shift;
  j["frames"] = r.frames;
  j["width"] = r.width;
  j["height"] = r.height;
  j["fps"] = r.fps;
  const auto& a = r.attention;
  // Every parameter of the mode, defaults included: a later version's defaults cannot change
  // what the recipe re-runs.
  json params = json::object();
  attention::ParamValues values = a.params;
  try {
    values = attention::resolve_params(attention::find_policy(a.mode), a.params);
  } catch (const Error&) {
    // an unknown mode: record what was asked; re-running it names the fault
  }
  for (const auto& [k, v] : values) params[k] = v;
  j["attention"] = {{"mode", a.mode},
                    {"params", params},
                    {"dense_warmup_steps", a.dense_warmup_steps},
                    {"dense_first_layers", a.dense_first_layers},
                    {"dense_last_layers", a.dense_last_layers},
                    {"block_size", a.block_size},
                    {"adapter", a.adapter}};
  // A routed job's params above are already its regime's (pipeline/regime.h), so --from re-runs it
  // without the router or the table; the regime asked for is recorded, not read back.
  if (!a.regime.empty()) j["attention"]["regime"] = a.regime;
  // A prompt or path that is not UTF-8 (`--prompt $'\xff'`) made dump() throw after the whole
  // generation, at the export; such bytes are recorded as U+FFFD instead.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

template <typename T>
void read(const json& j, const char* key, T& out, const char* kind) {
  if (!j.contains(key)) return;
  const auto& v = j[key];
  bool ok = false;
  if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
  else if constexpr (std::is_floating_point_v<T>) ok = v.is_number();
  else ok = v.is_number_integer();
  if (!ok)
    throw ParameterError("from", std::string("recipe field '") + key + "' is not " + kind + ": " + io::json_brief(v));
  out = v.get<T>();
}

}  // namespace

GenerationRequest request_from_recipe(const std::string& text) {
  // A recipe nests 3 levels (attention.params); a deeper one is refused before parsing, so nothing
  // recurses on it (fuzz_recipe found a 100,000-deep field overflowing the stack in dump()).
  constexpr size_t kMaxDepth = 8;
  if (io::json_nesting_depth(text.data(), text.data() + text.size(), kMaxDepth) > kMaxDepth)
    throw ParameterError("from", "the recipe nests deeper than " + std::to_string(kMaxDepth) + " levels");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    // nlohmann quotes the offending token whole (a 5,000-digit number): the message keeps 160 chars.
    std::string why = e.what();
    if (why.size() > 160) why = why.substr(0, 160) + "…";
    throw ParameterError("from", "the recipe is not valid JSON (" + why + ")");
  }
  if (!j.is_object()) throw ParameterError("from", "the recipe is not a JSON object");
  GenerationRequest r;
  read(j, "prompt", r.prompt, "text");
  read(j, "negative_prompt", r.negative_prompt, "text");
  read(j, "seed", r.seed, "an integer");
  read(j, "model", r.model, "text");
  read(j, "dit_file", r.dit_file, "text");
  read(j, "text_encoder_file", r.text_encoder_file, "text");
  read(j, "tokenizer_file", r.tokenizer_file, "text");
  read(j, "vae_file", r.vae_file, "text");
  read(j, "text_embeddings", r.text_embeddings, "text");
  read(j, "sampler", r.sampler, "text");
  read(j, "schedule", r.schedule, "text");
  read(j, "steps", r.steps, "an integer");
  read(j, "guidance", r.guidance, "a number");
  read(j, "shift", r.shift, "a number");
  read(j, "frames", r.frames, "an integer");
  read(j, "width", r.width, "an integer");
  read(j, "height", r.height, "an integer");
  read(j, "fps", r.fps, "a number");
  if (j.contains("attention")) {
    const auto& a = j["attention"];
    if (!a.is_object()) throw ParameterError("from", "recipe field 'attention' is not an object");
    read(a, "mode", r.attention.mode, "text");
    read(a, "dense_warmup_steps", r.attention.dense_warmup_steps, "an integer");
    read(a, "dense_first_layers", r.attention.dense_first_layers, "an integer");
    read(a, "dense_last_layers", r.attention.dense_last_layers, "an integer");
    read(a, "block_size", r.attention.block_size, "an integer");
    read(a, "adapter", r.attention.adapter, "text");
    if (a.contains("params")) {
      if (!a["params"].is_object()) throw ParameterError("from", "recipe field 'attention.params' is not an object");
      for (auto it = a["params"].begin(); it != a["params"].end(); ++it) {
        if (!it.value().is_number()) throw ParameterError("from", "recipe parameter '" + it.key() + "' is not a number");
        r.attention.params[it.key()] = it.value().get<double>();
      }
    }
  }
  return r;
}

std::map<std::string, std::string> recipe_tags(const GenerationRequest& request, const std::string& resolved_model,
                                               const std::string& config) {
  // libav writes its own "encoder" tag, so Longshot names itself in the comment.
  return {{kRecipeTag, recipe_json(request, resolved_model, config)},
          {"title", request.prompt},
          {"comment", std::string("made by Longshot ") + longshot_version() +
                          "; 'longshot generate --from <this file>' re-runs its recipe (tag " + kRecipeTag + ")"}};
}

GenerationRequest request_from_mp4(const std::string& path) {
#if defined(LONGSHOT_WITH_FFMPEG)
  const auto tags = io::read_mp4_metadata(path);
  const auto it = tags.find(kRecipeTag);
  if (it == tags.end())
    throw IoError("'" + path + "' carries no Longshot recipe (no '" + std::string(kRecipeTag) + "' tag)");
  return request_from_recipe(it->second);
#else
  throw IoError("cannot read the recipe of '" + path + "': this build has no FFmpeg");
#endif
}

}  // namespace longshot::pipeline

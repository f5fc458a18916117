#include "ui/settings.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "engine/io/file_checks.h"

namespace longshot::ui {

namespace {
std::string fmt_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Every scalar field once, so to_map, from_map and the JSON preset cannot drift apart.
struct Field {
  const char* key;
  std::function<std::string(const StudioSettings&)> get;
  std::function<void(StudioSettings&, const std::string&)> set;  // throws std::exception on bad text
};

int to_int(const std::string& s) {
  size_t used = 0;
  const int v = std::stoi(s, &used);
  if (used != s.size()) throw std::invalid_argument("trailing text");
  return v;
}
double to_double(const std::string& s) {
  size_t used = 0;
  const double v = std::stod(s, &used);
  if (used != s.size()) throw std::invalid_argument("trailing text");
  return v;
}
bool to_bool(const std::string& s) {
  if (s == "true" || s == "1") return true;
  if (s == "false" || s == "0") return false;
  throw std::invalid_argument("not a boolean");
}

#define LS_STR(k, member) \
  Field { k, [](const StudioSettings& s) { return s.member; }, [](StudioSettings& s, const std::string& v) { s.member = v; } }
#define LS_INT(k, member)                                                             \
  Field {                                                                             \
    k, [](const StudioSettings& s) { return std::to_string(s.member); },              \
        [](StudioSettings& s, const std::string& v) { s.member = to_int(v); }         \
  }
#define LS_DBL(k, member)                                                     \
  Field {                                                                     \
    k, [](const StudioSettings& s) { return fmt_double(s.member); },          \
        [](StudioSettings& s, const std::string& v) { s.member = to_double(v); } \
  }
#define LS_BOOL(k, member)                                                         \
  Field {                                                                          \
    k, [](const StudioSettings& s) { return std::string(s.member ? "true" : "false"); }, \
        [](StudioSettings& s, const std::string& v) { s.member = to_bool(v); }     \
  }

const std::vector<Field>& fields() {
  static const std::vector<Field> all = {
      LS_STR("request/prompt", request.prompt),
      LS_STR("request/negative_prompt", request.negative_prompt),
      LS_STR("request/model", request.model),
      LS_INT("request/frames", request.frames),
      LS_INT("request/width", request.width),
      LS_INT("request/height", request.height),
      LS_INT("request/steps", request.steps),
      LS_DBL("request/guidance", request.guidance),
      LS_DBL("request/shift", request.shift),
      Field{"request/seed", [](const StudioSettings& s) { return std::to_string(s.request.seed); },
            [](StudioSettings& s, const std::string& v) {
              size_t used = 0;
              s.request.seed = std::stoull(v, &used);
              if (used != v.size() || v.find('-') != std::string::npos) throw std::invalid_argument("not a seed");
            }},
      LS_DBL("request/fps", request.fps),
      LS_STR("request/attention/mode", request.attention.mode),
      LS_INT("request/attention/dense_warmup_steps", request.attention.dense_warmup_steps),
      LS_STR("request/attention/adapter", request.attention.adapter),
      LS_STR("request/attention/regime", request.attention.regime),
      LS_STR("request/attention/calibration", request.attention.calibration),
      LS_INT("request/attention/dense_first_layers", request.attention.dense_first_layers),
      LS_INT("request/attention/dense_last_layers", request.attention.dense_last_layers),
      LS_BOOL("request/attention/riflex", request.attention.riflex),
      Field{"request/attention/block_size",
            [](const StudioSettings& s) { return std::to_string(s.request.attention.block_size); },
            [](StudioSettings& s, const std::string& v) { s.request.attention.block_size = to_int(v); }},
      LS_INT("request/inspect_layer", request.inspect_layer),
      LS_INT("request/inspect_head", request.inspect_head),
      Field{"request/inspect_query", [](const StudioSettings& s) { return std::to_string(s.request.inspect_query); },
            [](StudioSettings& s, const std::string& v) { s.request.inspect_query = to_int(v); }},
      LS_BOOL("request/previews", request.previews),
      LS_STR("view/colormap", view.colormap),
      LS_BOOL("view/log_scale", view.log_scale),
      LS_INT("view/heatmap_columns", view.heatmap_columns),
      LS_BOOL("view/show_blocks", view.show_blocks),
      LS_BOOL("view/loop", view.loop),
      LS_STR("view/compare_mode_a", view.compare_mode_a),
      LS_STR("view/compare_mode_b", view.compare_mode_b),
      LS_STR("files/model_dir", model_dir),
  };
  return all;
}
#undef LS_STR
#undef LS_INT
#undef LS_DBL
#undef LS_BOOL

constexpr const char* kParamPrefix = "request/attention/params/";
constexpr const char* kPanelPrefix = "view/panels/";
constexpr const char* kRecentPrefix = "files/recent/";

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

void StudioSettings::add_recent(const std::string& path) {
  recent_files.erase(std::remove(recent_files.begin(), recent_files.end(), path), recent_files.end());
  recent_files.insert(recent_files.begin(), path);
  if (recent_files.size() > kMaxRecent) recent_files.resize(kMaxRecent);
}

SettingsMap to_map(const StudioSettings& settings) {
  SettingsMap map;
  for (const auto& f : fields()) map[f.key] = f.get(settings);
  for (const auto& [k, v] : settings.request.attention.params) map[kParamPrefix + k] = fmt_double(v);
  for (const auto& [k, v] : settings.view.panels) map[kPanelPrefix + k] = v ? "true" : "false";
  for (size_t i = 0; i < settings.recent_files.size(); ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "%s%02zu", kRecentPrefix, i);
    map[key] = settings.recent_files[i];
  }
  return map;
}

StudioSettings from_map(const SettingsMap& map, std::vector<std::string>* warnings) {
  StudioSettings s;
  auto warn = [&](const std::string& key, const std::string& value) {
    if (warnings) warnings->push_back("settings: ignoring malformed value '" + value + "' of '" + key + "'");
  };
  for (const auto& f : fields()) {
    const auto it = map.find(f.key);
    if (it == map.end()) continue;
    StudioSettings backup = s;
    try {
      f.set(s, it->second);
    } catch (const std::exception&) {
      s = std::move(backup);
      warn(f.key, it->second);
    }
  }
  for (const auto& [key, value] : map) {
    try {
      if (starts_with(key, kParamPrefix)) {
        s.request.attention.params[key.substr(std::string(kParamPrefix).size())] = to_double(value);
      } else if (starts_with(key, kPanelPrefix)) {
        s.view.panels[key.substr(std::string(kPanelPrefix).size())] = to_bool(value);
      } else if (starts_with(key, kRecentPrefix) && !value.empty()) {
        s.recent_files.push_back(value);  // keys sort as 00, 01, ...: newest first
      }
    } catch (const std::exception&) {
      warn(key, value);
    }
  }
  if (s.recent_files.size() > StudioSettings::kMaxRecent) s.recent_files.resize(StudioSettings::kMaxRecent);
  return s;
}

std::string request_to_json(const pipeline::GenerationRequest& request) {
  StudioSettings s;
  s.request = request;
  nlohmann::json j = nlohmann::json::object();
  // Typed JSON: text fields stay strings, the rest become numbers and booleans.
  static const std::set<std::string> text_fields = {"prompt",           "negative_prompt",   "model",
                                                    "attention/mode",   "attention/adapter", "attention/regime",
                                                    "attention/calibration"};
  for (const auto& [key, value] : to_map(s)) {
    if (!starts_with(key, "request/") || starts_with(key, kParamPrefix)) continue;
    const std::string name = key.substr(8);
    if (text_fields.count(name)) j[name] = value;
    else if (value == "true" || value == "false") j[name] = value == "true";
    else if (name == "seed") j[name] = request.seed;
    else if (value.find_first_of(".eEn") == std::string::npos) j[name] = std::stoll(value);
    else j[name] = to_double(value);
  }
  j["attention/params"] = nlohmann::json::object();
  for (const auto& [k, v] : request.attention.params) j["attention/params"][k] = v;
  return j.dump(2);
}

pipeline::GenerationRequest request_from_json(const std::string& text) {
  // A preset is one flat object (plus attention/params): anything deeper is not one, and a deep
  // value must never reach a recursive dump().
  constexpr size_t kMaxDepth = 8;
  if (io::json_nesting_depth(text.data(), text.data() + text.size(), kMaxDepth) > kMaxDepth)
    throw ParameterError("preset", "nests deeper than " + std::to_string(kMaxDepth) + " levels; not a preset");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw ParameterError("preset", std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ParameterError("preset", "expected a JSON object");
  StudioSettings s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "attention/params") {
      if (!it->is_object()) throw ParameterError("preset", "'attention/params' must be an object");
      for (auto p = it->begin(); p != it->end(); ++p) {
        if (!p->is_number()) throw ParameterError("preset", "attention parameter '" + p.key() + "' must be a number");
        s.request.attention.params[p.key()] = p->get<double>();
      }
      continue;
    }
    const std::string key = "request/" + it.key();
    const auto f = std::find_if(fields().begin(), fields().end(), [&](const Field& x) { return key == x.key; });
    if (f == fields().end()) throw ParameterError("preset", "unknown field '" + it.key() + "'");
    if (it->is_structured())
      throw ParameterError("preset", "field '" + it.key() + "' must be a string, number or boolean, got " + io::json_brief(*it));
    const std::string value = it->is_string() ? it->get<std::string>() : it->dump();
    try {
      f->set(s, value);
    } catch (const std::exception&) {
      throw ParameterError("preset", "field '" + it.key() + "' has a malformed value '" + value + "'");
    }
  }
  return s.request;
}

}  // namespace longshot::ui

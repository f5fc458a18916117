// Method presets: parsing and lookup (see presets.h).
#include "engine/attention/presets.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/common/assets.h"
#include "engine/common/error.h"

namespace longshot::attention {

namespace fs = std::filesystem;

namespace {
[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw ParameterError("preset", origin + ": " + what);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ParameterError("preset", "cannot read '" + path.string() + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The first asset folder holding a presets/ folder ("" when none does).
std::string presets_dir() {
  for (const auto& dir : asset_dirs()) {
    const fs::path p = fs::path(dir) / "presets";
    std::error_code ec;
    if (fs::is_directory(p, ec)) return p.string();
  }
  return {};
}
}  // namespace

MethodPreset parse_preset(const std::string& text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(origin, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(origin, "expected a JSON object");
  MethodPreset p;
  auto str = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_string()) fail(origin, "'" + key + "' must be a string");
    return v.get<std::string>();
  };
  auto integer = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_number_integer()) fail(origin, "'" + key + "' must be an integer");
    const auto x = v.get<int64_t>();
    if (x < 0 || x > (int64_t(1) << 30)) fail(origin, "'" + key + "' is out of range");
    return x;
  };
  auto number = [&](const nlohmann::json& v, const std::string& key) {
    if (!v.is_number()) fail(origin, "'" + key + "' must be a number");
    return v.get<double>();
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key == "name") p.name = str(v, key);
    else if (key == "summary") p.summary = str(v, key);
    else if (key == "source") p.source = str(v, key);
    else if (key == "model") p.model = str(v, key);
    else if (key == "mode") p.mode = str(v, key);
    else if (key == "sampler") p.sampler = str(v, key);
    else if (key == "dense_warmup_steps") p.dense_warmup_steps = int(integer(v, key));
    else if (key == "dense_first_layers") p.dense_first_layers = int(integer(v, key));
    else if (key == "dense_last_layers") p.dense_last_layers = int(integer(v, key));
    else if (key == "block_size") p.block_size = integer(v, key);
    else if (key == "steps") p.steps = int(integer(v, key));
    else if (key == "frames") p.frames = int(integer(v, key));
    else if (key == "width") p.width = int(integer(v, key));
    else if (key == "height") p.height = int(integer(v, key));
    else if (key == "guidance") p.guidance = number(v, key);
    else if (key == "shift") p.shift = number(v, key);
    else if (key == "params") {
      if (!v.is_object()) fail(origin, "'params' must be an object");
      for (auto q = v.begin(); q != v.end(); ++q) p.params[q.key()] = number(q.value(), "params/" + q.key());
    } else {
      fail(origin, "unknown field '" + key + "'");
    }
  }
  if (p.mode.empty()) fail(origin, "'mode' is missing");
  try {
    resolve_params(find_policy(p.mode), p.params);
  } catch (const ParameterError& e) {
    fail(origin, e.what());
  }
  return p;
}

std::vector<MethodPreset> shipped_presets() {
  std::vector<MethodPreset> out;
  const std::string dir = presets_dir();
  if (dir.empty()) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
    MethodPreset p = parse_preset(read_text(entry.path()), entry.path().string());
    const std::string stem = entry.path().stem().string();
    if (!p.name.empty() && p.name != stem) fail(entry.path().string(), "'name' is '" + p.name + "', the file says '" + stem + "'");
    p.name = stem;
    p.path = entry.path().string();
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(), [](const MethodPreset& a, const MethodPreset& b) { return a.name < b.name; });
  return out;
}

MethodPreset find_preset(const std::string& name_or_path) {
  const bool looks_like_file = name_or_path.find('/') != std::string::npos ||
                               (name_or_path.size() > 5 && name_or_path.compare(name_or_path.size() - 5, 5, ".json") == 0);
  if (looks_like_file) {
    MethodPreset p = parse_preset(read_text(name_or_path), name_or_path);
    if (p.name.empty()) p.name = fs::path(name_or_path).stem().string();
    p.path = name_or_path;
    return p;
  }
  std::string known;
  for (auto& p : shipped_presets()) {
    if (p.name == name_or_path) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw ParameterError("preset", "unknown preset '" + name_or_path + "'; " +
                                     (known.empty() ? "no presets found (" + asset_search_text("presets") + ")"
                                                    : "shipped: " + known));
}

}  // namespace longshot::attention

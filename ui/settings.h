// The studio's persistent settings (last session's generation parameters, view options, recent
// files) as a flat string map: the Qt shell stores it in QSettings, presets store the request part
// as JSON. Pure: no Qt, no GL.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/pipeline/job.h"

namespace longshot::ui {

struct ViewSettings {
  std::string colormap = "ember";
  bool log_scale = true;
  int heatmap_columns = 4;
  bool show_blocks = true;     // Hilbert view: tint cells by mask block
  bool loop = true;            // Preview
  std::string compare_mode_a = "dense";
  std::string compare_mode_b = "lvsa";
  std::map<std::string, bool> panels;  // panel title → visible
};

struct StudioSettings {
  pipeline::GenerationRequest request;  // the last session's parameters
  ViewSettings view;
  std::string model_dir;                 // File ▸ Open model folder
  std::vector<std::string> recent_files;  // newest first, at most kMaxRecent
  static constexpr size_t kMaxRecent = 8;

  void add_recent(const std::string& path);
};

using SettingsMap = std::map<std::string, std::string>;

// Keys are "section/name" ("request/prompt", "request/attention/params/keep_ratio", "view/colormap").
SettingsMap to_map(const StudioSettings& settings);
// Missing keys keep their defaults; a malformed value keeps its default and adds a warning naming
// the key (settings files outlive versions: never throw on them).
StudioSettings from_map(const SettingsMap& map, std::vector<std::string>* warnings = nullptr);

// A preset: the generation request as JSON text. Loading throws ParameterError("preset", ...)
// naming the bad field.
std::string request_to_json(const pipeline::GenerationRequest& request);
pipeline::GenerationRequest request_from_json(const std::string& text);

}  // namespace longshot::ui

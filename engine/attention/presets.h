// Method presets: one paper's published setting (attention mode and parameters, dense schedule,
// block, sampler, steps, guidance, shift) as a JSON file in assets/presets/, chosen with
// `--preset NAME` (CLI) or the studio's preset menu. Attention room: plain values only — the CLI
// and the studio copy them into their request; nothing here knows the pipeline.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "engine/attention/mask_policy.h"

namespace longshot::attention {

struct MethodPreset {
  std::string name;     // the file's stem: dynamicrad-wan14b, lvsa-wan, ...
  std::string summary;  // one line for `longshot --help`
  std::string source;   // the authors' script and lines the values come from
  std::string model;    // the model the setting was published for (informational)
  std::string mode;     // a registered mode (validated with its params on load)
  ParamValues params;
  std::optional<int> dense_warmup_steps, dense_first_layers, dense_last_layers;
  std::optional<int64_t> block_size;
  std::optional<int> steps, frames, width, height;
  std::optional<double> guidance, shift;
  std::string sampler;  // "" = the model's default
  std::string path;     // the file it came from
};

// JSON text → preset. Throws ParameterError("preset", ...) naming `origin` and the bad field
// (unknown key, wrong type, unknown mode or parameter).
MethodPreset parse_preset(const std::string& json_text, const std::string& origin);
// Every shipped preset (<asset dir>/presets/*.json of the first asset folder that has them),
// sorted by name. Throws as parse_preset for a broken file.
std::vector<MethodPreset> shipped_presets();
// A shipped preset by name, or a .json file by path. Throws ParameterError("preset", ...) that
// lists the shipped names when neither exists.
MethodPreset find_preset(const std::string& name_or_path);

}  // namespace longshot::attention

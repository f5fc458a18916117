// `longshot models`: the registered model names and every model folder or checkpoint on the model
// search path (or the paths given), each with its layout, size on disk, detected DiT config and
// what it lacks. The reading is model::inspect_model's; this file only prints.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli/command.h"
#include "engine/model/dit_config.h"
#include "engine/model/model_source.h"

namespace longshot::cli {
namespace {

const char* kModelsUsage =
    "Usage: longshot models [PATH ...]\n"
    "\n"
    "Lists the registered model names, then every model folder and .safetensors checkpoint in the\n"
    "model search path's folders — $LONGSHOT_MODELS (colon-separated), then\n"
    "$XDG_DATA_HOME/longshot/models (default ~/.local/share/longshot/models) — or only the PATHs\n"
    "given: name, layout (diffusers, wan2.1-release, checkpoint), size on disk, the DiT config read\n"
    "from its weights, and the components it is missing. `longshot generate --model NAME` finds a\n"
    "folder listed here by its name. Layouts and files: docs/models.md.\n"
    "Exit codes: 0 ok (also when some entry is unusable: it is listed with why), 2 bad usage.";

std::string human_size(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string config_text(const model::DiTConfig& c) {
  return c.name + " (dim " + std::to_string(c.dim) + ", " + std::to_string(c.num_layers) + " layers, " +
         std::to_string(c.num_heads) + " heads, text_dim " + std::to_string(c.text_dim) + ")";
}

void print_found(const model::FoundModel& f) {
  std::printf("%s\n", f.model.name.c_str());
  std::printf("  path     %s\n", f.path.c_str());
  if (!f.error.empty()) {
    std::printf("  unusable %s\n", f.error.c_str());
    return;
  }
  const auto& m = f.model;
  std::printf("  layout   %s\n", model::to_string(m.layout));
  std::printf("  size     %s\n", human_size(m.bytes_on_disk).c_str());
  if (!m.dit_weights.empty()) std::printf("  DiT      %s\n", config_text(m.config).c_str());
  if (m.missing.empty()) {
    std::printf("  missing  nothing\n");
  } else {
    for (size_t i = 0; i < m.missing.size(); ++i)
      std::printf("  %s %s\n", i == 0 ? "missing " : "        ", m.missing[i].c_str());
  }
}

int run_models(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a.rfind("--", 0) == 0) {
      std::cerr << "longshot models: unknown flag '" << a << "'\n" << kModelsUsage << "\n";
      return 2;
    }
  }
  if (!args.empty()) {
    for (const auto& a : args) {
      model::FoundModel f;
      f.path = parse_path("path", a);
      try {
        f.model = model::inspect_model(f.path);
      } catch (const std::exception& e) {
        f.error = e.what();
        f.model.name = a;
      }
      print_found(f);
    }
    return 0;
  }
  std::printf("Registered models (use by name):\n");
  for (const auto& c : model::registered_configs()) std::printf("  %-26s %s\n", c.name.c_str(), c.summary.c_str());
  std::printf("\nModel search path:\n");
  for (const auto& dir : model::model_search_path()) {
    std::error_code ec;
    const bool exists = std::filesystem::is_directory(dir, ec);
    std::printf("  %s%s\n", dir.c_str(), exists ? "" : "  (does not exist)");
  }
  const auto found = model::find_models();
  std::printf("\n%zu model%s found on the search path%s\n", found.size(), found.size() == 1 ? "" : "s",
              found.empty() ? "." : ":");
  for (const auto& f : found) {
    std::printf("\n");
    print_found(f);
  }
  return 0;
}

}  // namespace

Command models_command() {
  return {"models", "list the model names and the model folders on the search path (layout, size, config, missing parts)",
          kModelsUsage, run_models};
}

}  // namespace longshot::cli

#include "ui/method_presets.h"

#include <sstream>

namespace longshot::ui {

std::string preset_settings_text(const attention::MethodPreset& p) {
  std::ostringstream s;
  s << "mode " << p.mode;
  const char* sep = ": ";
  for (const auto& [k, v] : p.params) {
    s << sep << k << "=" << v;
    sep = ", ";
  }
  std::string dense;
  auto add = [&](const std::string& part) { dense += (dense.empty() ? "" : ", ") + part; };
  // Zeros are left out: the papers' dense steps and layers are the mode's own parameters.
  if (p.dense_warmup_steps.value_or(0) > 0) add(std::to_string(*p.dense_warmup_steps) + " dense warm-up steps");
  if (p.dense_first_layers.value_or(0) > 0) add(std::to_string(*p.dense_first_layers) + " dense first layers");
  if (p.dense_last_layers.value_or(0) > 0) add(std::to_string(*p.dense_last_layers) + " dense last layers");
  if (p.block_size) add("block " + std::to_string(*p.block_size));
  if (!dense.empty()) s << "\n" << dense;
  std::ostringstream run;
  if (!p.sampler.empty()) run << "sampler " << p.sampler;
  if (p.steps) run << (run.tellp() > 0 ? ", " : "") << *p.steps << " steps";
  if (p.guidance) run << (run.tellp() > 0 ? ", " : "") << "guidance " << *p.guidance;
  if (p.shift) run << (run.tellp() > 0 ? ", " : "") << "shift " << *p.shift;
  if (run.tellp() > 0) s << "\n" << run.str();
  if (!p.model.empty()) s << "\npublished for " << p.model;
  return s.str();
}

}  // namespace longshot::ui

// The attention-method presets (engine/attention/presets.h: one paper's published setting each)
// as the studio's preset menu describes them: what a preset sets, in a few lines. Pure: no Qt, no
// GL; the parsing is the engine's (attention::shipped_presets), and applying one to a request is
// pipeline::apply_preset (engine/pipeline/preset_request.h), the function `--preset` uses.
#pragma once
#include <string>

#include "engine/attention/presets.h"

namespace longshot::ui {

// "mode lvsa: window_frames=3, ...\n12 dense steps, ...\nsampler unipc, 50 steps, ...": the
// values the preset sets, one group a line (for the dock's read-out under the preset menu).
std::string preset_settings_text(const attention::MethodPreset& preset);

}  // namespace longshot::ui

// A method preset (assets/presets/*.json, engine/attention/presets) applied to a generation
// request: the one place that says which request fields a preset sets, used by the CLI's
// `--preset` and the studio's preset menu alike. Pipeline room: no UI, no flag parsing.
#pragma once

#include "engine/attention/presets.h"
#include "engine/pipeline/job.h"

namespace longshot::pipeline {

// Which of the fields with model defaults the preset set (callers then keep them over the
// model's defaults).
struct PresetApplied {
  bool steps = false;
  bool guidance = false;
  bool shift = false;
};

// Sets the attention mode and parameters, the dense warm-up / first / last layers and block size
// when the preset names them, and the sampler, steps, guidance and shift it names; leaves every
// other field as it was.
PresetApplied apply_preset(const attention::MethodPreset& preset, GenerationRequest& request);

}  // namespace longshot::pipeline

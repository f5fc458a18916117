#include "engine/pipeline/preset_request.h"

namespace longshot::pipeline {

PresetApplied apply_preset(const attention::MethodPreset& p, GenerationRequest& req) {
  PresetApplied applied;
  req.attention.mode = p.mode;
  req.attention.params = p.params;
  if (p.dense_warmup_steps) req.attention.dense_warmup_steps = *p.dense_warmup_steps;
  if (p.dense_first_layers) req.attention.dense_first_layers = *p.dense_first_layers;
  if (p.dense_last_layers) req.attention.dense_last_layers = *p.dense_last_layers;
  if (p.block_size) req.attention.block_size = *p.block_size;
  if (!p.sampler.empty()) req.sampler = p.sampler;
  if (p.steps) req.steps = *p.steps, applied.steps = true;
  if (p.guidance) req.guidance = *p.guidance, applied.guidance = true;
  if (p.shift) req.shift = *p.shift, applied.shift = true;
  return applied;
}

}  // namespace longshot::pipeline

// What a generation job asks for. Plain data: the CLI fills it from flags, the studio from its
// dock, presets from JSON. Validation lives in the pipeline (validate_request).
#pragma once
#include <cstdint>
#include <string>

#include "engine/attention/mask_policy.h"

namespace longshot::pipeline {

struct AttentionSettings {
  std::string mode = "dense";            // a registered policy name
  attention::ParamValues params;         // overrides of the mode's defaults
  int dense_warmup_steps = 0;            // first steps run dense
  int dense_first_layers = 0;            // first layers run dense
  int dense_last_layers = 0;             // last layers run dense
  bool riflex = false;                   // RIFLEx temporal RoPE past the model's reference horizon
  int64_t block_size = 128;
  // Mask-aware adapter for the sparse layers (model/mask_adapter.h): "auto" = the one the model
  // ships for this mode, if any; "none"; or a file (used whatever the mode).
  std::string adapter = "auto";
  // Motion regime (pipeline/regime.h): "" = the params as given; "auto" = the semantic motion
  // router picks it from the prompt; a name (static, slow, fast) = that regime. Its calibrated
  // parameters come from `calibration` (a lookup table; "" = the model's shipped one), the router
  // from `router` ("" = the model's shipped one); `params` above still override them.
  std::string regime;
  std::string calibration;
  std::string router;
};

// Which attention the views inspect: layer, head and query token (raster index; −1 = centre).
struct InspectTarget {
  int layer = 0;
  int head = 0;
  int64_t query = -1;
};

struct GenerationRequest {
  std::string prompt;
  std::string negative_prompt;
  std::string model = "builtin";   // config name (tiny, longshot-builtin, wan2.1-t2v-1.3b, ...), a model
                                   // folder or file, or a name on the model search path (model_source.h)
  // Component files (model::ModelSpec): replace the folder's, or with model "" form a split model.
  std::string dit_file, text_encoder_file, tokenizer_file, vae_file;
  int frames = 32;                 // video frames
  int width = 64;
  int height = 64;
  // Defaults: the built-in model's (docs/builtin-model.md); the studio applies another model's own
  // defaults (DiTConfig::default_*) when the user picks it.
  int steps = 20;
  double guidance = 3.0;
  double shift = 3.0;              // flow-matching timestep shift
  std::string sampler;             // sampler::make_sampler name (unipc, euler, dpm++2m); "" = the model's default
  std::string schedule = "auto";   // the sampler's σ grid: auto, wan, diffusers (docs/sampling.md)
  uint64_t seed = 42;
  double fps = 16.0;
  AttentionSettings attention;
  // Which attention the studio wants to see each step.
  int inspect_layer = 0;
  int inspect_head = 0;
  int64_t inspect_query = -1;      // raster token index; -1 = centre token of the middle frame
  bool previews = true;            // x0 previews and heatmaps each step
  // Additions by the engine (issue 5):
  std::string text_embeddings;     // safetensors with precomputed 'context' [L, text_dim] (Wan configs)
  std::string device = "auto";     // auto (CUDA when present), cpu, cuda
  std::string precision = "native";  // the DiT's linear layers: native (the weights' dtype) or fp8 (Hopper; model/projections.h)
  std::string residual = "fp32";     // the DiT's residual stream: fp32 (Wan's) or bf16 (diffusers'; model/projections.h)
  bool record_masks = false;       // StepFinished::layer_masks carries every layer's mask (traces)
  bool measure_recall = true;      // recall estimate of the inspected layer each step (costs a QK pass)
  // Memory plan (issue 20): the text encoder is released once the prompts are encoded, unless kept
  // for the next job (saves its load time, costs its memory during sampling).
  bool keep_text_encoder = false;
  // Block swap (model/block_store.h): the DiT's blocks stay in pinned host memory and reach the
  // GPU one block ahead on a side stream; same output, less GPU memory. On the CPU nothing moves.
  bool offload = false;
  // Cap on the CUDA caching allocator for the job, bytes (--max-gpu-memory 24G); 0 = no cap.
  // Past it the job fails with CUDA's out-of-memory error, as on a card that size.
  int64_t max_gpu_memory = 0;
  // CUDA graphs (--cuda-graphs; model/graph_forward.h): each forward whose shapes, settings and
  // masks were seen before replays a captured graph. Static modes only; the rest run eagerly with
  // one log line saying why. Needs a CUDA device (a ParameterError otherwise).
  bool cuda_graphs = false;
};

}  // namespace longshot::pipeline

// Typed events a Generator publishes from its worker thread. The UI drains them once per frame;
// big payloads are shared immutable buffers (shared_ptr<const T>), never copied per frame.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "engine/attention/block_mask.h"
#include "engine/io/video.h"
#include "engine/pipeline/job.h"

namespace longshot::pipeline {

// Attention of one query token over all key tokens, laid out on the token grid (T×H×W),
// downsampled when the grid is large. Values are softmax probabilities (sum ≤ 1 after pooling).
struct AttentionHeatmap {
  int layer = 0, head = 0;
  int64_t query_token = 0;           // raster index in the full grid
  attention::TokenGrid grid;         // the (possibly downsampled) grid of `values`
  attention::TokenGrid source_grid;  // the model's token grid
  std::vector<float> values;         // grid.size() entries, raster order
};
using HeatmapPtr = std::shared_ptr<const AttentionHeatmap>;

struct JobStarted {
  uint64_t job_id = 0;
  GenerationRequest request;
  attention::TokenGrid grid;  // latent token grid of this job
  int num_layers = 0, num_heads = 0;
  std::string adapter;        // mask adapter file the first steps' sparse layers use ("" = none)
  std::string routing;        // what the motion regime choice did (RegimeChoice::summary), "" = none asked
  std::string model_name;     // the resolved model (model::ResolvedModel::name) and its DiT config
  std::string config_name;
};

struct StepFinished {
  uint64_t job_id = 0;
  int step = 0, num_steps = 0;
  std::string mode;                    // the mode this step ran with
  attention::ParamValues mode_params;  // and its parameters
  bool mode_changed = false;           // differs from the previous step
  bool dense_step = false;             // a dense warm-up step
  double step_ms = 0, attention_ms = 0, mask_ms = 0;
  // Per (layer, head) block sparsity, layer-major: num_layers * num_heads entries.
  std::vector<float> sparsity;
  double mean_sparsity = 0;
  double recall_estimate = -1;         // share of dense attention mass kept; −1 if not measured
  HeatmapPtr heatmap;                  // for the inspected layer/head/query (may be null)
  attention::BlockMaskPtr mask;        // of the inspected layer (may be null)
  bool mask_from_cache = false;
  int mask_layer = 0, mask_head = 0;
  VideoPtr preview;                    // x0 prediction decoded to frames (may be null)
  // Additions by the engine (issue 5):
  double eta_ms = 0;                   // remaining time estimated from the mean step time so far
  // Every layer's mask of the conditional pass when request.record_masks (null = dense layer).
  std::vector<attention::BlockMaskPtr> layer_masks;
};

struct FramesDecoded {
  uint64_t job_id = 0;
  VideoPtr video;
};

struct JobFinished {
  uint64_t job_id = 0;
  double total_ms = 0, attention_ms = 0;
  double mean_sparsity = 0;
  VideoPtr video;
  // Peak CUDA memory the caching allocator handed out during the job (bytes); −1 on the CPU.
  int64_t peak_memory_bytes = -1;
  double encode_ms = 0, decode_ms = 0;  // text encoding and final decoding, inside total_ms
};

struct JobFailed {
  uint64_t job_id = 0;
  std::string message;
};

struct JobCancelled {
  uint64_t job_id = 0;
  int completed_steps = 0;
};

using Event = std::variant<JobStarted, StepFinished, FramesDecoded, JobFinished, JobFailed, JobCancelled>;

}  // namespace longshot::pipeline

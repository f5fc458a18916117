// One generation job, run synchronously on the calling thread: the Generator's worker calls it,
// tests and the benchmark may too. Pipeline room: model + sampler + attention, no Qt, no GL.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "engine/model/conditioning.h"
#include "engine/model/dit.h"
#include "engine/model/model_source.h"
#include "engine/pipeline/events.h"
#include "engine/pipeline/job.h"

namespace longshot::pipeline {

// Throws ParameterError naming the first invalid field (sizes, steps, guidance, mode, params...).
void validate_request(const GenerationRequest& request);

// Whether a job's device ("cuda", or "auto" with a GPU visible) is the GPU; ParameterError("device")
// when "cuda" is asked for and LibTorch sees none. The one place "auto" resolves.
bool runs_on_cuda(const std::string& device);

// Latent shape [C, T, H, W] the request asks of its model; throws ParameterError naming
// frames/width/height when they do not fit the model's VAE strides and patch.
std::vector<int64_t> latent_shape(const GenerationRequest& request, const model::DiTConfig& config);

// The model a request names (model_source.h: the one resolution), with precomputed text
// embeddings standing in for a missing text encoder and tokenizer.
model::ModelSpec model_spec(const GenerationRequest& request);
model::ResolvedModel resolve_request_model(const GenerationRequest& request);

// The text encoder of a resolved model on `device` in `dtype`: `embeddings` (precomputed) when
// given, else its umT5 (a Wan model's files), else the built-in models' own (model::make_text_encoder).
// Generation, the Q/K/V capture and router training all build theirs here.
std::unique_ptr<model::TextEncoder> model_text_encoder(const model::ResolvedModel& resolved, const std::string& embeddings,
                                                       torch::Device device, torch::ScalarType dtype);

// A model kept loaded between jobs with the same resolved model, seed and device, with the mask
// adapters its jobs have loaded (by file), and the text encoder when a job asked to keep it.
struct ModelCache {
  std::string key;
  model::WanDiT model{nullptr};
  std::map<std::string, std::shared_ptr<const model::MaskAdapter>> adapters;
  std::shared_ptr<model::TextEncoder> text_encoder;
  std::string text_key;
};

struct JobContext {
  uint64_t job_id = 0;
  std::function<void(Event)> publish;
  const std::atomic<bool>* cancel = nullptr;
  // Returns new attention settings when someone changed them since the last call.
  std::function<std::optional<AttentionSettings>()> take_settings;
  // Returns a new inspect target when someone changed it since the last call.
  std::function<std::optional<InspectTarget>()> take_inspect;
  ModelCache* cache = nullptr;
  // Replaces the seeded noise when defined ([1, C, T, H, W], float): parity tests feed another
  // implementation's noise through the whole pipeline.
  torch::Tensor initial_noise;
};

// Publishes JobStarted, StepFinished per step, FramesDecoded and JobFinished; JobCancelled when
// ctx.cancel is set (checked before every layer); JobFailed with the message on any exception,
// running out of GPU or host memory in any stage told as such (job_failure.h). Never throws.
void run_job(const GenerationRequest& request, JobContext& ctx);

// Softmax over the grid (raster order) → at most max_side cells per axis, summing pooled cells.
AttentionHeatmap make_heatmap(const torch::Tensor& probs, const attention::TokenGrid& grid, int layer, int head,
                              int64_t query, int64_t max_side = 32);

}  // namespace longshot::pipeline

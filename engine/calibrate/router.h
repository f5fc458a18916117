// Semantic motion router (DynamicRad's "lightweight projection module"): a linear softmax layer
// from a prompt's pooled text embedding to a motion regime (static / slow / fast), trained on
// labelled prompts, with an exact per-token explanation of each choice. Calibration room: knows
// embeddings as tensors and the procedural world's captions (for labels); no model, no pipeline.
//
// Sections: [labels] the world's captions → regimes · [router] train, route, explain · [file].
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "engine/data/world.h"

namespace longshot::calibrate {

// ---- [labels] -----------------------------------------------------------------------------------

// The regime of a caption of the built-in world, from the motions it names (docs/calibration.md):
// "static" when nothing moves across the screen (every object grows and shrinks in place, no camera
// pan), "fast" when any object translates (bounces, falls, orbits: 0.012–0.04 frame per frame),
// "slow" when the camera pans over still objects (the scene slides 0.008–0.02 per frame).
std::string world_regime(const data::CaptionInfo& info);

struct LabelledPrompt {
  std::string prompt;
  std::string regime;
};
// `per_regime` captions of each regime drawn from the world's sampler (seeded: the same seed gives
// the same list), static and slow ones by rejection since the sampler makes them rarely. Captions
// repeat rarely; a held-out set uses another seed.
std::vector<LabelledPrompt> world_prompts(uint64_t seed, int per_regime);

// Labelled prompts for a model outside the built-in world (a Wan model: assets/wan-motion-prompts.tsv,
// written by us): one "regime<TAB>prompt" per line; blank lines and lines starting with '#' skipped.
// Throws IoError naming the file (and the line) when it is unreadable, a line is not of that shape,
// or it holds no prompt; the regimes are checked by train_router.
std::vector<LabelledPrompt> read_labelled_prompts(const std::string& path);

// ---- [router] -----------------------------------------------------------------------------------

// [L, D] token embeddings → [D]: the mean of the rows that are not all zero (padding rows of both
// text encoders are zeroed). Throws ShapeError for another rank, or when every row is zero.
torch::Tensor pool_embedding(const torch::Tensor& tokens);

struct RouterTrainOptions {
  int epochs = 400;           // full-batch gradient steps
  double learning_rate = 0.5;
  double l2 = 1e-3;           // weight decay on W (not on the bias)
};

struct MotionRouter {
  std::string model;                  // the model whose text encoder it was trained on
  std::vector<std::string> regimes;   // class order
  int64_t dim = 0;                    // pooled embedding width
  std::vector<double> mean, inv_std;  // per-feature standardisation [D]
  std::vector<double> weight;         // [R × D], row-major
  std::vector<double> bias;           // [R]
  // What the training saw (written into the file, shown by `calibrate --train-router`).
  int examples = 0;
  double train_accuracy = 0.0;
  RouterTrainOptions options;
};

// Softmax regression on the standardised pooled embeddings, zero-initialised, full-batch gradient
// descent in double: deterministic on every machine and thread count. `embeddings` are [L, D]
// token embeddings (pooled here); `labels` name regimes of `regimes`. Throws ParameterError for an
// empty or mismatched set, an unknown label, or a regime with no example.
MotionRouter train_router(const std::vector<torch::Tensor>& embeddings, const std::vector<std::string>& labels,
                          const std::vector<std::string>& regimes, const std::string& model,
                          const RouterTrainOptions& options = {});

struct TokenShare {
  int64_t position = 0;  // row of the token embedding
  std::string token;     // its text when the caller named the tokens, else ""
  double logit = 0.0;    // its share of (chosen − runner-up) logit
};

struct RouteDecision {
  std::string regime;
  double confidence = 0.0;                                  // softmax probability of `regime`
  std::vector<std::pair<std::string, double>> probabilities;  // every regime, router order
  std::vector<TokenShare> top_tokens;                       // the tokens that pushed most towards it
  std::string reason;                                       // one line saying all of the above
};

// The regime of a prompt from its [L, D] token embeddings. Because the router is linear and the
// pooling a mean, the margin of the chosen regime over the runner-up splits exactly into one share
// per token; the three largest are named (with `token_names[i]` for row i when given). Throws
// ShapeError when D differs from the router's.
RouteDecision route(const MotionRouter& router, const torch::Tensor& tokens,
                    const std::vector<std::string>& token_names = {});

// Share of `labels` the router gets right.
double router_accuracy(const MotionRouter& router, const std::vector<torch::Tensor>& embeddings,
                       const std::vector<std::string>& labels);

// ---- [file] -------------------------------------------------------------------------------------

// JSON "longshot-router" version 1. write: IoError when unwritable. read: IoError naming the file
// when it is missing, not JSON, of another format or version, or has fields of the wrong size or
// type (non-finite numbers included).
void write_router(const MotionRouter& router, const std::string& path);
MotionRouter read_router(const std::string& path);

}  // namespace longshot::calibrate

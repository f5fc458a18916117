// A job's motion regime (issue 25, DynamicRad's router + lookup table): `regime auto` asks the
// semantic motion router (calibrate/router.h) which regime the prompt's embedding implies, a named
// regime overrides it; the regime's calibrated parameters (calibrate/calibration.h's table) then
// become the mode's parameters, under the user's own --param values. Pipeline room: no UI.
#pragma once
#include <cstdint>
#include <string>

#include <torch/types.h>

#include "engine/attention/mask_policy.h"
#include "engine/calibrate/router.h"
#include "engine/pipeline/job.h"

namespace longshot::pipeline {

// Shipped files, found like the built-in weights (engine/common/assets.h): "<model>-router.json"
// and "<model>-<mode>-calibration.json"; "" when absent.
std::string shipped_router_path(const std::string& model_name);
std::string shipped_table_path(const std::string& model_name, const std::string& mode);

struct RegimeChoice {
  std::string requested;           // "auto" or a regime name
  std::string regime;              // the regime applied; "" when auto fell back to the defaults
  std::string router_file, table_file;
  int64_t grid_frames = 0;         // the job's token-grid frames, which pick the table's horizon
  int64_t horizon_frames = 0;      // the frames the applied horizon was calibrated at (0: a one-length table)
  std::string horizon_geometry;    // and its geometry (TableHorizon::geometry_text; "" when the file does not say)
  calibrate::RouteDecision decision;  // filled when the router ran
  double route_ms = 0.0;           // pooling + projection + explanation
  std::string warning;             // set when auto fell back (a file missing), or a router of another model
  attention::ParamValues params;   // what the mode runs with: the regime's, then the user's overrides
  std::string mode;                // the mode the table was read for
  attention::ParamValues calibrated;  // the regime's own values from the table (empty: none applied)
  // One line for the CLI summary, the studio and the MP4's tags: "fast (auto, router …: why), parameters
  // from …" or "auto fell back to the mode's defaults: why".
  std::string summary() const;
};

// Throws ParameterError("regime", ...) for a regime with the dense mode, a named regime without a
// table or missing from it, a table of another mode; IoError for a corrupt router or table file;
// ShapeError for a router of another embedding width. Falls back to the mode's defaults (with
// `warning` set) only for `auto` when the router or the table file is missing.
// `tokens`: the prompt's [L, D] embedding; the built-in model's rows are named for the explanation.
// `grid`: the job's token grid; its frames pick the horizon of a table with several
// (calibrate::LoadedTable::horizon_for). A job whose tokens per frame or block size differ from
// the horizon's proxy runs its parameters with `warning` set: they were tuned to other blocks.
RegimeChoice choose_regime(const AttentionSettings& settings, const std::string& model_name,
                           const torch::Tensor& tokens, const std::string& prompt, const attention::TokenGrid& grid);

// A change of attention settings while the job runs (the studio's sliders): with the job's mode and
// regime kept, the regime's calibrated values stay under the new parameters (the dock sends only
// the sliders a user moved); any other change applies as given (a regime is chosen when a job starts).
AttentionSettings keep_regime(const RegimeChoice& choice, AttentionSettings changed);

// Trains a router for a built-in model on world captions (calibrate::world_prompts with `seed`)
// embedded by that model's own text encoder, and scores it on `heldout_per_regime` captions of
// another seed. Throws ParameterError for a model without a built-in text encoder.
struct RouterTraining {
  calibrate::MotionRouter router;
  double heldout_accuracy = 0.0;
  int heldout = 0;
  double route_ms = 0.0;  // mean time of one routing (pooling + projection + explanation)
};
RouterTraining train_world_router(const std::string& model_name, uint64_t seed, int per_regime, int heldout_per_regime,
                                  const calibrate::RouterTrainOptions& options = {});

// Trains a router for any model with a text encoder (a Wan folder: its umT5, on the CPU in fp32) on
// labelled prompts (calibrate::read_labelled_prompts): every `heldout_every`-th prompt (the 1st
// counted from 1) is held out and scored, the rest train it. `model` names the model as a
// generation request does (a folder, a name, component files); its resolution is run_job's.
// Throws ParameterError for heldout_every < 2, a regime with no training prompt, an unknown regime.
RouterTraining train_prompt_router(const GenerationRequest& model, const std::vector<calibrate::LabelledPrompt>& prompts,
                                   int heldout_every, const calibrate::RouterTrainOptions& options = {});

}  // namespace longshot::pipeline

// longshot-train: trains a DiT config (by default longshot-builtin) and its caption text encoder
// jointly on clips the procedural world generates on the fly. Flow matching (v = ε − x0, as the
// sampler expects), AdamW, EMA, resumable checkpoints, loss log and sample previews with their
// adherence. Knows the engine's model, sampler, data and eval rooms; no UI.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace longshot::train {

struct TrainOptions {
  std::string out_dir;              // checkpoints, train.log, previews
  std::string config = "longshot-builtin";
  int64_t steps = 20000;            // stop after this many optimizer steps in total
  double time_limit_s = 0.0;        // and/or after this many seconds of this run (0 = none)
  bool lr_by_steps = false;         // lr decay by `steps` only (a schedule over several time-limited runs)
  int batch = 16;
  int frames = 32;
  int size = 64;
  double lr = 5e-4;
  double weight_decay = 0.01;
  int warmup = 200;
  double ema_decay = 0.999;
  double cfg_drop = 0.1;            // share of captions replaced by "" (classifier-free guidance)
  double shift = 3.0;               // timestep shift of the training σ distribution
  // Loss weight of pixels near an object (data::object_footprint, margin in pixels) against 1 for
  // the rest: objects cover a few % of a frame, so an unweighted MSE is mostly background.
  double object_weight = 6.0;
  double object_margin = 1.5;
  // Absolute-position input planes of the DiT (model::DiTConfig::position_channels): -1 = the
  // config's (its shipped weights'). A checkpoint without them is widened: the new planes' patch
  // embedding weights start at zero, so the resumed model computes what it did before.
  int position_channels = -1;
  int save_every = 500;
  int preview_every = 1000;
  int preview_steps = 20;
  int log_every = 20;
  uint64_t seed = 0;
  bool resume = true;
  std::string device = "auto";      // auto | cpu | cuda
  std::string export_path;          // fp16 weights (+ "-text") of the EMA model when done
  int threads = 0;                  // CPU threads for data generation (0 = LibTorch's default)
  // Asked between steps: true ends the run like the time limit does — a checkpoint at the current
  // step, resumable (longshot-train sets it from SIGINT / SIGTERM / SIGHUP).
  std::function<bool()> should_stop;
  // Mask-adapter distillation (run_distillation): the frozen model is the EMA of `teacher_dir`'s
  // checkpoint; the adapter learns to make `distill_mode` (with `distill_params`, "k=v" each, and
  // `block_size`) follow that model's dense output.
  std::string distill_mode;
  std::vector<std::string> distill_params;
  std::string teacher_dir;
  // Sparsity-aware training (run_training): with `sparse_mode` set, each step also runs the model
  // under that mode's mask (`sparse_params`, `block_size`) and adds sparse_weight × the
  // object-weighted MSE between that velocity and the dense one, so the dense model learns to live
  // within the mask and the sparse mode's videos stay near the dense ones.
  std::string sparse_mode;
  std::vector<std::string> sparse_params;
  double sparse_weight = 1.0;
  int64_t block_size = 128;
  int rank = 32;
};

// Runs training; returns the number of optimizer steps done in total. Throws ParameterError for
// bad options and IoError for unwritable output or a broken checkpoint.
int64_t run_training(const TrainOptions& options);

// Trains a mask adapter (model/mask_adapter.h) by distillation: loss = object-weighted MSE between
// the model's velocity under `distill_mode` with the adapter and its dense velocity, at the training
// noise levels of on-the-fly clips. Checkpoint `adapter_state.safetensors` in out_dir (resumes);
// `export_path` gets the EMA adapter in fp16. Returns the step count.
int64_t run_distillation(const TrainOptions& options);

// Writes the EMA weights of the checkpoint in `out_dir` as fp16 safetensors: `path` (DiT) and
// its "-text" sibling (text encoder).
void export_weights(const std::string& out_dir, const std::string& config, const std::string& path);

}  // namespace longshot::train

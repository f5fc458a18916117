// longshot-train: trains a DiT config (by default longshot-builtin) and its caption text encoder
// jointly on clips the procedural world generates on the fly. Flow matching (v = ε − x0, as the
// sampler expects), AdamW, EMA, resumable checkpoints, loss log and sample previews with their
// adherence. Knows the engine's model, sampler, data and eval rooms; no UI.
#pragma once
#include <cstdint>
#include <string>

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
  int save_every = 500;
  int preview_every = 1000;
  int preview_steps = 20;
  int log_every = 20;
  uint64_t seed = 0;
  bool resume = true;
  std::string device = "auto";      // auto | cpu | cuda
  std::string export_path;          // fp16 weights (+ "-text") of the EMA model when done
  int threads = 0;                  // CPU threads for data generation (0 = LibTorch's default)
};

// Runs training; returns the number of optimizer steps done in total. Throws ParameterError for
// bad options and IoError for unwritable output or a broken checkpoint.
int64_t run_training(const TrainOptions& options);

// Writes the EMA weights of the checkpoint in `out_dir` as fp16 safetensors: `path` (DiT) and
// its "-text" sibling (text encoder).
void export_weights(const std::string& out_dir, const std::string& config, const std::string& path);

}  // namespace longshot::train

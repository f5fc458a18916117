// Checkpoint files of a training run (model, EMA, Adam moments: one safetensors file each, all
// stamped with the step) and of a mask-adapter distillation (one file). Knows the optimiser's
// state and the adapter; nothing of the data, the loss or the loop.
#pragma once
#include <cstdint>
#include <string>

#include <torch/types.h>

#include "app/train/optimiser.h"
#include "engine/io/safetensors.h"
#include "engine/model/mask_adapter.h"

namespace longshot::train {

// The run's files in a checkpoint folder: weights, their EMA, Adam's first and second moments.
inline constexpr const char* kCheckpointFiles[] = {"model.safetensors", "ema.safetensors", "adam_m.safetensors",
                                                   "adam_v.safetensors"};
inline constexpr const char* kAdapterState = "adapter_state.safetensors";

// Writes the four files into `dir`, each stamped with `step` and the config name.
void save_checkpoint(const std::string& dir, Optimiser& opt, int64_t step, const std::string& config);

// Reads the checkpoint in `dir` into the parameters, EMA and moments and sets the optimiser's step;
// returns that step, or −1 when `dir` has none. IoError for a torn set (files of different steps)
// or unreadable step metadata, ShapeError for a tensor of the wrong shape, each naming the file.
int64_t load_checkpoint(const std::string& dir, Optimiser& opt);

// Copies `file`'s tensor `name` into `dst`: IoError naming the tensor when it is absent, ShapeError
// naming `what` (the file) and the tensor when its shape is not dst's. The one exception widens:
// a patch embedding with fewer input channels (a checkpoint from before position planes) fills
// dst's leading channels, and the rest start at zero.
void load_checked(io::SafetensorsFile& file, const std::string& what, const std::string& name,
                  const torch::Tensor& dst);

// One file: the adapter's factors ("p.*"), their EMA ("e.*") and Adam moments ("m.*", "v.*"),
// with what the adapter was trained for (mode, params, rank, block size, config, teacher).
void save_adapter_state(const std::string& path, const std::string& teacher, const model::MaskAdapter& ad,
                        Optimiser& opt, int64_t step);
// Returns the step, or −1 when `path` does not exist. ParameterError when the file's adapter was
// trained for something else than `ad` and `teacher`; IoError for a bad tensor or step.
int64_t load_adapter_state(const std::string& path, const std::string& teacher, model::MaskAdapter& ad, Optimiser& opt);

}  // namespace longshot::train

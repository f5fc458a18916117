// `longshot-train`: parses flags into TrainOptions and runs the trainer (app/train/trainer.h).
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli/signals.h"
#include "app/train/trainer.h"
#include "engine/common/address_space.h"
#include "engine/common/error.h"
#include "engine/common/log.h"
#include "engine/common/parse.h"

namespace {

const char* kUsage = R"(usage: longshot-train --out DIR [options]
Trains a pixel-space DiT config and the caption text encoder on procedural clips made on the fly.
Resumes from DIR when it holds a checkpoint.
  --config NAME        DiT config (default longshot-builtin)
  --steps N            total optimizer steps (default 20000)
  --time-limit S       stop this run after S seconds (checkpoint saved), 0 = none
  --lr-by-steps        decay the learning rate by --steps only (one schedule over several resumed
                       time-limited runs); default: by steps or this run's time limit, whichever is further
  --batch B            clips per step (default 16)
  --frames T --size S  clip length and side (default 32, 64)
  --lr X               peak AdamW learning rate (default 5e-4); --weight-decay X (0.01); --warmup N (200)
  --ema X              EMA decay (default 0.999)
  --cfg-drop X         share of empty captions (default 0.1)
  --object-weight X    loss weight of pixels near an object, on top of 1 elsewhere (default 6; 0 = plain MSE)
  --position-channels N  0 or 2: absolute-position planes (x, y) into the patch embedding (default: the
                       config's); resuming a checkpoint without them starts their weights at zero
  --distill-mode M     train a mask adapter for attention mode M instead (DynamicRad's mask-aware
                       LoRA): the frozen model is --teacher DIR's EMA checkpoint, the loss the
                       object-weighted MSE between M + adapter and dense; --export writes the adapter
  --distill-param k=v  a parameter of M (repeatable), e.g. keep_ratio=0.2
  --block N            mask block size of M (default 128); --rank R adapter rank (default 32)
  --sparse-mode M      sparsity-aware training: each step also runs the model under mode M's mask and
                       adds --sparse-weight X (default 1) x the object-weighted MSE between that
                       velocity and the dense one (both passes learn from it)
  --sparse-param k=v   a parameter of the --sparse-mode (repeatable), e.g. keep_ratio=0.2
  --save-every N       checkpoint every N steps and at least once a minute (default 500)
  --preview-every N    sample previews with the EMA weights every N steps, 0 = never (default 1000)
  --preview-steps N    sampling steps of a preview (default 20)
  --log-every N        loss line every N steps (default 20)
  --seed X             data and init seed (default 0)
  --device D           auto | cpu | cuda (default auto)
  --threads N          CPU threads (default: LibTorch's)
  --no-resume          start over even if DIR holds a checkpoint
  --export PATH        when done, write the EMA weights as fp16 PATH and PATH's "-text" sibling
  --export-only PATH   only export DIR's checkpoint, no training
  -v, --verbose        debug logging)";

}  // namespace

int main(int argc, char** argv) {
  using longshot::ParameterError;
  std::vector<std::string> args(argv + 1, argv + argc);
  longshot::train::TrainOptions o;
  std::string export_only;
  bool verbose = false;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= args.size()) throw ParameterError(a, "needs a value");
        return args[++i];
      };
      auto number = [&]() -> double {
        const std::string v = value();
        try {
          size_t used = 0;
          const double d = std::stod(v, &used);
          if (used != v.size()) throw std::invalid_argument(v);
          return d;
        } catch (const std::exception&) {
          throw ParameterError(a, "expected a number, got '" + v + "'");
        }
      };
      // Counts are integers that fit: "1e3", "2.5" or 2^32 + 1 are refused, not cast.
      auto integer = [&](int64_t min_value, int64_t max_value) -> int64_t {
        const std::string v = value();
        int64_t n = 0;
        if (!longshot::parse_int64(v, n, min_value, max_value))
          throw ParameterError(a, "expected an integer from " + std::to_string(min_value) + " to " + std::to_string(max_value) + ", got '" + v + "'");
        return n;
      };
      if (a == "--help" || a == "-h") {
        std::cout << kUsage << "\n";
        return 0;
      } else if (a == "--out") o.out_dir = value();
      else if (a == "--config") o.config = value();
      else if (a == "--steps") o.steps = integer(INT64_MIN, INT64_MAX);
      else if (a == "--time-limit") o.time_limit_s = number();
      else if (a == "--batch") o.batch = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--frames") o.frames = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--size") o.size = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--lr") o.lr = number();
      else if (a == "--weight-decay") o.weight_decay = number();
      else if (a == "--warmup") o.warmup = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--ema") o.ema_decay = number();
      else if (a == "--cfg-drop") o.cfg_drop = number();
      else if (a == "--object-weight") o.object_weight = number();
      else if (a == "--position-channels") o.position_channels = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--distill-mode") o.distill_mode = value();
      else if (a == "--distill-param") o.distill_params.push_back(value());
      else if (a == "--teacher") o.teacher_dir = value();
      else if (a == "--sparse-mode") o.sparse_mode = value();
      else if (a == "--sparse-param") o.sparse_params.push_back(value());
      else if (a == "--sparse-weight") o.sparse_weight = number();
      else if (a == "--block") o.block_size = integer(INT64_MIN, INT64_MAX);
      else if (a == "--rank") o.rank = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--save-every") o.save_every = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--preview-every") o.preview_every = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--preview-steps") o.preview_steps = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--log-every") o.log_every = std::max(1, static_cast<int>(integer(INT32_MIN, INT32_MAX)));
      else if (a == "--seed") o.seed = static_cast<uint64_t>(number());
      else if (a == "--device") o.device = value();
      else if (a == "--threads") o.threads = static_cast<int>(integer(INT32_MIN, INT32_MAX));
      else if (a == "--no-resume") o.resume = false;
      else if (a == "--lr-by-steps") o.lr_by_steps = true;
      else if (a == "--export") o.export_path = value();
      else if (a == "--export-only") export_only = value();
      else if (a == "--verbose" || a == "-v") verbose = true;
      else throw ParameterError(a, "unknown flag (see --help)");
    }
    longshot::init_logging(verbose);
    // Training and export run tensor work on this thread: a low `ulimit -v` is an error, not an
    // OpenBLAS hang deaf to Ctrl-C (probe F5).
    longshot::ensure_address_space_headroom();
    if (!export_only.empty()) {
      if (o.out_dir.empty()) throw ParameterError("out", "--export-only needs --out DIR holding a checkpoint");
      longshot::train::export_weights(o.out_dir, o.config, export_only);
      return 0;
    }
    // A signal stops the run between steps with a checkpoint (resume continues from it); the
    // guard stays until the last file is written, and a second signal ends the process at once.
    longshot::cli::InterruptGuard interrupts;
    o.should_stop = [] { return longshot::cli::InterruptGuard::signal_received() != 0; };
    const int64_t step = o.distill_mode.empty() ? longshot::train::run_training(o) : longshot::train::run_distillation(o);
    if (const int sig = longshot::cli::InterruptGuard::signal_received()) {
      std::cerr << "longshot-train: stopped by " << longshot::cli::signal_name(sig) << " at step " << step
                << "; the checkpoint in '" << o.out_dir << "' resumes from there\n";
      return 128 + sig;
    }
    return 0;
  } catch (const longshot::Error& e) {
    std::cerr << "longshot-train: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "longshot-train: unexpected error: " << e.what() << "\n";
    return 1;
  }
}

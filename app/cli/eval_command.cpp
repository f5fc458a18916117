// `longshot eval`: generates procedural-world prompts with every attention mode at several
// horizons (and, with --presets, every paper preset's attention) and prints one table: sparsity,
// step time, prompt adherence, temporal health, loop score, and PSNR / SSIM against the dense
// video of the same seed and prompt.
#include <algorithm>
#include <limits>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "app/cli/command.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/presets.h"
#include "engine/common/error.h"
#include "engine/data/world.h"
#include "engine/eval/metrics.h"
#include "engine/model/builtin_model.h"
#include "engine/model/dit_config.h"
#include "engine/pipeline/run_job.h"
#include "engine/sampler/flow_matching.h"

namespace longshot::cli {
namespace {

const char* kEvalUsage = R"(usage: longshot eval [options]
Generates clips of the procedural world's captions with each attention mode and horizon and prints
one table (mean over seeds): block sparsity, step time, prompt adherence, temporal health, loop
score (VQeval-style, clips of 6+ frames), and PSNR / SSIM against the dense clip of the same seed
and prompt. Formulas: docs/builtin-model.md.
  --model NAME        model config (default longshot-builtin)
  --modes LIST        comma-separated mode names or 'all' (default all; dense always runs)
  --presets LIST      also rows 'preset:NAME' for these presets or 'all': each preset's attention
                      (mode, parameters, dense schedule); sampler, steps, guidance, shift and block
                      stay this command's, so rows differ by attention alone
  --horizons LIST     multiples of the training length (default 1,2,4)
  --seeds N           prompts / seeds per cell (default 2)
  --steps N           sampling steps (default: the model's)
  --frames N          training length in video frames (default 32)
  --size N            frame side in pixels (default 64)
  --block-size N      attention block size in tokens (default 128)
  --dense-steps N     first steps run dense in sparse modes (default 0)
  --guidance G        classifier-free guidance (default: the model's; 1 = off)
  --shift S           flow-matching shift (default: the model's)
  --sampler S         unipc, euler or dpm++2m (default: the model's; docs/sampling.md)
  --schedule G        the sampler's sigma grid: auto, wan, diffusers (default auto)
  --param MODE:k=v    a parameter override for one mode (repeatable)
  --adapter A         mask-aware adapter of the sparse modes: auto (the model's own per mode, where it
                      ships one; default), none, or an adapter .safetensors for every sparse mode)";

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int to_int(const std::string& flag, const std::string& v) {
  return parse_int32(flag, v);
}

struct Cell {
  double sparsity = 0, step_ms = 0, adherence = 0, health = 0, psnr = 0, ssim = 0, loop = 0;
  int n = 0, loop_n = 0;
};

// The loop score (eval::loop_score) of clips long enough for it (6 frames), into the cell.
void add_loop(Cell& c, const Video& v) {
  if (v.frames < 6) return;
  c.loop += eval::loop_score(v).score;
  ++c.loop_n;
}

std::string loop_text(const Cell& c) {
  if (c.loop_n == 0) return "—";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", c.loop / c.loop_n);
  return buf;
}

struct RunResult {
  VideoPtr video;
  double mean_sparsity = 0, step_ms = 0;
  std::string adapter;  // the mask adapter file the job used ("" = none)
};

RunResult generate(const pipeline::GenerationRequest& request, pipeline::ModelCache& cache) {
  RunResult result;
  std::string failure;
  double step_ms = 0;
  int steps = 0;
  pipeline::JobContext ctx;
  ctx.cache = &cache;
  ctx.publish = [&](pipeline::Event event) {
    if (auto* s = std::get_if<pipeline::StepFinished>(&event)) {
      step_ms += s->step_ms;
      ++steps;
    } else if (auto* st = std::get_if<pipeline::JobStarted>(&event)) {
      result.adapter = st->adapter;
    } else if (auto* f = std::get_if<pipeline::JobFinished>(&event)) {
      result.video = f->video;
      result.mean_sparsity = f->mean_sparsity;
    } else if (auto* e = std::get_if<pipeline::JobFailed>(&event)) {
      failure = e->message;
    }
  };
  pipeline::run_job(request, ctx);
  if (!failure.empty()) throw Error("generation with mode '" + request.attention.mode + "' failed: " + failure);
  if (!result.video) throw Error("generation with mode '" + request.attention.mode + "' produced no video");
  result.step_ms = steps ? step_ms / steps : 0.0;
  return result;
}

// What `longshot eval`'s flags ask for.
struct EvalOptions {
  std::string model_name = model::kBuiltinName;
  std::string modes_arg = "all", presets_arg;
  std::vector<int> horizons = {1, 2, 4};
  int seeds = 2, steps = -1, frames = model::kBuiltinFrames, size = model::kBuiltinSize, block = 128, dense_steps = 0;
  std::string adapter = "auto";
  std::optional<double> guidance, shift;        // unset: the model's defaults
  std::string sampler_name, schedule = "auto";  // "": the model's sampler
  std::map<std::string, attention::ParamValues> overrides;
};

// Parses and checks the flags; names (sampler, schedule, override modes) are checked before any
// job runs.
EvalOptions parse_eval_options(const std::vector<std::string>& args) {
  EvalOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw ParameterError(a, "needs a value");
      return args[++i];
    };
    if (a == "--model") o.model_name = value();
    else if (a == "--modes") o.modes_arg = value();
    else if (a == "--presets") o.presets_arg = value();
    else if (a == "--horizons") {
      o.horizons.clear();
      for (const auto& h : split(value(), ',')) o.horizons.push_back(to_int("--horizons", h));
    } else if (a == "--seeds") o.seeds = to_int(a, value());
    else if (a == "--steps") o.steps = to_int(a, value());
    else if (a == "--frames") o.frames = to_int(a, value());
    else if (a == "--size") o.size = to_int(a, value());
    else if (a == "--block-size") o.block = to_int(a, value());
    else if (a == "--dense-steps") o.dense_steps = to_int(a, value());
    else if (a == "--adapter") o.adapter = value();
    else if (a == "--guidance") o.guidance = parse_double(a, value());
    else if (a == "--shift") o.shift = parse_double(a, value());
    else if (a == "--sampler") o.sampler_name = value();
    else if (a == "--schedule") o.schedule = value();
    else if (a == "--param") {
      const std::string v = value();
      const auto colon = v.find(':');
      if (colon == std::string::npos) throw ParameterError("--param", "expected MODE:key=value, got '" + v + "'");
      attention::parse_param_assignment(v.substr(colon + 1), o.overrides[v.substr(0, colon)]);
    } else throw ParameterError(a, "unknown flag (see longshot eval --help)");
  }
  if (o.seeds < 1) throw ParameterError("--seeds", "must be >= 1");
  if (o.guidance && !(*o.guidance >= 1.0 && *o.guidance <= 50.0))
    throw ParameterError("--guidance", "must be in [1, 50], got " + std::to_string(*o.guidance));
  if (o.shift && !(*o.shift > 0.0 && *o.shift <= 100.0))
    throw ParameterError("--shift", "must be in (0, 100], got " + std::to_string(*o.shift));
  if (o.horizons.empty()) throw ParameterError("--horizons", "needs at least one value");
  const auto& samplers = sampler::sampler_names();
  if (!o.sampler_name.empty() && std::find(samplers.begin(), samplers.end(), o.sampler_name) == samplers.end())
    throw ParameterError("--sampler", "expected unipc, euler or dpm++2m, got '" + o.sampler_name + "'");
  if (o.schedule != "auto" && o.schedule != "wan" && o.schedule != "diffusers")
    throw ParameterError("--schedule", "expected auto, wan or diffusers, got '" + o.schedule + "'");
  for (int h : o.horizons) {
    if (h < 1) throw ParameterError("--horizons", "values must be >= 1");
  }
  return o;
}

// The table's rows: dense first, then the modes asked for, then "preset:NAME" rows (their presets
// into `preset_rows`: a preset's attention is what its row runs).
std::vector<std::string> eval_rows(const EvalOptions& o, std::map<std::string, attention::MethodPreset>& preset_rows) {
  std::vector<std::string> modes = {"dense"};
  if (o.modes_arg == "all") {
    for (const auto& p : attention::registered_policies()) {
      if (p.name != "dense") modes.push_back(p.name);
    }
  } else {
    for (const auto& m : split(o.modes_arg, ',')) {
      attention::find_policy(m);  // ParameterError("mode") listing the known names
      if (m != "dense") modes.push_back(m);
    }
  }
  if (!o.presets_arg.empty()) {
    std::vector<attention::MethodPreset> list;
    if (o.presets_arg == "all") list = attention::shipped_presets();
    else
      for (const auto& name : split(o.presets_arg, ',')) list.push_back(attention::find_preset(name));
    if (list.empty()) throw ParameterError("--presets", "no presets found");
    for (auto& p : list) {
      modes.push_back("preset:" + p.name);
      preset_rows["preset:" + p.name] = std::move(p);
    }
  }
  for (const auto& [mode, params] : o.overrides) {
    attention::resolve_params(attention::find_policy(mode), params);  // validates now, not mid-table
  }
  return modes;
}

// The request's attention for one row: a preset's mode, parameters and dense schedule, or a mode
// with this command's overrides and dense steps.
void set_row_attention(pipeline::GenerationRequest& request, const std::string& mode, const EvalOptions& o,
                       const std::map<std::string, attention::MethodPreset>& preset_rows) {
  const auto preset = preset_rows.find(mode);
  if (preset != preset_rows.end()) {
    const attention::MethodPreset& p = preset->second;
    request.attention.mode = p.mode;
    request.attention.params = p.params;
    request.attention.dense_warmup_steps = p.dense_warmup_steps.value_or(o.dense_steps);
    request.attention.dense_first_layers = p.dense_first_layers.value_or(0);
    request.attention.dense_last_layers = p.dense_last_layers.value_or(0);
  } else {
    request.attention.mode = mode;
    const auto it = o.overrides.find(mode);
    request.attention.params = it != o.overrides.end() ? it->second : attention::ParamValues{};
    request.attention.dense_warmup_steps = mode == "dense" ? 0 : o.dense_steps;
    request.attention.dense_first_layers = request.attention.dense_last_layers = 0;
  }
  request.attention.adapter = o.adapter;
}

// The measurements: one cell per (row, horizon), the world's own renderings per horizon, and the
// adapter file each row's jobs used.
struct EvalTable {
  std::map<std::pair<std::string, int>, Cell> cells;
  std::map<std::string, std::string> adapter_of;
  std::map<int, Cell> reference;
};

// The world's own rendering of the prompt: the adherence a perfect video gets on these prompts
// (below 100 % where overlapping objects hide each other), and the world's own temporal health (its
// slow motions can score below a generated clip's).
void add_reference(Cell& c, const data::ClipSpec& spec, const std::string& prompt, int frames, int training_frames,
                   int size) {
  const Video truth = data::render(spec, frames, size, size);
  const eval::Adherence a = eval::prompt_adherence(truth, prompt);
  c.adherence += a.accuracy;
  c.health += eval::temporal_health(truth, training_frames).score;
  add_loop(c, truth);
  ++c.n;
}

// One seed at one horizon: every row's video of the same prompt and seed, scored against dense.
void eval_seed(const EvalOptions& o, const model::DiTConfig& config, const std::vector<std::string>& modes,
               const std::map<std::string, attention::MethodPreset>& preset_rows, int h, int s,
               pipeline::ModelCache& cache, EvalTable& table) {
  // Held-out prompts: world seeds the trainer's stream never reaches in practice.
  const data::ClipSpec spec = data::sample_clip(700000 + static_cast<uint64_t>(s));
  const std::string prompt = data::caption(spec);
  add_reference(table.reference[h], spec, prompt, o.frames * h, o.frames, o.size);
  pipeline::GenerationRequest request;
  request.prompt = prompt;
  request.model = o.model_name;
  request.frames = o.frames * h;
  request.width = request.height = o.size;
  request.steps = o.steps > 0 ? o.steps : config.default_steps;
  request.guidance = o.guidance.value_or(config.default_guidance);
  request.shift = o.shift.value_or(config.default_shift);
  request.sampler = o.sampler_name;
  request.schedule = o.schedule;
  request.seed = 1000 + static_cast<uint64_t>(s);
  request.previews = false;
  request.measure_recall = false;
  request.attention.block_size = o.block;
  VideoPtr dense;
  for (const std::string& mode : modes) {
    set_row_attention(request, mode, o, preset_rows);
    spdlog::info("eval: {} x{} seed {} — '{}'", mode, h, s, prompt);
    const RunResult r = generate(request, cache);
    if (!r.adapter.empty()) table.adapter_of[mode] = r.adapter;
    if (mode == "dense") dense = r.video;
    Cell& c = table.cells[{mode, h}];
    c.sparsity += r.mean_sparsity;
    c.step_ms += r.step_ms;
    const eval::Adherence a = eval::prompt_adherence(*r.video, prompt);
    const double psnr = eval::psnr(*r.video, *dense), ssim = eval::ssim(*r.video, *dense);
    spdlog::info("eval: {} x{} seed {}: adherence {:.1f} % (presence {:.1f}, size {:.1f}, motion {:.1f}){}", mode, h, s,
                 100 * a.accuracy, 100 * a.presence, 100 * a.size, 100 * a.motion,
                 mode == "dense" ? std::string() : fmt::format(", vs dense {:.2f} dB / SSIM {:.4f}", psnr, ssim));
    c.adherence += a.accuracy;
    c.health += eval::temporal_health(*r.video, o.frames).score;
    add_loop(c, *r.video);
    c.psnr += psnr;
    c.ssim += ssim;
    ++c.n;
  }
}

void print_table(const EvalOptions& o, const model::DiTConfig& config, const std::vector<std::string>& modes,
                 const EvalTable& table) {
  std::printf("model %s, %dx%d, training length %d frames, %d seed(s), %d steps, guidance %g, shift %g, block %d, "
              "sampler %s (%s grid), %s\n",
              o.model_name.c_str(), o.size, o.size, o.frames, o.seeds, o.steps > 0 ? o.steps : config.default_steps,
              o.guidance.value_or(config.default_guidance), o.shift.value_or(config.default_shift), o.block,
              (o.sampler_name.empty() ? config.default_sampler : o.sampler_name).c_str(), o.schedule.c_str(),
              attention::backend_description().c_str());
  // Which sparse modes ran with a mask adapter: their rows are the mode plus its adapter.
  for (const auto& [mode, path] : table.adapter_of) {
    std::printf("%s runs with the mask adapter %s\n", mode.c_str(), path.c_str());
  }
  std::printf("\n");
  std::printf("| mode | horizon | frames | sparsity %% | step ms | adherence %% | temporal health | loop score | PSNR vs dense dB | SSIM vs dense |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (int h : o.horizons) {
    const auto ref = table.reference.find(h);
    const Cell r = ref != table.reference.end() ? ref->second : Cell{};
    std::printf("| world (reference) | %dx | %d | — | — | %.1f | %.2f | %s | — | — |\n", h, o.frames * h,
                100 * r.adherence / std::max(1, r.n), r.health / std::max(1, r.n), loop_text(r).c_str());
    for (const std::string& mode : modes) {
      const auto it = table.cells.find({mode, h});
      const Cell c = it != table.cells.end() ? it->second : Cell{};
      const double n = std::max(1, c.n);
      if (mode == "dense") {
        std::printf("| %s | %dx | %d | %.1f | %.1f | %.1f | %.2f | %s | — | — |\n", mode.c_str(), h, o.frames * h,
                    100 * c.sparsity / n, c.step_ms / n, 100 * c.adherence / n, c.health / n, loop_text(c).c_str());
      } else {
        std::printf("| %s | %dx | %d | %.1f | %.1f | %.1f | %.2f | %s | %.2f | %.4f |\n", mode.c_str(), h, o.frames * h,
                    100 * c.sparsity / n, c.step_ms / n, 100 * c.adherence / n, c.health / n, loop_text(c).c_str(),
                    c.psnr / n, c.ssim / n);
      }
    }
  }
}

int run_eval(const std::vector<std::string>& args) {
  const EvalOptions o = parse_eval_options(args);
  const model::DiTConfig config = model::find_config(o.model_name);
  std::map<std::string, attention::MethodPreset> preset_rows;
  const std::vector<std::string> modes = eval_rows(o, preset_rows);
  EvalTable table;
  pipeline::ModelCache cache;
  for (int h : o.horizons) {
    for (int s = 0; s < o.seeds; ++s) eval_seed(o, config, modes, preset_rows, h, s, cache, table);
  }
  print_table(o, config, modes, table);
  return 0;
}

}  // namespace

Command eval_command() {
  return {"eval", "table of sparsity, speed, adherence, temporal health, loop score, PSNR/SSIM per mode (or preset) and horizon", kEvalUsage,
          run_eval};
}

}  // namespace longshot::cli

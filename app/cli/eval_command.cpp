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

int run_eval(const std::vector<std::string>& args) {
  std::string model_name = model::kBuiltinName;
  std::string modes_arg = "all", presets_arg;
  std::vector<int> horizons = {1, 2, 4};
  int seeds = 2, steps = -1, frames = model::kBuiltinFrames, size = model::kBuiltinSize, block = 128, dense_steps = 0;
  std::string adapter = "auto";
  std::optional<double> guidance, shift;  // unset: the model's defaults
  std::string sampler_name, schedule = "auto";  // "": the model's sampler
  std::map<std::string, attention::ParamValues> overrides;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw ParameterError(a, "needs a value");
      return args[++i];
    };
    if (a == "--model") model_name = value();
    else if (a == "--modes") modes_arg = value();
    else if (a == "--presets") presets_arg = value();
    else if (a == "--horizons") {
      horizons.clear();
      for (const auto& h : split(value(), ',')) horizons.push_back(to_int("--horizons", h));
    } else if (a == "--seeds") seeds = to_int(a, value());
    else if (a == "--steps") steps = to_int(a, value());
    else if (a == "--frames") frames = to_int(a, value());
    else if (a == "--size") size = to_int(a, value());
    else if (a == "--block-size") block = to_int(a, value());
    else if (a == "--dense-steps") dense_steps = to_int(a, value());
    else if (a == "--adapter") adapter = value();
    else if (a == "--guidance") guidance = parse_double(a, value());
    else if (a == "--shift") shift = parse_double(a, value());
    else if (a == "--sampler") sampler_name = value();
    else if (a == "--schedule") schedule = value();
    else if (a == "--param") {
      const std::string v = value();
      const auto colon = v.find(':');
      if (colon == std::string::npos) throw ParameterError("--param", "expected MODE:key=value, got '" + v + "'");
      attention::parse_param_assignment(v.substr(colon + 1), overrides[v.substr(0, colon)]);
    } else throw ParameterError(a, "unknown flag (see longshot eval --help)");
  }
  if (seeds < 1) throw ParameterError("--seeds", "must be >= 1");
  if (guidance && !(*guidance >= 1.0 && *guidance <= 50.0))
    throw ParameterError("--guidance", "must be in [1, 50], got " + std::to_string(*guidance));
  if (shift && !(*shift > 0.0 && *shift <= 100.0))
    throw ParameterError("--shift", "must be in (0, 100], got " + std::to_string(*shift));
  if (horizons.empty()) throw ParameterError("--horizons", "needs at least one value");
  // Names checked before any job runs.
  const auto& samplers = sampler::sampler_names();
  if (!sampler_name.empty() && std::find(samplers.begin(), samplers.end(), sampler_name) == samplers.end())
    throw ParameterError("--sampler", "expected unipc, euler or dpm++2m, got '" + sampler_name + "'");
  if (schedule != "auto" && schedule != "wan" && schedule != "diffusers")
    throw ParameterError("--schedule", "expected auto, wan or diffusers, got '" + schedule + "'");
  for (int h : horizons) {
    if (h < 1) throw ParameterError("--horizons", "values must be >= 1");
  }
  const model::DiTConfig config = model::find_config(model_name);

  std::vector<std::string> modes = {"dense"};
  if (modes_arg == "all") {
    for (const auto& p : attention::registered_policies()) {
      if (p.name != "dense") modes.push_back(p.name);
    }
  } else {
    for (const auto& m : split(modes_arg, ',')) {
      attention::find_policy(m);  // ParameterError("mode") listing the known names
      if (m != "dense") modes.push_back(m);
    }
  }
  // Preset rows: "preset:NAME" → the preset (its attention is what the row runs).
  std::map<std::string, attention::MethodPreset> preset_rows;
  if (!presets_arg.empty()) {
    std::vector<attention::MethodPreset> list;
    if (presets_arg == "all") list = attention::shipped_presets();
    else
      for (const auto& name : split(presets_arg, ',')) list.push_back(attention::find_preset(name));
    if (list.empty()) throw ParameterError("--presets", "no presets found");
    for (auto& p : list) {
      modes.push_back("preset:" + p.name);
      preset_rows["preset:" + p.name] = std::move(p);
    }
  }
  for (const auto& [mode, params] : overrides) {
    attention::resolve_params(attention::find_policy(mode), params);  // validates now, not mid-table
  }

  std::map<std::pair<std::string, int>, Cell> cells;
  std::map<std::string, std::string> adapter_of;  // mode → the adapter file its jobs used
  std::map<int, Cell> reference;                  // horizon → the world's renderings of the prompts
  pipeline::ModelCache cache;
  for (int h : horizons) {
    for (int s = 0; s < seeds; ++s) {
      // Held-out prompts: world seeds the trainer's stream never reaches in practice.
      const data::ClipSpec spec = data::sample_clip(700000 + static_cast<uint64_t>(s));
      const std::string prompt = data::caption(spec);
      {
        // The world's own rendering of the prompt: the adherence a perfect video gets on these
        // prompts (below 100 % where overlapping objects hide each other), and the world's own
        // temporal health (its slow motions can score below a generated clip's).
        const Video truth = data::render(spec, frames * h, size, size);
        const eval::Adherence a = eval::prompt_adherence(truth, prompt);
        Cell& c = reference[h];
        c.adherence += a.accuracy;
        c.health += eval::temporal_health(truth, frames).score;
        add_loop(c, truth);
        ++c.n;
      }
      pipeline::GenerationRequest request;
      request.prompt = prompt;
      request.model = model_name;
      request.frames = frames * h;
      request.width = request.height = size;
      request.steps = steps > 0 ? steps : config.default_steps;
      request.guidance = guidance.value_or(config.default_guidance);
      request.shift = shift.value_or(config.default_shift);
      request.sampler = sampler_name;
      request.schedule = schedule;
      request.seed = 1000 + static_cast<uint64_t>(s);
      request.previews = false;
      request.measure_recall = false;
      request.attention.block_size = block;
      VideoPtr dense;
      for (const std::string& mode : modes) {
        const auto preset = preset_rows.find(mode);
        if (preset != preset_rows.end()) {
          const attention::MethodPreset& p = preset->second;
          request.attention.mode = p.mode;
          request.attention.params = p.params;
          request.attention.dense_warmup_steps = p.dense_warmup_steps.value_or(dense_steps);
          request.attention.dense_first_layers = p.dense_first_layers.value_or(0);
          request.attention.dense_last_layers = p.dense_last_layers.value_or(0);
        } else {
          request.attention.mode = mode;
          request.attention.params = overrides.count(mode) ? overrides[mode] : attention::ParamValues{};
          request.attention.dense_warmup_steps = mode == "dense" ? 0 : dense_steps;
          request.attention.dense_first_layers = request.attention.dense_last_layers = 0;
        }
        request.attention.adapter = adapter;
        spdlog::info("eval: {} x{} seed {} — '{}'", mode, h, s, prompt);
        const RunResult r = generate(request, cache);
        if (!r.adapter.empty()) adapter_of[mode] = r.adapter;
        if (mode == "dense") dense = r.video;
        Cell& c = cells[{mode, h}];
        c.sparsity += r.mean_sparsity;
        c.step_ms += r.step_ms;
        const eval::Adherence a = eval::prompt_adherence(*r.video, prompt);
        const double psnr = eval::psnr(*r.video, *dense), ssim = eval::ssim(*r.video, *dense);
        spdlog::info("eval: {} x{} seed {}: adherence {:.1f} % (presence {:.1f}, size {:.1f}, motion {:.1f}){}", mode, h, s,
                     100 * a.accuracy, 100 * a.presence, 100 * a.size, 100 * a.motion,
                     mode == "dense" ? std::string() : fmt::format(", vs dense {:.2f} dB / SSIM {:.4f}", psnr, ssim));
        c.adherence += a.accuracy;
        c.health += eval::temporal_health(*r.video, frames).score;
        add_loop(c, *r.video);
        c.psnr += psnr;
        c.ssim += ssim;
        ++c.n;
      }
    }
  }

  std::printf("model %s, %dx%d, training length %d frames, %d seed(s), %d steps, guidance %g, shift %g, block %d, "
              "sampler %s (%s grid), %s\n",
              model_name.c_str(), size, size, frames, seeds, steps > 0 ? steps : config.default_steps,
              guidance.value_or(config.default_guidance), shift.value_or(config.default_shift), block,
              (sampler_name.empty() ? config.default_sampler : sampler_name).c_str(), schedule.c_str(),
              attention::backend_description().c_str());
  // Which sparse modes ran with a mask adapter: their rows are the mode plus its adapter.
  for (const auto& [mode, path] : adapter_of) {
    std::printf("%s runs with the mask adapter %s\n", mode.c_str(), path.c_str());
  }
  std::printf("\n");
  std::printf("| mode | horizon | frames | sparsity %% | step ms | adherence %% | temporal health | loop score | PSNR vs dense dB | SSIM vs dense |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (int h : horizons) {
    const Cell& r = reference[h];
    std::printf("| world (reference) | %dx | %d | — | — | %.1f | %.2f | %s | — | — |\n", h, frames * h,
                100 * r.adherence / std::max(1, r.n), r.health / std::max(1, r.n), loop_text(r).c_str());
    for (const std::string& mode : modes) {
      const Cell& c = cells[{mode, h}];
      const double n = std::max(1, c.n);
      if (mode == "dense") {
        std::printf("| %s | %dx | %d | %.1f | %.1f | %.1f | %.2f | %s | — | — |\n", mode.c_str(), h, frames * h,
                    100 * c.sparsity / n, c.step_ms / n, 100 * c.adherence / n, c.health / n, loop_text(c).c_str());
      } else {
        std::printf("| %s | %dx | %d | %.1f | %.1f | %.1f | %.2f | %s | %.2f | %.4f |\n", mode.c_str(), h, frames * h,
                    100 * c.sparsity / n, c.step_ms / n, 100 * c.adherence / n, c.health / n, loop_text(c).c_str(),
                    c.psnr / n, c.ssim / n);
      }
    }
  }
  return 0;
}

}  // namespace

Command eval_command() {
  return {"eval", "table of sparsity, speed, adherence, temporal health, loop score, PSNR/SSIM per mode (or preset) and horizon", kEvalUsage,
          run_eval};
}

}  // namespace longshot::cli

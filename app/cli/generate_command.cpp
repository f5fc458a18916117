// `longshot generate`: one text-to-video job through the Generator (the same worker and events the
// studio uses), a progress bar with ETA on stderr, then MP4 / PNG / mask-trace export and a summary.
// Files are written only when the job finishes, staged and renamed into place together: Ctrl-C,
// SIGTERM or SIGHUP cancel within one layer (or abandon the export) and leave nothing behind.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli/command.h"
#include "app/cli/signals.h"
#include "engine/attention/mask_trace.h"
#include "engine/attention/presets.h"
#include "engine/common/error.h"
#include "engine/common/parse.h"
#include "engine/io/file_checks.h"
#include "engine/io/png.h"
#include "engine/io/staged_outputs.h"
#include "engine/model/builtin_model.h"
#include "engine/model/dit_config.h"
#include "engine/pipeline/generator.h"
#include "engine/pipeline/preset_request.h"
#include "engine/pipeline/recipe.h"
#include "engine/pipeline/run_job.h"
#if defined(LONGSHOT_WITH_FFMPEG)
#include "engine/io/mp4.h"
#endif

namespace longshot::cli {
namespace {

const char* kGenerateUsage =
    "Usage: longshot generate --prompt \"...\" [--model NAME|DIR|FILE] [--frames N] [--size WxH] [--steps S]\n"
    "                         [--seed X] [--mode M --param k=v ...] [--dense-steps N] [--out clip.mp4]\n"
    "                         [--trace run.lstrace] [--png-dir DIR] [--random-weights]\n"
    "       longshot generate --from clip.mp4 [any flag above, to change that part of its recipe]\n"
    "\n"
    "Generates a video with a Wan2.1-architecture DiT whose self-attention runs through the chosen\n"
    "sparse-attention mode. Progress and ETA go to stderr, the summary to stdout. Ctrl-C, SIGTERM or\n"
    "SIGHUP cancel (within one layer, or during export) and leave no output file.\n"
    "\n"
    "  --prompt TEXT          the prompt (required)\n"
    "  --negative TEXT        negative prompt (default: the model's; Wan's own for the Wan models)\n"
    "  --model NAME|DIR|FILE  tiny, longshot-builtin, longshot-builtin-sparse, wan2.1-t2v-1.3b, wan2.1-t2v-14b,\n"
    "                         a model folder (diffusers or the Wan2.1 release: text encoder, tokenizer and VAE\n"
    "                         come with it), a .safetensors DiT checkpoint, or a folder's name on the model\n"
    "                         search path ($LONGSHOT_MODELS, ~/.local/share/longshot/models; 'longshot models'\n"
    "                         lists them). Default: longshot-builtin; its weights must be installed\n"
    "                         (share/longshot, or LONGSHOT_ASSETS). tiny: random weights. See docs/models.md\n"
    "  --dit FILE  --text-encoder FILE  --tokenizer FILE  --vae FILE\n"
    "                         split component files (ComfyUI): alone they form the model; beside --model\n"
    "                         they replace that component of it\n"
    "  --keep-text-encoder    keep the text encoder loaded during sampling (default: released once the\n"
    "                         prompts are encoded)\n"
    "  --offload              block swap: the DiT's blocks stay in pinned host memory and stream to the GPU\n"
    "                         one block ahead (same output, less GPU memory; nothing moves on the CPU)\n"
    "  --max-gpu-memory SIZE  cap the CUDA caching allocator, e.g. 24G (binary units K, M, G, T); past it\n"
    "                         the job fails with CUDA's out-of-memory error, as on a card that size\n"
    "  --from CLIP.mp4        re-run the recipe a Longshot MP4 carries (prompts, seed, model, sampler,\n"
    "                         steps, guidance, shift, size, attention); flags given beside it override\n"
    "  --random-weights       the named config with seeded random weights instead of its weights file\n"
    "  --text-embeddings FILE precomputed umT5 embeddings ('context' [L, 4096]) for Wan configs\n"
    "  --frames N             video frames (Wan: 4k+1; default: longshot-builtin 32, tiny 16, Wan 81)\n"
    "  --size WxH             frame size (default: longshot-builtin 64x64, tiny 32x32, Wan 832x480)\n"
    "  --steps S              denoising steps (default: the model's, Wan 50)\n"
    "  --guidance G           classifier-free guidance (1 = off)   --shift S   flow-matching shift\n"
    "  --sampler S            unipc, euler or dpm++2m (default: the model's: Wan unipc, longshot-builtin euler)\n"
    "  --schedule G           the sampler's sigma grid: auto, wan, diffusers (default auto; docs/sampling.md)\n"
    "  --seed X               noise (and random-weight) seed (default 42)     --fps F   (default 16)\n"
    "  --preset NAME          a paper's published setting (mode, parameters, dense schedule, block, sampler,\n"
    "                         steps, guidance, shift; see 'longshot --help'); later flags override it\n"
    "  --mode M               attention mode (dense, dynamicrad, dfsattn, lvsa, radial-ratio, radial-mass,\n"
    "                         dfs-adaptive, local-anchors; default dense)\n"
    "  --param k=v            a mode parameter, repeatable (see 'longshot --help')\n"
    "  --dense-steps N        first N steps dense        --dense-layers F,L   first F and last L layers dense\n"
    "  --riflex               RIFLEx: past the model's training length, its intrinsic temporal RoPE frequency\n"
    "                         spans the whole video (against repeating the training clip; LVSA's long runs)\n"
    "  --adapter A            mask-aware adapter of the sparse layers: auto (the model's own for the mode,\n"
    "                         if it ships one; default), none, or an adapter .safetensors\n"
    "  --regime R             motion regime whose calibrated parameters the mode runs with: auto (the\n"
    "                         semantic motion router reads the prompt), static, slow or fast; also written\n"
    "                         --param regime=R. --param values still override the regime's (docs/calibration.md)\n"
    "  --calibration FILE     regime lookup table from 'longshot calibrate' (default: the model's shipped one)\n"
    "  --router FILE          router from 'longshot calibrate --train-router' (default: the model's shipped one)\n"
    "  --block B              mask block size in tokens (default 128)\n"
    "  --device auto|cpu|cuda\n"
    "  --precision P          the DiT's linear layers: native (default) or fp8 (e4m3 GEMMs; Hopper, LibTorch >= 2.5)\n"
    "  --residual R           the DiT's residual stream: fp32 (default, as Wan's code) or bf16 (as diffusers;\n"
    "                         less memory traffic, a bf16 model only)\n"
    "  --cuda-graphs          replay each forward from a captured CUDA graph where shapes and masks repeat\n"
    "                         (static modes; others run eagerly and the log says why; a CUDA device only).\n"
    "                         The recall probe keeps the conditional forward eager: add --no-recall\n"
    "  --out FILE.mp4         MP4 (H.264 yuv420p; MPEG-4 if libav has no H.264 encoder)\n"
    "  --png-dir DIR          every frame as DIR/frame_NNNNN.png\n"
    "  --trace FILE           every step/layer/head mask as a longshot-mask-trace file\n"
    "  --no-recall            skip the per-step recall estimate\n"
    "Exit codes: 0 ok, 1 error, 2 bad usage, 128 + signal when cancelled (130 SIGINT, 143 SIGTERM, 129 SIGHUP).";

std::string clock_text(double ms) {
  const long s = long(ms / 1000.0 + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  return buf;
}

// The config `name` with its weights file cleared, registered under its own name: the model
// then gets seeded random weights because the user asked for them, never as a fallback.
std::string random_weights_config(const std::string& name) {
  if (!model::has_config(name))
    throw ParameterError("random-weights", "needs a config name (--model NAME), not '" + name + "'");
  auto c = model::find_config(name);
  if (c.default_weights.empty()) return name;  // tiny and the Wan configs by name have none
  c.name = name + " (random weights)";
  c.default_weights.clear();
  model::register_config(c);
  return c.name;
}

// What the flags ask for: the request, the outputs, and which fields the user gave (the model's
// defaults fill the rest).
struct GenerateArgs {
  pipeline::GenerationRequest req;
  std::string out_path, trace_path, png_dir, size_text;
  bool have_frames = false, have_steps = false, have_guidance = false, have_shift = false, have_prompt = false;
  bool have_negative = false;
  bool random_weights = false;
};

// --from CLIP.mp4 and --preset first, wherever they stand, so every other flag overrides them: the
// clip's recipe, then the preset (what it sets counts as given).
void apply_recipe_and_preset(const std::vector<std::string>& args, GenerateArgs& g) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "--from") continue;
    g.req = pipeline::request_from_mp4(parse_path("from", args[i + 1]));
    const std::string random_suffix = " (random weights)";  // --random-weights' per-process config
    auto& model = g.req.model;
    if (model.size() > random_suffix.size() &&
        model.compare(model.size() - random_suffix.size(), random_suffix.size(), random_suffix) == 0) {
      model.resize(model.size() - random_suffix.size());
      g.random_weights = true;
    }
    g.have_frames = g.have_steps = g.have_guidance = g.have_shift = g.have_prompt = true;
    g.have_negative = true;
    g.size_text = std::to_string(g.req.width) + "x" + std::to_string(g.req.height);
  }
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "--preset") continue;
    const pipeline::PresetApplied applied = pipeline::apply_preset(attention::find_preset(args[i + 1]), g.req);
    g.have_steps = g.have_steps || applied.steps;
    g.have_guidance = g.have_guidance || applied.guidance;
    g.have_shift = g.have_shift || applied.shift;
  }
}

// A flag with a value into `g`; false when the flag is unknown.
bool apply_value_flag(const std::string& flag, const std::string& value, GenerateArgs& g) {
  auto& req = g.req;
  if (flag == "--prompt") req.prompt = value, g.have_prompt = true;
  else if (flag == "--preset" || flag == "--from") return true;  // applied first
  else if (flag == "--negative") req.negative_prompt = value, g.have_negative = true;
  else if (flag == "--sampler") req.sampler = value;
  else if (flag == "--schedule") req.schedule = value;
  else if (flag == "--model") req.model = value;
  else if (flag == "--text-embeddings") req.text_embeddings = value;
  else if (flag == "--dit") req.dit_file = parse_path("dit", value);
  else if (flag == "--text-encoder") req.text_encoder_file = parse_path("text-encoder", value);
  else if (flag == "--tokenizer") req.tokenizer_file = parse_path("tokenizer", value);
  else if (flag == "--vae") req.vae_file = parse_path("vae", value);
  else if (flag == "--frames") req.frames = parse_int32("frames", value), g.have_frames = true;
  else if (flag == "--size") g.size_text = value;
  else if (flag == "--steps") req.steps = parse_int32("steps", value), g.have_steps = true;
  else if (flag == "--guidance") req.guidance = parse_double("guidance", value), g.have_guidance = true;
  else if (flag == "--shift") req.shift = parse_double("shift", value), g.have_shift = true;
  else if (flag == "--seed") req.seed = parse_uint64("seed", value);
  else if (flag == "--fps") req.fps = parse_double("fps", value);
  else if (flag == "--mode") req.attention.mode = value;
  else if (flag == "--param" && value.rfind("regime=", 0) == 0) req.attention.regime = value.substr(7);
  else if (flag == "--param") attention::parse_param_assignment(value, req.attention.params);
  else if (flag == "--regime") req.attention.regime = value;
  else if (flag == "--calibration") req.attention.calibration = parse_path("calibration", value);
  else if (flag == "--router") req.attention.router = parse_path("router", value);
  else if (flag == "--dense-steps") req.attention.dense_warmup_steps = parse_int32("dense-steps", value);
  else if (flag == "--adapter") req.attention.adapter = value;
  else if (flag == "--dense-layers") {
    const auto comma = value.find(',');
    if (comma == std::string::npos) throw ParameterError("dense-layers", "expected F,L (first and last layers), got '" + value + "'");
    req.attention.dense_first_layers = parse_int32("dense-layers", value.substr(0, comma));
    req.attention.dense_last_layers = parse_int32("dense-layers", value.substr(comma + 1));
  } else if (flag == "--block") req.attention.block_size = parse_int32("block", value);
  else if (flag == "--device") req.device = value;
  else if (flag == "--precision") req.precision = value;
  else if (flag == "--residual") req.residual = value;
  else if (flag == "--max-gpu-memory") {
    if (!parse_byte_size(value, req.max_gpu_memory))
      throw ParameterError("max-gpu-memory", "expected a size such as 24G, 23.5GiB or 512M, got '" + value + "'");
  } else if (flag == "--out") g.out_path = parse_path("out", value);
  else if (flag == "--trace") g.trace_path = parse_path("trace", value);
  else if (flag == "--png-dir") g.png_dir = parse_path("png-dir", value);
  else return false;
  return true;
}

// Parses the flags into `g`. Returns 0, or 2 after printing the usage error.
int parse_generate_flags(const std::vector<std::string>& args, GenerateArgs& g) {
  g.req.model = "";
  apply_recipe_and_preset(args, g);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--no-recall") {
      g.req.measure_recall = false;
      continue;
    }
    if (flag == "--riflex") {
      g.req.attention.riflex = true;
      continue;
    }
    if (flag == "--random-weights") {
      g.random_weights = true;
      continue;
    }
    if (flag == "--keep-text-encoder") {
      g.req.keep_text_encoder = true;
      continue;
    }
    if (flag == "--offload") {
      g.req.offload = true;
      continue;
    }
    if (flag == "--cuda-graphs") {
      g.req.cuda_graphs = true;
      continue;
    }
    if (flag.rfind("--", 0) != 0 || i + 1 >= args.size()) {
      std::cerr << "longshot generate: " << (flag.rfind("--", 0) == 0 ? "flag '" + flag + "' needs a value" : "unexpected argument '" + flag + "'")
                << "\n" << kGenerateUsage << "\n";
      return 2;
    }
    if (!apply_value_flag(flag, args[++i], g)) {
      std::cerr << "longshot generate: unknown flag '" << flag << "'\n" << kGenerateUsage << "\n";
      return 2;
    }
  }
  if (!g.have_prompt) {
    std::cerr << "longshot generate: --prompt is required\n" << kGenerateUsage << "\n";
    return 2;
  }
  return 0;
}

// Resolves the model (failing before any work on a folder that lacks a component), checks the
// input files, and fills what the user left out with the model's defaults. `builtin`: the request
// names a built-in model.
model::ResolvedModel complete_request(GenerateArgs& g, bool& builtin) {
  auto& req = g.req;
#if !defined(LONGSHOT_WITH_FFMPEG)
  if (!g.out_path.empty()) throw ParameterError("out", "this build has no FFmpeg (LONGSHOT_WITH_FFMPEG=OFF); use --png-dir");
#endif
  if (req.model.empty() && req.dit_file.empty()) req.model = model::kBuiltinName;
  req.model = model::resolve_builtin_name(req.model);
  builtin = model::is_builtin_model(req.model);
  if (g.random_weights) req.model = random_weights_config(req.model);
  // Input files are stat()ed before anything opens them: a FIFO would block open() for good.
  if (!model::has_config(req.model) && std::filesystem::is_symlink(req.model) && !std::filesystem::exists(req.model))
    throw IoError("model file '" + req.model + "' is a symbolic link to '" +
                  std::filesystem::read_symlink(req.model).string() + "', which does not exist");
  if (!model::has_config(req.model) && std::filesystem::exists(req.model) && !std::filesystem::is_directory(req.model))
    io::require_regular_file(req.model, "model file");
  if (req.attention.adapter != "auto" && req.attention.adapter != "none" && std::filesystem::exists(req.attention.adapter))
    io::require_regular_file(req.attention.adapter, "adapter file");
  if (!req.text_embeddings.empty()) io::require_regular_file(req.text_embeddings, "text embeddings file");
  // The model resolved once here for its defaults (and to fail before any work on a folder that
  // lacks a component); the job resolves the same request again.
  model::ResolvedModel resolved = pipeline::resolve_request_model(req);
  // Per-model defaults for what the user left out.
  const auto& c = resolved.config;
  const bool pixel = c.spatial_stride == 1;
  if (!g.have_steps) req.steps = c.default_steps;
  if (!g.have_guidance) req.guidance = c.default_guidance;
  if (!g.have_shift) req.shift = c.default_shift;
  if (!g.have_negative) req.negative_prompt = c.default_negative_prompt;
  // The built-in model defaults to its training size; other pixel-space configs (tiny) stay small.
  if (!g.have_frames) req.frames = builtin ? model::kBuiltinFrames : pixel ? 16 : 81;
  if (g.size_text.empty()) {
    g.size_text = builtin ? std::to_string(model::kBuiltinSize) + "x" + std::to_string(model::kBuiltinSize)
                          : pixel ? "32x32" : "832x480";
  }
  const auto x = g.size_text.find('x');
  if (x == std::string::npos) throw ParameterError("size", "expected WxH, got '" + g.size_text + "'");
  req.width = parse_int32("size", g.size_text.substr(0, x));
  req.height = parse_int32("size", g.size_text.substr(x + 1));
  req.previews = false;
  req.record_masks = !g.trace_path.empty();
  return resolved;
}

// Fails on unwritable outputs before spending the compute: a missing folder, a device node or
// FIFO in the way, or an output that is an input (the weights) or another output.
void check_outputs(const GenerateArgs& g, const model::ResolvedModel& resolved, bool builtin) {
  const auto& req = g.req;
  for (const auto* p : {&g.out_path, &g.trace_path}) {
    if (p->empty()) continue;
    const auto dir = std::filesystem::path(*p).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir))
      throw IoError("cannot write '" + *p + "': folder '" + dir.string() + "' does not exist");
    io::require_replaceable(*p);
  }
  std::vector<io::NamedPath> inputs = {{"model", model::has_config(req.model) ? "" : req.model},
                                       {"text-embeddings", req.text_embeddings},
                                       {"dit", resolved.dit_weights},
                                       {"text-encoder", resolved.text_encoder},
                                       {"tokenizer", resolved.tokenizer},
                                       {"vae", resolved.vae}};
  if (req.attention.adapter != "auto" && req.attention.adapter != "none") inputs.push_back({"adapter", req.attention.adapter});
  if (model::has_config(req.model) && !model::find_config(req.model).default_weights.empty()) {
    const auto weights = model::find_config(req.model).default_weights;
    inputs.push_back({"model's weights", weights});
    if (builtin) inputs.push_back({"model's text encoder weights", model::builtin_text_path(weights)});
  }
  io::require_distinct_paths({{"out", g.out_path}, {"trace", g.trace_path}, {"png-dir", g.png_dir}}, inputs);
}

// What the job reported, for the export and the summary.
struct JobReport {
  VideoPtr video;
  double total_ms = 0, attention_ms = 0, mean_sparsity = 0, recall_sum = 0, encode_ms = 0, decode_ms = 0;
  int64_t peak_bytes = -1;
  std::string model_name, config_name;
  pipeline::AttentionSettings ran_attention;  // with the routed regime's parameters
  std::string routing;
  int recall_n = 0;
};

// The job's first event: the trace's grid, the attention it runs with, and the header line.
void on_job_started(const pipeline::JobStarted& s, const pipeline::GenerationRequest& req, attention::MaskTrace& trace,
                    JobReport& r) {
  trace.grid = s.grid;
  r.ran_attention = s.request.attention;
  r.routing = s.routing;
  if (!r.routing.empty()) {
    std::cerr << "longshot generate: regime " << r.routing << "\n";
    if (req.record_masks) trace.params = attention::resolve_params(attention::find_policy(r.ran_attention.mode), r.ran_attention.params);
  }
  r.model_name = s.model_name;
  r.config_name = s.config_name;
  std::cerr << "longshot generate: model " << (req.model.empty() ? s.model_name : req.model)
            << (s.config_name != s.model_name ? " (" + s.config_name + ")" : std::string()) << ", " << req.frames << " frames " << req.width << "x"
            << req.height << ", latent tokens " << s.grid.to_string() << " = " << s.grid.size() << ", "
            << req.steps << " " << s.request.sampler << " steps (shift " << req.shift << ", guidance " << req.guidance
            << "), mode " << req.attention.mode
            << (s.adapter.empty() ? std::string() : " with the mask adapter " + s.adapter) << "\n";
}

// One finished step: its masks into the trace, its recall, and the progress bar.
void on_step_finished(const pipeline::StepFinished& s, const pipeline::GenerationRequest& req, attention::MaskTrace& trace,
                      JobReport& r, bool tty) {
  if (req.record_masks)
    for (size_t l = 0; l < s.layer_masks.size(); ++l)
      if (s.layer_masks[l]) trace.add(*s.layer_masks[l], s.step, int(l));
  if (s.recall_estimate >= 0) r.recall_sum += s.recall_estimate, ++r.recall_n;
  const int width = 30, done = (s.step + 1) * width / s.num_steps;
  char line[256];
  std::snprintf(line, sizeof line, "[%s%s] step %d/%d  %.2f s/step  attention %.0f%%  sparsity %.1f%%  ETA %s",
                std::string(size_t(done), '#').c_str(), std::string(size_t(width - done), '.').c_str(), s.step + 1,
                s.num_steps, s.step_ms / 1000.0, s.step_ms > 0 ? 100.0 * s.attention_ms / s.step_ms : 0.0,
                100.0 * s.mean_sparsity, clock_text(s.eta_ms).c_str());
  std::cerr << (tty ? "\r" : "") << line << (tty ? "" : "\n") << std::flush;
}

// Runs the job on the Generator's worker with a progress bar; a signal cancels it. Returns 0 when
// it finished, 1 when it failed, 128 + signal when cancelled.
int run_with_progress(const pipeline::GenerationRequest& req, attention::MaskTrace& trace, JobReport& r, bool tty) {
  pipeline::Generator gen;
  gen.submit(req);
  r.ran_attention = req.attention;
  int exit_code = -1;
  bool cancel_sent = false;
  while (exit_code < 0) {
    if (InterruptGuard::signal_received() && !cancel_sent) {
      gen.cancel();
      cancel_sent = true;
    }
    auto ev = gen.events().wait_pop(100);
    if (!ev) continue;
    if (auto* s = std::get_if<pipeline::JobStarted>(&*ev)) {
      on_job_started(*s, req, trace, r);
    } else if (auto* st = std::get_if<pipeline::StepFinished>(&*ev)) {
      on_step_finished(*st, req, trace, r, tty);
    } else if (auto* f = std::get_if<pipeline::JobFinished>(&*ev)) {
      r.video = f->video;
      r.total_ms = f->total_ms;
      r.attention_ms = f->attention_ms;
      r.mean_sparsity = f->mean_sparsity;
      r.encode_ms = f->encode_ms;
      r.decode_ms = f->decode_ms;
      r.peak_bytes = f->peak_memory_bytes;
      exit_code = 0;
    } else if (auto* e = std::get_if<pipeline::JobFailed>(&*ev)) {
      std::cerr << (tty ? "\n" : "") << "longshot generate: error: " << e->message << "\n";
      exit_code = 1;
    } else if (auto* c = std::get_if<pipeline::JobCancelled>(&*ev)) {
      const int sig = InterruptGuard::signal_received();
      std::cerr << (tty ? "\n" : "") << "longshot generate: cancelled" << (sig ? std::string(" by ") + signal_name(sig) : "")
                << " after " << c->completed_steps << " steps; no file written\n";
      exit_code = 128 + (sig ? sig : 2);
    }
  }
  return exit_code;
}

#if defined(LONGSHOT_WITH_FFMPEG)
// The MP4 with its recipe (docs/models.md: `longshot generate --from` re-runs it), paths made
// absolute so that --from works from any folder. Returns the line for the summary.
std::string stage_mp4(const GenerateArgs& g, const model::ResolvedModel& resolved, const JobReport& r,
                      io::StagedOutputs& staged) {
  io::Mp4Options mp4{g.req.fps};
  pipeline::GenerationRequest recipe = g.req;
  recipe.attention = r.ran_attention;
  if (recipe.sampler.empty()) recipe.sampler = resolved.config.default_sampler;
  if (!model::has_config(recipe.model) && std::filesystem::exists(recipe.model))
    recipe.model = std::filesystem::absolute(recipe.model).lexically_normal().string();
  for (auto* path : {&recipe.dit_file, &recipe.text_encoder_file, &recipe.tokenizer_file,
                     &recipe.vae_file, &recipe.text_embeddings})
    if (!path->empty() && std::filesystem::exists(*path)) *path = std::filesystem::absolute(*path).lexically_normal().string();
  mp4.metadata = pipeline::recipe_tags(recipe, r.model_name, r.config_name);
  if (!r.routing.empty()) mp4.metadata["longshot_regime"] = r.routing;
  std::string codec;
  staged.write_file(g.out_path, [&](const std::string& staging) { codec = io::write_mp4(*r.video, staging, mp4); });
  return g.out_path + " (" + codec + ", " + std::to_string(r.video->frames) + " frames " +
         std::to_string(r.video->width) + "x" + std::to_string(r.video->height) + ")";
}
#endif

// Every output is staged first and renamed into place together at the end, so an error or a
// signal during the export leaves none of them (no MP4 without its trace, no half PNG set).
// Returns 0, or 128 + signal when a signal came during the export; `written` gets summary lines.
int export_outputs(const GenerateArgs& g, const model::ResolvedModel& resolved, const JobReport& r,
                   const attention::MaskTrace& trace, std::vector<std::string>& written) {
  io::StagedOutputs staged;
#if defined(LONGSHOT_WITH_FFMPEG)
  if (!g.out_path.empty()) written.push_back(stage_mp4(g, resolved, r, staged));
#else
  (void)resolved;
#endif
  if (!g.png_dir.empty()) {
    size_t frames = 0;
    staged.write_folder(g.png_dir,
                        [&](const std::string& staging) { frames = io::write_png_frames(*r.video, staging).size(); });
    written.push_back(g.png_dir + "/ (" + std::to_string(frames) + " PNG frames)");
  }
  if (!g.trace_path.empty()) {
    staged.write_file(g.trace_path, [&](const std::string& staging) { attention::write_mask_trace(trace, staging); });
    written.push_back(g.trace_path + " (" + std::to_string(trace.entries.size()) + " mask entries)");
  }
  // Fault injection for the tests: hold the export with every output staged, so that a signal can
  // be sent at that point (tests/cli/test_hardening_cli.cpp).
  if (const char* pause = std::getenv("LONGSHOT_FAULT_EXPORT_PAUSE_MS"); pause && *pause) {
    std::cerr << "longshot generate: export paused (LONGSHOT_FAULT_EXPORT_PAUSE_MS)\n" << std::flush;
    for (long ms = std::atol(pause); ms > 0 && !InterruptGuard::signal_received(); ms -= 10) ::usleep(10000);
  }
  if (const int sig = InterruptGuard::signal_received()) {
    std::cerr << "longshot generate: cancelled by " << signal_name(sig) << " during the export; no file written\n";
    return 128 + sig;  // `staged` removes what it holds
  }
  staged.commit();
  return 0;
}

void print_summary(const pipeline::GenerationRequest& req, const JobReport& r, const std::vector<std::string>& written) {
  std::printf("time            %.2f s (%.3f s/step)\n", r.total_ms / 1000.0, r.total_ms / 1000.0 / req.steps);
  std::printf("attention       %.2f s = %.1f%% of the run\n", r.attention_ms / 1000.0,
              r.total_ms > 0 ? 100.0 * r.attention_ms / r.total_ms : 0.0);
  // Two decimals: iso-sparsity comparisons (tools/eval_regimes.sh) differ by tenths of a point.
  std::printf("mean sparsity   %.2f%% (dense steps count as 0)\n", 100.0 * r.mean_sparsity);
  if (!r.routing.empty()) std::printf("regime          %s\n", r.routing.c_str());
  std::printf("text encoding   %.2f s     decoding %.2f s\n", r.encode_ms / 1000.0, r.decode_ms / 1000.0);
  if (r.peak_bytes >= 0) std::printf("peak memory     %.2f GiB (CUDA, allocated)\n", double(r.peak_bytes) / double(1ull << 30));
  else std::printf("peak memory     n/a (CPU)\n");
  if (req.max_gpu_memory > 0 || req.offload) {
    char cap[64] = "";
    if (req.max_gpu_memory > 0)
      std::snprintf(cap, sizeof cap, "%scap %.2f GiB", req.offload ? ", " : "", double(req.max_gpu_memory) / double(1ull << 30));
    std::printf("memory plan     %s%s\n", req.offload ? "offload (block swap)" : "", cap);
  }
  if (r.recall_n) std::printf("mean recall     %.3f (inspected layer %d)\n", r.recall_sum / r.recall_n, req.inspect_layer);
  for (const auto& w : written) std::printf("wrote           %s\n", w.c_str());
}

int run_generate(const std::vector<std::string>& args) {
  GenerateArgs g;
  if (const int usage = parse_generate_flags(args, g)) return usage;
  bool builtin = false;
  const model::ResolvedModel resolved = complete_request(g, builtin);
  check_outputs(g, resolved, builtin);

  attention::MaskTrace trace;
  if (g.req.record_masks) {
    trace.block_size = g.req.attention.block_size;
    trace.mode = g.req.attention.mode;
    trace.params = attention::resolve_params(attention::find_policy(g.req.attention.mode), g.req.attention.params);
    trace.ordering = attention::create_policy(g.req.attention.mode, g.req.attention.params)->ordering();
  }

  // Installed before the job starts and kept through the export: a signal at any point cancels.
  InterruptGuard interrupts;
  const bool tty = ::isatty(STDERR_FILENO);
  JobReport report;
  if (const int code = run_with_progress(g.req, trace, report, tty); code != 0) return code;
  if (tty) std::cerr << "\n";
  std::vector<std::string> written;
  if (const int code = export_outputs(g, resolved, report, trace, written); code != 0) return code;
  print_summary(g.req, report, written);
  return 0;
}

}  // namespace

Command generate_command() {
  return {"generate", "generate a video (text → DiT with sparse attention → MP4 / PNG / mask trace)",
          kGenerateUsage, run_generate};
}

}  // namespace longshot::cli

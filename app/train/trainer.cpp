// The training loops: run_training (the DiT and its text encoder) and run_distillation (a mask
// adapter), with their setup, log lines and previews. The pieces live in their own rooms:
// batches.h (data), objective.h (noising, loss, training attention), optimiser.h (AdamW, EMA,
// schedule), checkpoint.h (files).
//
// Sections: [setup] options, device, config · [preview] sampling with the EMA weights ·
// [train] run_training · [distill] run_distillation
#include "app/train/trainer.h"

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "app/train/batches.h"
#include "app/train/checkpoint.h"
#include "app/train/objective.h"
#include "app/train/optimiser.h"
#include "engine/common/error.h"
#include "engine/common/log.h"
#include "engine/data/tokenizer.h"
#include "engine/data/world.h"
#include "engine/eval/metrics.h"
#include "engine/model/builtin_model.h"
#include "engine/model/dit.h"
#include "engine/model/mask_adapter.h"
#include "engine/sampler/flow_matching.h"
#include "engine/sampler/sample_loop.h"

namespace longshot::train {

namespace fs = std::filesystem;

namespace {

// [setup] ---------------------------------------------------------------------------------------

torch::Device pick_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw ParameterError("device", "cuda requested but no GPU is visible");
    return torch::kCUDA;
  }
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  throw ParameterError("device", "expected auto, cpu or cuda, got '" + name + "'");
}

// The device `o` asks for, with its CPU thread count. TF32 matmuls on a GPU: the model is small and
// trains in fp32 weights; TF32 keeps Adam's updates exact. `tf32_convolutions` too for cuDNN.
torch::Device setup_device(const TrainOptions& o, bool tf32_convolutions) {
  const torch::Device device = pick_device(o.device);
  if (o.threads > 0) at::set_num_threads(o.threads);
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(true);
    if (tf32_convolutions) at::globalContext().setAllowTF32CuDNN(true);
  }
  return device;
}

model::DiTConfig training_config(const TrainOptions& o) {
  model::DiTConfig c = model::find_config(o.config);
  if (o.position_channels >= 0) c.position_channels = o.position_channels;
  return c;
}

void validate(const TrainOptions& o) {
  if (o.out_dir.empty()) throw ParameterError("out", "an output folder is required");
  if (o.batch < 1) throw ParameterError("batch", "must be >= 1");
  if (o.frames < 2 || o.size < 8) throw ParameterError("frames", "need frames >= 2 and size >= 8");
  if (!(o.lr > 0.0)) throw ParameterError("lr", "must be positive");
  if (o.ema_decay < 0.0 || o.ema_decay >= 1.0) throw ParameterError("ema", "must be in [0, 1)");
  if (o.cfg_drop < 0.0 || o.cfg_drop > 1.0) throw ParameterError("cfg-drop", "must be in [0, 1]");
  if (!(o.object_weight >= 0.0) || !(o.object_margin >= 0.0)) {
    throw ParameterError("object-weight", "the object weight and margin must be >= 0");
  }
  if (o.steps < 0) throw ParameterError("steps", "must be >= 0");
  if (o.position_channels != -1 && !model::position_channels_allowed(o.position_channels)) {
    throw ParameterError("position-channels", "must be 0 or 2");
  }
  if (o.block_size < 16 || o.block_size > 1024) throw ParameterError("block", "must be in [16, 1024]");
  if (!(o.sparse_weight >= 0.0)) throw ParameterError("sparse-weight", "must be >= 0");
  if (o.sparse_mode == "dense") {
    throw ParameterError("sparse-mode", "name a sparse attention mode (longshot --help lists them)");
  }
  if (o.sparse_mode.empty() && (!o.sparse_params.empty() || o.sparse_weight != 1.0)) {
    throw ParameterError("sparse-param", "--sparse-param / --sparse-weight need --sparse-mode");
  }
  if (!o.sparse_mode.empty() && !o.distill_mode.empty()) {
    throw ParameterError("sparse-mode", "--sparse-mode trains the model, --distill-mode an adapter: pick one");
  }
}

// `cfg` trains with the built-in text encoder on pixel clips of o's shape, or ParameterError.
void check_trainable(const model::DiTConfig& cfg, const model::TextNetConfig& tcfg, const TrainOptions& o) {
  if (cfg.text_dim != tcfg.dim || cfg.text_len != tcfg.length) {
    throw ParameterError("config", "'" + cfg.name + "' must take text_dim " + std::to_string(tcfg.dim) + " and text_len " +
                                       std::to_string(tcfg.length) + " (the built-in text encoder)");
  }
  if (cfg.in_channels != 3 || cfg.temporal_stride != 1 || cfg.spatial_stride != 1) {
    throw ParameterError("config", "'" + cfg.name + "' is not a pixel-space config (3 channels, strides 1)");
  }
  if (o.frames % cfg.patch[0] != 0 || o.size % cfg.patch[1] != 0 || o.size % cfg.patch[2] != 0) {
    throw ParameterError("frames", "frames and size must be multiples of the patch " + std::to_string(cfg.patch[0]) + "x" +
                                       std::to_string(cfg.patch[1]) + "x" + std::to_string(cfg.patch[2]));
  }
}

// Whether the run should end before another step: steps done, time limit, or a stop request.
bool run_over(const TrainOptions& o, int64_t step, double elapsed_s) {
  return step >= o.steps || (o.time_limit_s > 0.0 && elapsed_s >= o.time_limit_s) || (o.should_stop && o.should_stop());
}

// Seconds since construction.
class Clock {
 public:
  double operator()() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// [preview] -------------------------------------------------------------------------------------

Video sample_video(model::WanDiTImpl& dit, model::TextNetImpl& text, const data::Tokenizer& tok, const std::string& prompt,
                   int frames, int size, int steps, double guidance, double shift, uint64_t seed, torch::Device device) {
  torch::NoGradGuard no_grad;
  const int64_t len = text.config().length;
  const auto ctx = text.forward(tok.encode_tensor(prompt, len).to(device));
  const auto unc = text.forward(tok.encode_tensor("", len).to(device));
  // The generation loop's sampler and loop (Euler on the built-in model's grid), every layer dense
  // through torch's attention; guidance always applied, as in the runs the previews track.
  sampler::FlowMatchEuler schedule(steps, shift);
  const model::AttentionPlan plan = training_attention();  // every step, both forwards
  sampler::SampleHooks hooks;
  hooks.cond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit.forward(x, t, ctx, plan); };
  hooks.uncond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit.forward(x, t, unc, plan); };
  hooks.guidance = guidance;
  const auto x = sampler::sample(schedule, sampler::seeded_noise({1, 3, frames, size, size}, seed, device), hooks).x;
  return data::tensor_to_video(x[0].clamp(-1, 1));
}

// Every 4th frame side by side, binary PPM (no image library needed on the GPU machine).
void write_contact_sheet(const Video& v, const std::string& path) {
  const int cols = (v.frames + 3) / 4;
  const int W = cols * v.width, H = v.height;
  std::ofstream out(path, std::ios::binary);
  if (!out) throw IoError("cannot write preview '" + path + "'");
  out << "P6\n" << W << " " << H << "\n255\n";
  for (int y = 0; y < H; ++y) {
    for (int c = 0; c < cols; ++c) {
      const uint8_t* row = v.frame(c * 4) + static_cast<size_t>(y) * v.width * 3;
      out.write(reinterpret_cast<const char*>(row), v.width * 3);
    }
  }
}

// Samples the fixed preview prompts (captions of held-out world seeds) with the EMA weights into
// contact sheets preview_<step>_<k>.ppm, logging each one's prompt adherence.
void write_previews(const TrainOptions& o, const model::DiTConfig& cfg, const model::TextNetConfig& tcfg,
                    torch::Device device, const std::vector<torch::Tensor>& ema, int64_t step, std::ofstream& log) {
  std::vector<std::string> prompts;
  for (uint64_t s : {900001ull, 900002ull}) prompts.push_back(data::generate_clip(s, 2, 8, 8).caption);
  const data::Tokenizer tok;
  model::WanDiT pdit(cfg);
  model::TextNet ptext(tcfg);
  pdit->to(device);
  ptext->to(device);
  auto pparams = all_parameters(*pdit, *ptext);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < pparams.size(); ++i) pparams[i].param.copy_(ema[i]);
  }
  pdit->eval();
  ptext->eval();
  for (size_t k = 0; k < prompts.size(); ++k) {
    const Video video = sample_video(*pdit, *ptext, tok, prompts[k], o.frames, o.size, o.preview_steps,
                                     cfg.default_guidance, cfg.default_shift, 1234 + k, device);
    const auto a = eval::prompt_adherence(video, prompts[k]);
    const std::string path = o.out_dir + "/preview_" + std::to_string(step) + "_" + std::to_string(k) + ".ppm";
    write_contact_sheet(video, path);
    spdlog::info("preview step {}: adherence {:.1f}% (presence {:.0f}%, size {:.0f}%, motion {:.0f}%) '{}' → {}", step,
                 100 * a.accuracy, 100 * a.presence, 100 * a.size, 100 * a.motion, prompts[k], path);
    log << "preview " << step << " " << k << " adherence " << a.accuracy << " \"" << prompts[k] << "\"\n";
  }
  log.flush();
}

// [train] ---------------------------------------------------------------------------------------

// A dense layer that is not differentiable would leave attention untrained without a sound: the
// first block's q projection must get a gradient from `loss`.
void check_attention_gradient(const torch::Tensor& loss, const std::vector<Named>& params) {
  for (const auto& p : params) {
    if (p.name != "dit.blocks.0.self_attn.q.weight") continue;
    const auto g = torch::autograd::grad({loss}, {p.param}, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    if (!g[0].defined() || g[0].abs().sum().item<double>() == 0.0) {
      throw Error("the DiT's self-attention passes no gradient to " + p.name +
                  " (WanDiT::forward must be differentiable through the dense attention path)");
    }
  }
}

// Loss sums between two log lines, and the line itself.
struct LossWindow {
  double loss = 0.0, mse = 0.0;  // mse: unweighted, comparable across object weights
  double gap = 0.0;              // sparsity-aware runs: the sparse-vs-dense term
  int n = 0;
  double start_s = 0.0;

  void log_line(int64_t step, double lr, double now_s, bool sparse, Prefetcher& prefetch, std::ofstream& log) {
    const double mean = loss / n;
    const auto [wait, render] = prefetch.take_times();
    const double window = now_s - start_s;
    start_s = now_s;
    // Where the time goes: waiting for data means the renderer (CPU threads) is the bottleneck.
    spdlog::info("step {} loss {:.5f} mse {:.5f}{} lr {:.2e} {:.1f} s ({:.1f} steps/s, data wait {:.0f}%, render {:.0f} ms/batch)",
                 step, mean, mse / n, sparse ? fmt::format(" sparse gap {:.5f}", gap / n) : std::string(), lr, now_s,
                 n / std::max(window, 1e-9), 100.0 * wait / std::max(window, 1e-9), 1000.0 * render / std::max(1, n));
    log << "step " << step << " loss " << mean << " mse " << mse / n;
    if (sparse) log << " gap " << gap / n;
    log << " lr " << lr << " time " << now_s << "\n";
    log.flush();
    loss = mse = gap = 0.0;
    n = 0;
  }
};

void log_training_start(const TrainOptions& o, const model::DiTConfig& cfg, const Optimiser& opt, torch::Device device,
                        bool sparse, const std::string& sparse_text) {
  int64_t count = 0;
  for (const auto& p : opt.params()) count += p.param.numel();
  spdlog::info("training {} ({} parameters with the text encoder) on {}, batch {} of {}x{}x{} clips", cfg.name, count,
               device.str(), o.batch, o.frames, o.size, o.size);
  if (sparse) {
    spdlog::info("sparsity-aware: + {} x object-weighted MSE between the velocity under {} ({}, block {}) and the dense one",
                 o.sparse_weight, o.sparse_mode, sparse_text.empty() ? "defaults" : sparse_text, o.block_size);
  }
}

}  // namespace

int64_t run_training(const TrainOptions& o) {
  validate(o);
  const model::DiTConfig cfg = training_config(o);
  const model::TextNetConfig tcfg = model::builtin_text_config();
  check_trainable(cfg, tcfg, o);
  fs::create_directories(o.out_dir);
  const torch::Device device = setup_device(o, /*tf32_convolutions=*/true);

  // Sparsity-aware training: a second forward under the mode's mask, pulled to the dense one.
  std::unique_ptr<attention::MaskPolicy> sparse_policy;
  std::string sparse_text;
  if (!o.sparse_mode.empty()) sparse_policy = make_policy(o.sparse_mode, o.sparse_params, sparse_text);

  torch::manual_seed(o.seed);
  model::WanDiT dit(cfg);
  dit->init_random(o.seed);
  model::TextNet text(tcfg);
  dit->to(device);
  text->to(device);
  dit->train();
  text->train();
  Optimiser opt(all_parameters(*dit, *text), o.weight_decay);
  int64_t step = 0;
  if (o.resume) {
    const int64_t s = load_checkpoint(o.out_dir, opt);
    if (s >= 0) {
      step = s;
      spdlog::info("resumed from '{}' at step {}", o.out_dir, step);
    }
  }
  log_training_start(o, cfg, opt, device, sparse_policy != nullptr, sparse_text);

  std::ofstream log(o.out_dir + "/train.log", std::ios::app);
  if (!log) throw IoError("cannot write '" + o.out_dir + "/train.log'");
  const Clock elapsed;
  auto save = [&] { save_checkpoint(o.out_dir, opt, step, cfg.name); };
  auto preview = [&] { write_previews(o, cfg, tcfg, device, opt.ema(), step, log); };

  Prefetcher prefetch(o, step * o.batch, tcfg.length);
  LossWindow window;
  bool checked_gradients = false;
  auto last_save = std::chrono::steady_clock::now();
  while (!run_over(o, step, elapsed())) {
    Batch batch = prefetch.pop();
    const auto x0 = batch.x0.to(device, /*non_blocking=*/true);
    const auto ids = batch.ids.to(device);
    const Noised noised = noise_batch(x0, o.shift);
    const auto ctx = text->forward(ids);
    const auto pred = dit->forward(noised.xt, noised.sigma * 1000.0, ctx, training_attention());
    // Weighted MSE, normalised by the weights' mean: equal to the plain MSE when object_weight = 0.
    const auto weight = batch.weight.to(device, /*non_blocking=*/true);
    const auto sq = (pred - noised.target).pow(2);
    auto loss = weighted_mean(sq, weight);
    if (!checked_gradients) {
      // On the dense term alone: a sparsity-aware run's masked pass reaches q on its own.
      check_attention_gradient(loss, opt.params());
      checked_gradients = true;
    }
    if (sparse_policy) {
      // Both passes get the gradient of their gap: the sparse one learns to follow dense, and the
      // dense one to need less of what the mask drops (its own flow-matching term keeps it honest).
      const auto sparse = masked_training_attention(*sparse_policy, o.block_size, step, false);
      const auto gap = weighted_mean((dit->forward(noised.xt, noised.sigma * 1000.0, ctx, sparse) - pred).pow(2), weight);
      window.gap += gap.item<double>();
      loss = loss + o.sparse_weight * gap;
    }
    const double lr = optimizer_step(loss, opt, step, o, elapsed);
    window.loss += loss.item<double>();
    window.mse += sq.detach().mean().item<double>();
    ++window.n;
    if (step % o.log_every == 0) window.log_line(step, lr, elapsed(), sparse_policy != nullptr, prefetch, log);
    const bool time_save = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save).count() > 60.0;
    if ((o.save_every > 0 && step % o.save_every == 0) || time_save) {
      save();
      last_save = std::chrono::steady_clock::now();
    }
    if (o.preview_every > 0 && step % o.preview_every == 0) preview();
  }
  save();
  spdlog::info("stopped at step {} after {:.1f} s; checkpoint in '{}'", step, elapsed(), o.out_dir);
  log << "stop " << step << " time " << elapsed() << "\n";
  log.flush();
  if (o.preview_every > 0) preview();
  if (!o.export_path.empty()) export_weights(o.out_dir, cfg.name, o.export_path);
  return step;
}

// [distill] -------------------------------------------------------------------------------------

namespace {

// The frozen model: `teacher_dir`'s checkpoint EMA weights, on `device`, in eval mode.
void load_teacher(const std::string& teacher_dir, const model::DiTConfig& cfg, model::WanDiT& dit, model::TextNet& text,
                  torch::Device device) {
  const std::string path = teacher_dir + "/" + kCheckpointFiles[1];
  if (!fs::exists(path)) throw IoError("teacher checkpoint '" + path + "' not found");
  {
    io::SafetensorsFile file(path);
    torch::NoGradGuard no_grad;
    for (auto& p : all_parameters(*dit, *text)) load_checked(file, "teacher '" + path + "' (config '" + cfg.name + "')", p.name, p.param);
  }
  for (auto& p : all_parameters(*dit, *text)) p.param.set_requires_grad(false);
  dit->to(device);
  text->to(device);
  dit->eval();
  text->eval();
}

// The adapter's factors as trainable parameters "adapter.<i>".
std::vector<Named> adapter_parameters(model::MaskAdapter& adapter) {
  std::vector<Named> params;
  const auto ts = adapter.tensors();
  for (size_t i = 0; i < ts.size(); ++i) {
    ts[i].set_requires_grad(true);
    params.push_back({"adapter." + std::to_string(i), ts[i]});
  }
  return params;
}

// Writes `adapter` with its factors replaced by their EMA (`ema`, in tensors() order: per layer
// four projections, each A then B) to `path`.
void export_ema_adapter(const model::MaskAdapter& adapter, const std::vector<torch::Tensor>& ema, const std::string& path,
                        int64_t step) {
  model::MaskAdapter out = adapter;
  out.a.clear();
  out.b.clear();
  for (size_t l = 0; l < adapter.a.size(); ++l) {
    std::array<torch::Tensor, 4> a, b;
    for (size_t p = 0; p < 4; ++p) {
      a[p] = ema[(l * 4 + p) * 2];
      b[p] = ema[(l * 4 + p) * 2 + 1];
    }
    out.a.push_back(a);
    out.b.push_back(b);
  }
  model::save_adapter(out, path);
  spdlog::info("exported the EMA adapter of step {} → '{}'", step, path);
}

}  // namespace

int64_t run_distillation(const TrainOptions& o) {
  validate(o);
  if (o.distill_mode.empty() || o.distill_mode == "dense") {
    throw ParameterError("distill-mode", "name a sparse attention mode (longshot --help lists them)");
  }
  if (o.teacher_dir.empty()) throw ParameterError("teacher", "a checkpoint folder (its EMA weights) is required");
  const model::DiTConfig cfg = training_config(o);
  const model::TextNetConfig tcfg = model::builtin_text_config();
  std::string params_text;
  auto policy = make_policy(o.distill_mode, o.distill_params, params_text);
  fs::create_directories(o.out_dir);
  const torch::Device device = setup_device(o, /*tf32_convolutions=*/false);

  model::WanDiT dit(cfg);
  model::TextNet text(tcfg);
  load_teacher(o.teacher_dir, cfg, dit, text, device);

  auto adapter = std::make_shared<model::MaskAdapter>(model::MaskAdapter::fresh(cfg, o.rank, o.seed));
  adapter->mode = o.distill_mode;
  adapter->params = params_text;
  adapter->block_size = o.block_size;
  adapter->to(device, torch::kFloat);
  // No weight decay: it would pull the adapter to the identity.
  Optimiser opt(adapter_parameters(*adapter), 0.0);
  const std::string state_path = o.out_dir + "/" + kAdapterState;
  int64_t step = 0;
  if (o.resume) {
    const int64_t s = load_adapter_state(state_path, o.teacher_dir, *adapter, opt);
    if (s >= 0) {
      step = s;
      spdlog::info("resumed the adapter from '{}' at step {}", state_path, step);
    }
  }
  dit->adapter = adapter;
  spdlog::info("distilling a rank-{} mask adapter for {} ({}) block {} from '{}' on {}, batch {}", o.rank, o.distill_mode,
               params_text.empty() ? "defaults" : params_text, o.block_size, o.teacher_dir, device.str(), o.batch);

  std::ofstream log(o.out_dir + "/train.log", std::ios::app);
  if (!log) throw IoError("cannot write '" + o.out_dir + "/train.log'");
  const Clock elapsed;
  auto save = [&] { save_adapter_state(state_path, o.teacher_dir, *adapter, opt, step); };
  Prefetcher prefetch(o, step * o.batch, tcfg.length);
  double loss_sum = 0.0, bare_loss = 0.0;
  int loss_n = 0;
  auto last_save = std::chrono::steady_clock::now();
  while (!run_over(o, step, elapsed())) {
    Batch batch = prefetch.pop();
    const auto x0 = batch.x0.to(device, true);
    const auto ids = batch.ids.to(device);
    const auto weight = batch.weight.to(device, true);
    const Noised noised = noise_batch(x0, o.shift);
    const auto t = noised.sigma * 1000.0;
    const bool log_step = (step + 1) % o.log_every == 0;
    auto masked = [&](bool use_adapter) { return masked_training_attention(*policy, o.block_size, step, use_adapter); };
    torch::Tensor ctx, dense;
    {
      torch::NoGradGuard no_grad;
      ctx = text->forward(ids);
      dense = dit->forward(noised.xt, t, ctx, training_attention());
      if (log_step) {
        // The mask without the adapter on the same batch: where the sparse mode starts from.
        bare_loss = weighted_mean((dit->forward(noised.xt, t, ctx, masked(false)) - dense).pow(2), weight).item<double>();
      }
    }
    const auto pred = dit->forward(noised.xt, t, ctx, masked(true));
    const auto loss = weighted_mean((pred - dense).pow(2), weight);
    const double lr = optimizer_step(loss, opt, step, o, elapsed);
    loss_sum += loss.item<double>();
    ++loss_n;
    if (log_step) {
      spdlog::info("step {} adapter loss {:.6f} (this batch without the adapter {:.6f}) lr {:.2e} {:.1f} s", step,
                   loss_sum / loss_n, bare_loss, lr, elapsed());
      log << "distill " << step << " loss " << loss_sum / loss_n << " bare " << bare_loss << " time " << elapsed() << "\n";
      log.flush();
      loss_sum = 0.0;
      loss_n = 0;
    }
    if ((o.save_every > 0 && step % o.save_every == 0) ||
        std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save).count() > 60.0) {
      save();
      last_save = std::chrono::steady_clock::now();
    }
  }
  save();
  spdlog::info("stopped at step {} after {:.1f} s; adapter state in '{}'", step, elapsed(), state_path);
  if (!o.export_path.empty()) export_ema_adapter(*adapter, opt.ema(), o.export_path, step);
  return step;
}

}  // namespace longshot::train

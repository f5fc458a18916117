// The training loop and its pieces.
//
// Sections: [batches] on-the-fly clips, prefetched on a worker thread · [state] parameters, EMA,
// AdamW moments and their checkpoint files · [preview] sampling with the EMA weights · [loop]
#include "app/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/common/parse.h"
#include "engine/data/tokenizer.h"
#include "engine/data/world.h"
#include "engine/eval/metrics.h"
#include "engine/io/safetensors.h"
#include "engine/attention/mask_policy.h"
#include "engine/model/builtin_model.h"
#include "engine/model/mask_adapter.h"
#include "engine/model/dit.h"
#include "engine/sampler/flow_matching.h"
#include "engine/sampler/sample_loop.h"

namespace longshot::train {

namespace fs = std::filesystem;

namespace {

// [batches] -------------------------------------------------------------------------------------

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Batch {
  torch::Tensor x0;   // [B, 3, T, S, S] in [−1, 1]
  torch::Tensor ids;  // [B, L] int64
  torch::Tensor weight;  // [B, 1, T, S, S] loss weight per pixel: 1 + object_weight · footprint
};

// Sample i of the whole run is clip mix(seed, i): the data stream is the same after a resume.
Batch make_batch(int64_t first, const TrainOptions& o, const data::Tokenizer& tok, int64_t text_len, int threads) {
  Batch b;
  b.x0 = torch::empty({o.batch, 3, o.frames, o.size, o.size});
  b.ids = torch::empty({o.batch, text_len}, torch::kInt64);
  b.weight = torch::empty({o.batch, 1, o.frames, o.size, o.size});
  // Plain threads, clip i on thread i mod n: at::parallel_for ran serially on this (non-main)
  // thread with the GPU LibTorch's OpenMP backend, which starved the GPU (72% data wait).
  auto render = [&](int64_t begin, int64_t stride) {
    for (int64_t i = begin; i < o.batch; i += stride) {
      const uint64_t seed = mix(o.seed, static_cast<uint64_t>(first + i));
      const data::Clip clip = data::generate_clip(seed, o.frames, o.size, o.size);
      b.x0[i].copy_(data::video_to_tensor(clip.video));
      b.weight[i][0].copy_(data::object_footprint(clip.spec, clip.trajectory, o.size, o.size, o.object_margin)
                               .mul_(o.object_weight)
                               .add_(1.0));
      const bool drop = static_cast<double>(mix(seed, 7) % 10000) < o.cfg_drop * 10000.0;
      const auto ids = tok.encode(drop ? std::string() : clip.caption, text_len);
      std::copy(ids.begin(), ids.end(), b.ids[i].data_ptr<int64_t>());
    }
  };
  const int64_t n = std::clamp<int64_t>(threads, 1, o.batch);
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  for (int64_t t = 1; t < n; ++t) {
    pool.emplace_back([&, t] {
      try {
        render(t, n);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    });
  }
  try {
    render(0, n);
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return b;
}

// Produces batches ahead of the optimizer on its own thread (rendering is CPU work, the step may
// be GPU work). The destructor stops and joins it.
class Prefetcher {
 public:
  Prefetcher(const TrainOptions& o, int64_t first_sample, int64_t text_len) : o_(o), next_(first_sample), len_(text_len) {
    worker_ = std::thread([this] { run(); });
  }
  ~Prefetcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  Batch pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto t0 = std::chrono::steady_clock::now();
    cv_.wait(lock, [&] { return !queue_.empty() || error_; });
    wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (queue_.empty()) std::rethrow_exception(error_);
    Batch b = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return b;
  }
  // Seconds the optimizer waited for data, and seconds spent rendering, since the last call.
  std::pair<double, double> take_times() {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto t = std::make_pair(wait_s_, render_s_);
    wait_s_ = render_s_ = 0.0;
    return t;
  }

 private:
  void run() {
    try {
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(mutex_);
          cv_.wait(lock, [&] { return stop_ || queue_.size() < 4; });
          if (stop_) return;
        }
        const auto t0 = std::chrono::steady_clock::now();
        Batch b = make_batch(next_, o_, tok_, len_, render_threads_);
        next_ += o_.batch;
        std::lock_guard<std::mutex> lock(mutex_);
        render_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        queue_.push_back(std::move(b));
        cv_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      cv_.notify_all();
    }
  }

  const TrainOptions o_;
  // Every core but one (the optimizer's) renders; --threads overrides.
  const int render_threads_ = o_.threads > 0 ? o_.threads
                                             : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1);
  int64_t next_;
  int64_t len_;
  data::Tokenizer tok_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  double wait_s_ = 0.0, render_s_ = 0.0;
  bool stop_ = false;
  std::thread worker_;
};

// [state] ---------------------------------------------------------------------------------------

struct Named {
  std::string name;
  torch::Tensor param;
};

std::vector<Named> all_parameters(model::WanDiTImpl& dit, model::TextNetImpl& text) {
  std::vector<Named> out;
  for (auto& p : dit.named_parameters()) out.push_back({"dit." + p.key(), p.value()});
  for (auto& p : text.named_parameters()) out.push_back({"text." + p.key(), p.value()});
  return out;
}

const char* kFiles[] = {"model.safetensors", "ema.safetensors", "adam_m.safetensors", "adam_v.safetensors"};

// Four files of ≤ ~12 MB each (the device tool brings back files up to 16 MB), all stamped with the
// step so a resume can tell a torn checkpoint.
void save_checkpoint(const std::string& dir, const std::vector<Named>& params, const std::vector<torch::Tensor>& ema,
                     const std::vector<torch::Tensor>& m, const std::vector<torch::Tensor>& v, int64_t step,
                     const std::string& config) {
  const std::vector<const std::vector<torch::Tensor>*> sets = {nullptr, &ema, &m, &v};
  for (size_t f = 0; f < 4; ++f) {
    std::map<std::string, torch::Tensor> tensors;
    for (size_t i = 0; i < params.size(); ++i) {
      tensors[params[i].name] = (sets[f] ? (*sets[f])[i] : params[i].param).detach().to(torch::kCPU, torch::kFloat);
    }
    io::write_safetensors(dir + "/" + kFiles[f], tensors, {{"step", std::to_string(step)}, {"longshot.config", config}});
  }
}

// Copies `file`'s tensor `name` into `dst`: IoError naming the tensor when it is absent, ShapeError
// naming `what` (the file) and the tensor when its shape is not dst's. The one exception widens:
// a patch embedding with fewer input channels (a checkpoint from before position planes) fills
// dst's leading channels, and the rest start at zero.
void load_checked(io::SafetensorsFile& file, const std::string& what, const std::string& name, torch::Tensor& dst) {
  const auto& info = file.info(name);
  auto shape = info.shape;
  const std::string patch = "patch_embedding.weight";
  const bool widen = name.size() >= patch.size() && name.compare(name.size() - patch.size(), patch.size(), patch) == 0 &&
                     shape.size() == 5 && dst.dim() == 5 && shape[1] < dst.size(1);
  if (widen) shape[1] = dst.size(1);
  if (widen && shape == dst.sizes().vec()) {
    dst.zero_();
    dst.narrow(1, 0, info.shape[1]).copy_(file.load(name, torch::kFloat));
    spdlog::info("{}: '{}' widened from {} to {} input channels (position planes start at zero)", what, name,
                 info.shape[1], dst.size(1));
    return;
  }
  if (info.shape != dst.sizes().vec()) {
    throw ShapeError(what + ": tensor '" + name + "' has shape " + c10::str(c10::IntArrayRef(info.shape)) +
                     ", the model needs " + c10::str(dst.sizes()));
  }
  dst.copy_(file.load(name, torch::kFloat));
}

// Returns the checkpoint's step, or −1 when `dir` has none.
int64_t load_checkpoint(const std::string& dir, std::vector<Named>& params, std::vector<torch::Tensor>& ema,
                        std::vector<torch::Tensor>& m, std::vector<torch::Tensor>& v) {
  if (!fs::exists(dir + "/" + kFiles[0])) return -1;
  int64_t step = -1;
  std::vector<std::vector<torch::Tensor>*> sets = {nullptr, &ema, &m, &v};
  torch::NoGradGuard no_grad;
  for (size_t f = 0; f < 4; ++f) {
    const std::string path = dir + "/" + kFiles[f];
    io::SafetensorsFile file(path);
    const auto it = file.metadata().find("step");
    if (it == file.metadata().end()) throw IoError("checkpoint file '" + path + "' has no 'step' metadata");
    // Strictly a step count: "-5", "1e3" or "12abc" is a damaged file, not step −5, 1 or 12.
    int64_t s = 0;
    if (!parse_int64(it->second, s, 0))
      throw IoError("checkpoint file '" + path + "' has 'step' metadata '" + it->second.substr(0, 40) +
                    "', not a step count (an integer >= 0)");
    if (step >= 0 && s != step) throw IoError("checkpoint '" + dir + "' is torn: '" + path + "' is from step " + it->second);
    step = s;
    for (size_t i = 0; i < params.size(); ++i) {
      load_checked(file, "checkpoint '" + path + "'", params[i].name, sets[f] ? (*sets[f])[i] : params[i].param);
    }
  }
  return step;
}

// AdamW (decoupled weight decay on matrices only), bias-corrected.
void adamw_step(std::vector<Named>& params, std::vector<torch::Tensor>& m, std::vector<torch::Tensor>& v, int64_t step,
                double lr, double wd) {
  constexpr double b1 = 0.9, b2 = 0.99, eps = 1e-8;
  torch::NoGradGuard no_grad;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(step)), c2 = 1.0 - std::pow(b2, static_cast<double>(step));
  for (size_t i = 0; i < params.size(); ++i) {
    auto& p = params[i].param;
    if (!p.grad().defined()) continue;
    const auto& g = p.grad();
    m[i].mul_(b1).add_(g, 1.0 - b1);
    v[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    if (p.dim() >= 2 && wd > 0.0) p.mul_(1.0 - lr * wd);
    p.addcdiv_(m[i] / c1, (v[i] / c2).sqrt_().add_(eps), -lr);
  }
}

// mean(w · e) / mean(w), w broadcast over e's channels: the object-weighted loss (the plain mean
// when every weight is 1).
torch::Tensor weighted_mean(const torch::Tensor& e, const torch::Tensor& w) { return (e * w).mean() / w.mean(); }

// The learning rate at `step`: linear warm-up, flat, then linear decay to 0.1x over the last quarter
// of the run (by steps, or by this run's time limit unless the schedule spans several resumed runs).
double scheduled_lr(const TrainOptions& o, int64_t step, double elapsed_s) {
  const double by_time = o.time_limit_s > 0.0 && !o.lr_by_steps ? elapsed_s / o.time_limit_s : 0.0;
  const double progress = std::max(static_cast<double>(step) / std::max<int64_t>(1, o.steps), by_time);
  const double warm = std::min(1.0, static_cast<double>(step) / std::max(1, o.warmup));
  const double decay = progress < 0.75 ? 1.0 : std::max(0.1, 1.0 - 0.9 * (progress - 0.75) / 0.25);
  return o.lr * warm * decay;
}

// EMA with the warm-up decay min(max_decay, (1 + n) / (10 + n)).
void ema_update(std::vector<torch::Tensor>& ema, const std::vector<Named>& params, int64_t step, double max_decay) {
  torch::NoGradGuard no_grad;
  const double d = std::min(max_decay, (1.0 + step) / (10.0 + step));
  for (size_t i = 0; i < params.size(); ++i) ema[i].mul_(d).add_(params[i].param.detach(), 1.0 - d);
}

// One optimizer step on `loss`: gradients cleared, backward, clipped to norm 1, AdamW at the
// scheduled learning rate of the new step (weight decay `wd`), EMA. Returns that learning rate.
double optimizer_step(const torch::Tensor& loss, std::vector<Named>& params, std::vector<torch::Tensor>& m,
                      std::vector<torch::Tensor>& v, std::vector<torch::Tensor>& ema, int64_t& step,
                      const TrainOptions& o, const std::function<double()>& elapsed_s, double wd) {
  for (auto& p : params) p.param.mutable_grad() = torch::Tensor();
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : params) grads.push_back(p.param);
  torch::nn::utils::clip_grad_norm_(grads, 1.0);
  ++step;
  const double lr = scheduled_lr(o, step, elapsed_s());
  adamw_step(params, m, v, step, lr, wd);
  ema_update(ema, params, step, o.ema_decay);
  return lr;
}

// Every layer dense through torch's own attention: differentiable (the attention core's dense
// path is inference-only) and SDPA on the GPU.
model::AttentionControl training_attention() {
  model::AttentionControl control;
  control.torch_dense = true;
  control.measure_time = false;
  return control;
}

constexpr int kMaskSteps = 20;  // the built-in model's sampling steps: the mask schedule trained on

// A sparse mode's mask through the differentiable path (SDPA with the token-expanded mask). Masks
// that depend on the sampling step (dfs refresh/cache, lvsa rotation) see every step of a 20-step
// run in turn, each scored afresh on the Q/K of this forward (the policy is reset), as inference
// would build it.
model::AttentionControl masked_training_attention(attention::MaskPolicy& policy, int64_t block_size, int64_t step,
                                                  bool use_adapter) {
  policy.reset();
  model::AttentionControl control = training_attention();
  control.torch_dense = false;
  control.policy = &policy;
  control.block_size = block_size;
  control.differentiable_masks = true;
  control.use_adapter = use_adapter;
  control.step = static_cast<int>(step % kMaskSteps);
  control.num_steps = kMaskSteps;
  return control;
}

// The policy of `mode` with "k=v" parameters; `text` gets them joined by commas.
std::unique_ptr<attention::MaskPolicy> make_policy(const std::string& mode, const std::vector<std::string>& params,
                                                   std::string& text) {
  attention::ParamValues values;
  text.clear();
  for (const auto& kv : params) {
    attention::parse_param_assignment(kv, values);  // ParameterError naming a malformed k=v
    text += (text.empty() ? "" : ",") + kv;
  }
  return attention::create_policy(mode, values);  // ParameterError: unknown mode / bad value
}

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
  model::AttentionControl control;  // one per step, shared by its two forwards
  sampler::SampleHooks hooks;
  hooks.cond = [&](const torch::Tensor& x, const torch::Tensor& t, int) {
    control = training_attention();
    return dit.forward(x, t, ctx, &control);
  };
  hooks.uncond = [&](const torch::Tensor& x, const torch::Tensor& t, int) { return dit.forward(x, t, unc, &control); };
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

torch::Device pick_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw ParameterError("device", "cuda requested but no GPU is visible");
    return torch::kCUDA;
  }
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  throw ParameterError("device", "expected auto, cpu or cuda, got '" + name + "'");
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

}  // namespace

// [loop] ----------------------------------------------------------------------------------------

int64_t run_training(const TrainOptions& o) {
  validate(o);
  model::register_builtin_model();
  const model::DiTConfig cfg = training_config(o);
  const model::TextNetConfig tcfg = model::builtin_text_config();
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
  fs::create_directories(o.out_dir);
  const torch::Device device = pick_device(o.device);
  if (o.threads > 0) at::set_num_threads(o.threads);
  if (device.is_cuda()) {
    // TF32 matmuls: the model is small and trains in fp32 weights; TF32 keeps Adam's updates exact.
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }

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
  auto params = all_parameters(*dit, *text);
  std::vector<torch::Tensor> ema, m, v;
  for (auto& p : params) {
    ema.push_back(p.param.detach().clone());
    m.push_back(torch::zeros_like(p.param));
    v.push_back(torch::zeros_like(p.param));
  }
  int64_t step = 0;
  if (o.resume) {
    const int64_t s = load_checkpoint(o.out_dir, params, ema, m, v);
    if (s >= 0) {
      step = s;
      spdlog::info("resumed from '{}' at step {}", o.out_dir, step);
    }
  }
  int64_t count = 0;
  for (auto& p : params) count += p.param.numel();
  spdlog::info("training {} ({} parameters with the text encoder) on {}, batch {} of {}x{}x{} clips", cfg.name, count,
               device.str(), o.batch, o.frames, o.size, o.size);
  if (sparse_policy) {
    spdlog::info("sparsity-aware: + {} x object-weighted MSE between the velocity under {} ({}, block {}) and the dense one",
                 o.sparse_weight, o.sparse_mode, sparse_text.empty() ? "defaults" : sparse_text, o.block_size);
  }

  std::ofstream log(o.out_dir + "/train.log", std::ios::app);
  if (!log) throw IoError("cannot write '" + o.out_dir + "/train.log'");
  const data::Tokenizer tok;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  // Fixed preview prompts: captions of held-out world seeds.
  std::vector<std::string> preview_prompts;
  for (uint64_t s : {900001ull, 900002ull}) preview_prompts.push_back(data::generate_clip(s, 2, 8, 8).caption);

  auto save = [&] { save_checkpoint(o.out_dir, params, ema, m, v, step, cfg.name); };
  auto preview = [&] {
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
    for (size_t k = 0; k < preview_prompts.size(); ++k) {
      const Video video = sample_video(*pdit, *ptext, tok, preview_prompts[k], o.frames, o.size, o.preview_steps,
                                       cfg.default_guidance, cfg.default_shift, 1234 + k, device);
      const auto a = eval::prompt_adherence(video, preview_prompts[k]);
      const std::string path = o.out_dir + "/preview_" + std::to_string(step) + "_" + std::to_string(k) + ".ppm";
      write_contact_sheet(video, path);
      spdlog::info("preview step {}: adherence {:.1f}% (presence {:.0f}%, size {:.0f}%, motion {:.0f}%) '{}' → {}", step,
                   100 * a.accuracy, 100 * a.presence, 100 * a.size, 100 * a.motion, preview_prompts[k], path);
      log << "preview " << step << " " << k << " adherence " << a.accuracy << " \"" << preview_prompts[k] << "\"\n";
    }
    log.flush();
  };

  Prefetcher prefetch(o, step * o.batch, tcfg.length);
  double loss_sum = 0.0, mse_sum = 0.0;  // mse: unweighted, comparable across object weights
  double gap_sum = 0.0;                  // sparsity-aware runs: the sparse-vs-dense term
  int loss_n = 0;
  double window_start = 0.0;
  bool checked_gradients = false;
  auto last_save = std::chrono::steady_clock::now();
  while (step < o.steps && !(o.time_limit_s > 0.0 && elapsed() >= o.time_limit_s) &&
         !(o.should_stop && o.should_stop())) {
    Batch batch = prefetch.pop();
    const auto x0 = batch.x0.to(device, /*non_blocking=*/true);
    const auto ids = batch.ids.to(device);
    const int64_t B = x0.size(0);
    // σ = shift·u / (1 + (shift − 1)·u): more of the budget where composition and motion form.
    auto u = torch::rand({B}, torch::TensorOptions().device(device));
    auto sigma = o.shift * u / (1.0 + (o.shift - 1.0) * u);
    auto noise = torch::randn_like(x0);
    const auto s = sigma.view({B, 1, 1, 1, 1});
    const auto xt = (1.0 - s) * x0 + s * noise;
    const auto target = noise - x0;
    model::AttentionControl control = training_attention();
    const auto ctx = text->forward(ids);
    const auto pred = dit->forward(xt, sigma * 1000.0, ctx, &control);
    // Weighted MSE, normalised by the weights' mean: equal to the plain MSE when object_weight = 0.
    const auto weight = batch.weight.to(device, /*non_blocking=*/true);
    const auto sq = (pred - target).pow(2);
    auto loss = weighted_mean(sq, weight);
    if (!checked_gradients) {
      // A dense layer that is not differentiable would leave attention untrained without a sound.
      // Checked on the dense term alone: a sparsity-aware run's masked pass reaches q on its own.
      for (auto& p : params) {
        if (p.name != "dit.blocks.0.self_attn.q.weight") continue;
        const auto g = torch::autograd::grad({loss}, {p.param}, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
        if (!g[0].defined() || g[0].abs().sum().item<double>() == 0.0) {
          throw Error("the DiT's self-attention passes no gradient to " + p.name +
                      " (WanDiT::forward must be differentiable through the dense attention path)");
        }
      }
      checked_gradients = true;
    }
    if (sparse_policy) {
      // Both passes get the gradient of their gap: the sparse one learns to follow dense, and the
      // dense one to need less of what the mask drops (its own flow-matching term keeps it honest).
      model::AttentionControl sparse = masked_training_attention(*sparse_policy, o.block_size, step, false);
      const auto gap = weighted_mean((dit->forward(xt, sigma * 1000.0, ctx, &sparse) - pred).pow(2), weight);
      gap_sum += gap.item<double>();
      loss = loss + o.sparse_weight * gap;
    }
    const double lr = optimizer_step(loss, params, m, v, ema, step, o, elapsed, o.weight_decay);
    loss_sum += loss.item<double>();
    mse_sum += sq.detach().mean().item<double>();
    ++loss_n;
    if (step % o.log_every == 0) {
      const double mean = loss_sum / loss_n;
      const auto [wait, render] = prefetch.take_times();
      const double window = elapsed() - window_start;
      window_start = elapsed();
      // Where the time goes: waiting for data means the renderer (CPU threads) is the bottleneck.
      spdlog::info("step {} loss {:.5f} mse {:.5f}{} lr {:.2e} {:.1f} s ({:.1f} steps/s, data wait {:.0f}%, render {:.0f} ms/batch)",
                   step, mean, mse_sum / loss_n,
                   sparse_policy ? fmt::format(" sparse gap {:.5f}", gap_sum / loss_n) : std::string(), lr, elapsed(),
                   loss_n / std::max(window, 1e-9), 100.0 * wait / std::max(window, 1e-9), 1000.0 * render / std::max(1, loss_n));
      log << "step " << step << " loss " << mean << " mse " << mse_sum / loss_n;
      if (sparse_policy) log << " gap " << gap_sum / loss_n;
      log << " lr " << lr << " time " << elapsed() << "\n";
      log.flush();
      loss_sum = mse_sum = gap_sum = 0.0;
      loss_n = 0;
    }
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

const char* kAdapterState = "adapter_state.safetensors";

// One file: the adapter's factors ("p.*"), their EMA ("e.*") and AdamW moments ("m.*", "v.*").
void save_adapter_state(const std::string& path, const std::string& teacher, const model::MaskAdapter& ad,
                        const std::vector<torch::Tensor>& ema, const std::vector<torch::Tensor>& m,
                        const std::vector<torch::Tensor>& v, int64_t step) {
  std::map<std::string, torch::Tensor> tensors;
  const auto params = ad.tensors();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string k = std::to_string(i);
    tensors["p." + k] = params[i].detach().to(torch::kCPU, torch::kFloat);
    tensors["e." + k] = ema[i].to(torch::kCPU, torch::kFloat);
    tensors["m." + k] = m[i].to(torch::kCPU, torch::kFloat);
    tensors["v." + k] = v[i].to(torch::kCPU, torch::kFloat);
  }
  io::write_safetensors(path, tensors,
                        {{"step", std::to_string(step)}, {"mode", ad.mode}, {"params", ad.params},
                         {"rank", std::to_string(ad.rank)}, {"block_size", std::to_string(ad.block_size)},
                         {"config", ad.config}, {"teacher", teacher}});
}

int64_t load_adapter_state(const std::string& path, const std::string& teacher, model::MaskAdapter& ad,
                           std::vector<torch::Tensor>& ema, std::vector<torch::Tensor>& m, std::vector<torch::Tensor>& v) {
  if (!fs::exists(path)) return -1;
  io::SafetensorsFile file(path);
  const auto& meta = file.metadata();
  for (const auto& [key, want] : std::map<std::string, std::string>{{"mode", ad.mode}, {"params", ad.params},
                                                                    {"rank", std::to_string(ad.rank)},
                                                                    {"block_size", std::to_string(ad.block_size)},
                                                                    {"config", ad.config}, {"teacher", teacher}}) {
    const auto it = meta.find(key);
    if (it == meta.end() || it->second != want) {
      throw ParameterError("distill", "'" + path + "' holds an adapter with " + key + " '" +
                                          (it == meta.end() ? std::string("?") : it->second) + "', this run asks for '" +
                                          want + "' (use another --out or --no-resume)");
    }
  }
  torch::NoGradGuard no_grad;
  auto params = ad.tensors();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string k = std::to_string(i);
    for (const char* set : {"p.", "e.", "m.", "v."}) {
      const auto& info = file.info(set + k);  // IoError naming the tensor when absent
      if (info.shape != params[i].sizes().vec()) {
        throw IoError("'" + path + "': tensor '" + set + k + "' has shape " + c10::str(c10::IntArrayRef(info.shape)) +
                      ", the adapter needs " + c10::str(params[i].sizes()));
      }
    }
    params[i].copy_(file.load("p." + k, torch::kFloat));
    ema[i].copy_(file.load("e." + k, torch::kFloat));
    m[i].copy_(file.load("m." + k, torch::kFloat));
    v[i].copy_(file.load("v." + k, torch::kFloat));
  }
  const auto it = meta.find("step");
  int64_t step = 0;
  if (it != meta.end() && parse_int64(it->second, step, 0)) return step;
  throw IoError("'" + path + "' has no readable 'step' metadata (an integer >= 0)");
}

}  // namespace

int64_t run_distillation(const TrainOptions& o) {
  validate(o);
  if (o.distill_mode.empty() || o.distill_mode == "dense") {
    throw ParameterError("distill-mode", "name a sparse attention mode (longshot --help lists them)");
  }
  if (o.teacher_dir.empty()) throw ParameterError("teacher", "a checkpoint folder (its EMA weights) is required");
  model::register_builtin_model();
  const model::DiTConfig cfg = training_config(o);
  const model::TextNetConfig tcfg = model::builtin_text_config();
  std::string params_text;
  auto policy = make_policy(o.distill_mode, o.distill_params, params_text);
  fs::create_directories(o.out_dir);
  const torch::Device device = pick_device(o.device);
  if (o.threads > 0) at::set_num_threads(o.threads);
  if (device.is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);

  // The frozen model: the teacher checkpoint's EMA weights.
  model::WanDiT dit(cfg);
  model::TextNet text(tcfg);
  {
    const std::string path = o.teacher_dir + "/" + kFiles[1];
    if (!fs::exists(path)) throw IoError("teacher checkpoint '" + path + "' not found");
    io::SafetensorsFile file(path);
    torch::NoGradGuard no_grad;
    for (auto& p : all_parameters(*dit, *text)) load_checked(file, "teacher '" + path + "' (config '" + cfg.name + "')", p.name, p.param);
  }
  for (auto& p : all_parameters(*dit, *text)) p.param.set_requires_grad(false);
  dit->to(device);
  text->to(device);
  dit->eval();
  text->eval();

  auto adapter = std::make_shared<model::MaskAdapter>(model::MaskAdapter::fresh(cfg, o.rank, o.seed));
  adapter->mode = o.distill_mode;
  adapter->params = params_text;
  adapter->block_size = o.block_size;
  adapter->to(device, torch::kFloat);
  std::vector<Named> params;
  {
    const auto ts = adapter->tensors();
    for (size_t i = 0; i < ts.size(); ++i) {
      ts[i].set_requires_grad(true);
      params.push_back({"adapter." + std::to_string(i), ts[i]});
    }
  }
  std::vector<torch::Tensor> ema, m, v;
  for (auto& p : params) {
    ema.push_back(p.param.detach().clone());
    m.push_back(torch::zeros_like(p.param));
    v.push_back(torch::zeros_like(p.param));
  }
  const std::string state_path = o.out_dir + "/" + kAdapterState;
  int64_t step = 0;
  if (o.resume) {
    const int64_t s = load_adapter_state(state_path, o.teacher_dir, *adapter, ema, m, v);
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
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto save = [&] { save_adapter_state(state_path, o.teacher_dir, *adapter, ema, m, v, step); };
  Prefetcher prefetch(o, step * o.batch, tcfg.length);
  double loss_sum = 0.0, bare_loss = 0.0;
  int loss_n = 0;
  auto last_save = std::chrono::steady_clock::now();
  while (step < o.steps && !(o.time_limit_s > 0.0 && elapsed() >= o.time_limit_s) &&
         !(o.should_stop && o.should_stop())) {
    Batch batch = prefetch.pop();
    const auto x0 = batch.x0.to(device, true);
    const auto ids = batch.ids.to(device);
    const auto weight = batch.weight.to(device, true);
    const int64_t B = x0.size(0);
    auto u = torch::rand({B}, torch::TensorOptions().device(device));
    auto sigma = o.shift * u / (1.0 + (o.shift - 1.0) * u);
    const auto s = sigma.view({B, 1, 1, 1, 1});
    const auto xt = (1.0 - s) * x0 + s * torch::randn_like(x0);
    const bool log_step = (step + 1) % o.log_every == 0;
    auto masked = [&](bool use_adapter) { return masked_training_attention(*policy, o.block_size, step, use_adapter); };
    torch::Tensor ctx, dense;
    {
      torch::NoGradGuard no_grad;
      ctx = text->forward(ids);
      model::AttentionControl teacher = training_attention();
      dense = dit->forward(xt, sigma * 1000.0, ctx, &teacher);
      if (log_step) {
        // The mask without the adapter on the same batch: where the sparse mode starts from.
        model::AttentionControl bare = masked(false);
        bare_loss = weighted_mean((dit->forward(xt, sigma * 1000.0, ctx, &bare) - dense).pow(2), weight).item<double>();
      }
    }
    model::AttentionControl student = masked(true);
    const auto pred = dit->forward(xt, sigma * 1000.0, ctx, &student);
    const auto loss = weighted_mean((pred - dense).pow(2), weight);
    // No weight decay: it would pull the adapter to the identity.
    const double lr = optimizer_step(loss, params, m, v, ema, step, o, elapsed, 0.0);
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
  if (!o.export_path.empty()) {
    model::MaskAdapter out = *adapter;
    out.a.clear();
    out.b.clear();
    for (size_t l = 0; l < adapter->a.size(); ++l) {
      std::array<torch::Tensor, 4> a, b;
      for (size_t p = 0; p < 4; ++p) {
        a[p] = ema[(l * 4 + p) * 2];
        b[p] = ema[(l * 4 + p) * 2 + 1];
      }
      out.a.push_back(a);
      out.b.push_back(b);
    }
    model::save_adapter(out, o.export_path);
    spdlog::info("exported the EMA adapter of step {} → '{}'", step, o.export_path);
  }
  return step;
}

void export_weights(const std::string& out_dir, const std::string& config, const std::string& path) {
  const std::string src = out_dir + "/ema.safetensors";
  io::SafetensorsFile file(src);
  std::map<std::string, torch::Tensor> dit, text;
  for (const auto& name : file.names()) {
    if (name.rfind("dit.", 0) == 0) dit[name.substr(4)] = file.load(name, torch::kHalf);
    else if (name.rfind("text.", 0) == 0) text[name.substr(5)] = file.load(name, torch::kHalf);
  }
  if (dit.empty() || text.empty()) throw IoError("'" + src + "' holds no dit.* / text.* tensors");
  std::string step = "?";
  if (file.metadata().count("step")) step = file.metadata().at("step");
  io::write_safetensors(path, dit, {{"longshot.config", config}, {"format", "pt"}, {"step", step}});
  io::write_safetensors(model::builtin_text_path(path), text, {{"longshot.text_net", config}, {"step", step}});
  spdlog::info("exported EMA weights of step {} → '{}' and '{}'", step, path, model::builtin_text_path(path));
}

}  // namespace longshot::train

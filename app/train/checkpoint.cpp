// Checkpoint files of training and distillation runs. See checkpoint.h.
#include "app/train/checkpoint.h"

#include <filesystem>
#include <map>

#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/common/log.h"
#include "engine/common/parse.h"
#include "engine/model/builtin_model.h"

namespace longshot::train {

namespace fs = std::filesystem;

namespace {

// Parameter i's tensor in file f of kCheckpointFiles: the weight, its EMA, or a moment.
torch::Tensor checkpoint_tensor(Optimiser& opt, size_t f, size_t i) {
  switch (f) {
    case 0: return opt.params()[i].param;
    case 1: return opt.ema()[i];
    case 2: return opt.exp_avg(i);
    default: return opt.exp_avg_sq(i);
  }
}

}  // namespace

// Four files of ≤ ~12 MB each (the device tool brings back files up to 16 MB), all stamped with the
// step so a resume can tell a torn checkpoint.
void save_checkpoint(const std::string& dir, Optimiser& opt, int64_t step, const std::string& config) {
  for (size_t f = 0; f < 4; ++f) {
    std::map<std::string, torch::Tensor> tensors;
    for (size_t i = 0; i < opt.params().size(); ++i) {
      tensors[opt.params()[i].name] = checkpoint_tensor(opt, f, i).detach().to(torch::kCPU, torch::kFloat);
    }
    io::write_safetensors(dir + "/" + kCheckpointFiles[f], tensors,
                          {{"step", std::to_string(step)}, {"longshot.config", config}});
  }
}

void load_checked(io::SafetensorsFile& file, const std::string& what, const std::string& name, const torch::Tensor& dst) {
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

int64_t load_checkpoint(const std::string& dir, Optimiser& opt) {
  if (!fs::exists(dir + "/" + kCheckpointFiles[0])) return -1;
  int64_t step = -1;
  torch::NoGradGuard no_grad;
  for (size_t f = 0; f < 4; ++f) {
    const std::string path = dir + "/" + kCheckpointFiles[f];
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
    for (size_t i = 0; i < opt.params().size(); ++i) {
      load_checked(file, "checkpoint '" + path + "'", opt.params()[i].name, checkpoint_tensor(opt, f, i));
    }
  }
  opt.set_step(step);
  return step;
}

void save_adapter_state(const std::string& path, const std::string& teacher, const model::MaskAdapter& ad,
                        Optimiser& opt, int64_t step) {
  std::map<std::string, torch::Tensor> tensors;
  const auto& params = opt.params();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string k = std::to_string(i);
    tensors["p." + k] = params[i].param.detach().to(torch::kCPU, torch::kFloat);
    tensors["e." + k] = opt.ema()[i].to(torch::kCPU, torch::kFloat);
    tensors["m." + k] = opt.exp_avg(i).to(torch::kCPU, torch::kFloat);
    tensors["v." + k] = opt.exp_avg_sq(i).to(torch::kCPU, torch::kFloat);
  }
  io::write_safetensors(path, tensors,
                        {{"step", std::to_string(step)}, {"mode", ad.mode}, {"params", ad.params},
                         {"rank", std::to_string(ad.rank)}, {"block_size", std::to_string(ad.block_size)},
                         {"config", ad.config}, {"teacher", teacher}});
}

int64_t load_adapter_state(const std::string& path, const std::string& teacher, model::MaskAdapter& ad, Optimiser& opt) {
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
    opt.ema()[i].copy_(file.load("e." + k, torch::kFloat));
    opt.exp_avg(i).copy_(file.load("m." + k, torch::kFloat));
    opt.exp_avg_sq(i).copy_(file.load("v." + k, torch::kFloat));
  }
  const auto it = meta.find("step");
  int64_t step = 0;
  if (it != meta.end() && parse_int64(it->second, step, 0)) {
    opt.set_step(step);
    return step;
  }
  throw IoError("'" + path + "' has no readable 'step' metadata (an integer >= 0)");
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

// A job's motion regime: router, lookup table, fallback (regime.h).
#include "engine/pipeline/regime.h"

#include <chrono>
#include <filesystem>
#include <sstream>

#include "engine/calibrate/calibration.h"
#include "engine/common/assets.h"
#include "engine/common/error.h"
#include "engine/data/tokenizer.h"
#include "engine/model/builtin_model.h"
#include "engine/model/conditioning_impl.h"
#include "engine/model/dit_config.h"
#include "engine/pipeline/run_job.h"

namespace longshot::pipeline {

namespace {

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// The built-in text encoder's rows: <bos>, then the prompt's words (split as its tokenizer does).
std::vector<std::string> builtin_token_names(const std::string& prompt) {
  std::vector<std::string> names = {"<bos>"};
  for (auto& w : data::split_words(prompt)) names.push_back(std::move(w));
  return names;
}

}  // namespace

std::string shipped_router_path(const std::string& model_name) {
  return model_name.empty() ? std::string() : find_asset(model_name + "-router.json");
}

std::string shipped_table_path(const std::string& model_name, const std::string& mode) {
  return model_name.empty() || mode.empty() ? std::string() : find_asset(model_name + "-" + mode + "-calibration.json");
}

std::string RegimeChoice::summary() const {
  std::ostringstream os;
  if (regime.empty()) {
    os << requested << " fell back to the mode's defaults: " << warning;
    return os.str();
  }
  os << regime;
  if (requested == "auto") {
    os.setf(std::ios::fixed);
    os.precision(3);
    os << " (auto, router " << router_file << " in " << route_ms << " ms: " << decision.reason << ")";
  } else {
    os << " (set by the user)";
  }
  os << ", parameters from " << table_file;
  if (horizon_frames > 0) {
    os << " (horizon of " << horizon_frames << " frames, the job has " << grid_frames;
    // A table may hold several sizes: say which one applied.
    if (!horizon_geometry.empty()) os << "; calibrated at " << horizon_geometry;
    os << ")";
  }
  if (!warning.empty()) os << "; warning: " << warning;
  return os.str();
}

RegimeChoice choose_regime(const AttentionSettings& s, const std::string& model_name, const torch::Tensor& tokens,
                           const std::string& prompt, const attention::TokenGrid& grid) {
  RegimeChoice c;
  c.requested = s.regime;
  c.grid_frames = grid.t;
  c.params = s.params;
  if (s.regime.empty()) return c;
  if (s.mode == "dense")
    throw ParameterError("regime", "needs a sparse mode with a calibration table (e.g. --mode dynamicrad), not dense");
  c.table_file = s.calibration.empty() ? shipped_table_path(model_name, s.mode) : s.calibration;
  const bool table_missing = c.table_file.empty() || !std::filesystem::exists(c.table_file);
  if (s.regime == "auto") {
    c.router_file = s.router.empty() ? shipped_router_path(model_name) : s.router;
    const bool router_missing = c.router_file.empty() || !std::filesystem::exists(c.router_file);
    if (router_missing || table_missing) {
      // The only fallback: the user asked for auto and a file is missing. Said, never silent.
      const std::string what = router_missing ? "router" : "calibration table";
      const std::string file = router_missing ? c.router_file : c.table_file;
      const std::string expected = router_missing ? model_name + "-router.json" : model_name + "-" + s.mode + "-calibration.json";
      c.warning = "no " + what + " file" + (file.empty() ? " (" + asset_search_text(expected) + ")" : " '" + file + "'") +
                  "; running " + s.mode + " with its defaults and the given --param values";
      return c;
    }
  } else if (table_missing) {
    throw ParameterError("regime", "'" + s.regime + "' needs a calibration table: " +
                                       (c.table_file.empty() ? "model " + model_name + " ships none for mode " + s.mode +
                                                                   " (give --calibration FILE from longshot calibrate)"
                                                             : "no such file '" + c.table_file + "'"));
  }
  const calibrate::LoadedTable table = calibrate::read_table(c.table_file);
  if (table.mode != s.mode)
    throw ParameterError("regime", "calibration table '" + c.table_file + "' is for mode " + table.mode + ", the job runs " + s.mode);
  if (s.regime == "auto") {
    const calibrate::MotionRouter router = calibrate::read_router(c.router_file);
    if (router.model != model_name)
      c.warning = "the router was trained on " + router.model + "'s text encoder, the job runs " + model_name;
    const double t0 = now_ms();
    c.decision = calibrate::route(router, tokens, model::is_builtin_model(model_name) ? builtin_token_names(prompt)
                                                                                      : std::vector<std::string>{});
    c.route_ms = now_ms() - t0;
    c.regime = c.decision.regime;
  } else {
    c.regime = s.regime;
  }
  // The job's geometry first (a table may hold a 32 px and a 64 px calibration), then its length.
  const calibrate::TableHorizon& horizon = table.horizon_for(grid.t, grid.h, grid.w, s.block_size);
  c.horizon_frames = horizon.grid_frames;
  if (horizon.frame_h > 0) c.horizon_geometry = horizon.geometry_text();
  // Said, not silent: a mask tuned at 8×8 tokens per frame and block 32 keeps other blocks at
  // 16×16 and block 128 (candidate G kept none there and lost PSNR, docs/calibration.md).
  const bool other_frame = horizon.frame_h > 0 && (horizon.frame_h != grid.h || horizon.frame_w != grid.w);
  const bool other_block = horizon.block > 0 && horizon.block != s.block_size;
  if (other_frame || other_block) {
    std::ostringstream os;
    os << "the table's parameters were calibrated at " << horizon.frame_h << "x" << horizon.frame_w
       << " tokens per frame with block " << horizon.block << ", this job has " << grid.h << "x" << grid.w
       << " with block " << s.block_size << ": its masks may keep other blocks than the calibration's";
    c.warning += (c.warning.empty() ? "" : "; ") + os.str();
  }
  const auto it = horizon.regimes.find(c.regime);
  if (it == horizon.regimes.end()) {
    std::string known;
    for (const auto& [name, p] : horizon.regimes) known += (known.empty() ? "" : ", ") + name;
    throw ParameterError("regime", "'" + c.regime + "' is not in calibration table '" + c.table_file + "' (it has: " + known + ")");
  }
  c.mode = s.mode;
  c.calibrated = it->second;
  c.params = it->second;
  for (const auto& [k, v] : s.params) c.params[k] = v;  // the user's --param values win
  return c;
}

AttentionSettings keep_regime(const RegimeChoice& choice, AttentionSettings changed) {
  if (choice.calibrated.empty() || changed.regime != choice.requested || changed.mode != choice.mode) return changed;
  attention::ParamValues params = choice.calibrated;
  for (const auto& [k, v] : changed.params) params[k] = v;
  changed.params = std::move(params);
  return changed;
}

namespace {
// The router trained on one set and scored on the other: held-out accuracy and the mean time of one
// routing (pooling + projection + explanation); both 0 without a held-out set.
RouterTraining trained_router(const std::vector<torch::Tensor>& train_e, const std::vector<std::string>& train_l,
                              const std::vector<torch::Tensor>& held_e, const std::vector<std::string>& held_l,
                              const std::string& model_name, const calibrate::RouterTrainOptions& options) {
  RouterTraining out;
  out.router = calibrate::train_router(train_e, train_l, {"static", "slow", "fast"}, model_name, options);
  out.heldout = int(held_e.size());
  if (held_e.empty()) return out;
  out.heldout_accuracy = calibrate::router_accuracy(out.router, held_e, held_l);
  const double t0 = now_ms();
  for (const auto& e : held_e) calibrate::route(out.router, e);
  out.route_ms = (now_ms() - t0) / double(held_e.size());
  return out;
}
}  // namespace

RouterTraining train_world_router(const std::string& model_name, uint64_t seed, int per_regime, int heldout_per_regime,
                                  const calibrate::RouterTrainOptions& options) {
  const std::string name = model::resolve_builtin_name(model_name);
  if (!model::is_builtin_model(name))
    throw ParameterError("model", "'" + model_name + "': routers train on the procedural world's captions, which only the "
                                  "built-in models' text encoders read (longshot-builtin, longshot-builtin-sparse)");
  if (heldout_per_regime < 1) throw ParameterError("heldout", "need at least one held-out prompt per regime");
  auto encoder = model::make_text_encoder(model::find_config(name));
  auto embed = [&](const std::vector<calibrate::LabelledPrompt>& prompts, std::vector<torch::Tensor>& e,
                   std::vector<std::string>& labels) {
    for (const auto& p : prompts) {
      e.push_back(encoder->encode(p.prompt)[0]);
      labels.push_back(p.regime);
    }
  };
  std::vector<torch::Tensor> train_e, held_e;
  std::vector<std::string> train_l, held_l;
  embed(calibrate::world_prompts(seed, per_regime), train_e, train_l);
  // Another seed's captions: the same grammar, other draws (a caption can repeat by chance).
  embed(calibrate::world_prompts(seed + 0x51f15e, heldout_per_regime), held_e, held_l);
  return trained_router(train_e, train_l, held_e, held_l, name, options);
}

RouterTraining train_prompt_router(const GenerationRequest& model, const std::vector<calibrate::LabelledPrompt>& prompts,
                                   int heldout_every, const calibrate::RouterTrainOptions& options) {
  if (heldout_every < 2) throw ParameterError("heldout-every", "must be at least 2 (every Nth prompt is held out)");
  const model::ResolvedModel resolved = resolve_request_model(model);
  auto encoder = model_text_encoder(resolved, model.text_embeddings, torch::kCPU, torch::kFloat);
  std::vector<torch::Tensor> train_e, held_e;
  std::vector<std::string> train_l, held_l;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const bool held = (i + 1) % size_t(heldout_every) == 0;
    (held ? held_e : train_e).push_back(encoder->encode(prompts[i].prompt)[0].to(torch::kCPU, torch::kFloat));
    (held ? held_l : train_l).push_back(prompts[i].regime);
  }
  return trained_router(train_e, train_l, held_e, held_l, resolved.name, options);
}

}  // namespace longshot::pipeline

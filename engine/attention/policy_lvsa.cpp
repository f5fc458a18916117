// lvsa — LVSA (gglorian/LVSA @ f4ba559) as its code runs on Wan2.1: training-free, whole-frame
// sliding windows plus rotating whole-frame global anchors, sized by the model's reference horizon.
//
// Frame level (one latent frame = LVSA's block):
//  - Auto-scaling (lvsa/parallel.py:95-106): when 2W+1+n_first >= T > ref, W = max(ref/2, 1) and
//    n_first = max(ref/4, 1).
//  - kfi (sparse_attention.py:132-195, lvsa_auto_kfi): 1 — every frame global, fully dense — when
//    T <= int(ref · sparsity_scale); else the larger of the strict and the closed-form interval.
//  - Globals (:198-216): frames 0..n_first−1 plus (offset + i·kfi) mod T for i < ceil(T/kfi).
//  - Rotation (lvsa_processor.py:317-331 with examples/wan_generate.py:416-419): the offset is set
//    to i mod kfi in the callback after step i, so step s runs with offset (s−1) mod kfi (step 0
//    with the initial 0). One pattern for every layer, head, query and both CFG passes.
//  - Window (:40-86): [max(0, min(f−W, T−1−2W)), min(T−1, max(f+W, 2W))], then widened outward
//    (left first) until it holds min(2W+1, T−|G|) non-global frames.
//  Query frame f attends G ∪ window(f).
// Token blocks: Longshot's kernels take 64/128-token raster blocks, LVSA's blocks are whole frames
// (1,560 tokens at 480p). A query block keeps a key block when some frame of the key block is
// attended by some frame of the query block: exact when the frame size is a multiple of the
// block, a superset at the (at most two) blocks a frame boundary cuts.
#include <algorithm>
#include <cmath>
#include <map>

#include <spdlog/spdlog.h>

#include "engine/attention/policies.h"
#include "engine/attention/policy_util.h"

namespace longshot::attention {

namespace {
// LVSA's own default reference (sparse_attention.py:136, `reference_frames: int = 21`): Wan2.1.
constexpr int64_t kLvsaDefaultReference = 21;

std::vector<int64_t> global_frames(int64_t T, int64_t n_first, int64_t kfi, int64_t offset) {
  std::vector<uint8_t> g(static_cast<size_t>(T), 0);
  for (int64_t f = 0; f < std::min(n_first, T); ++f) g[static_cast<size_t>(f)] = 1;
  if (kfi > 0) {
    const int64_t n = (T + kfi - 1) / kfi;
    for (int64_t i = 0; i < n; ++i) g[static_cast<size_t>((offset + i * kfi) % T)] = 1;
  }
  std::vector<int64_t> out;
  for (int64_t f = 0; f < T; ++f)
    if (g[static_cast<size_t>(f)]) out.push_back(f);
  return out;
}

// get_window_bounds: [lo, hi] (empty when W = 0).
void window_bounds(int64_t f, int64_t W, int64_t T, bool expand, const std::vector<uint8_t>& is_global,
                   int64_t global_count, int64_t& lo, int64_t& hi) {
  if (W == 0) {
    lo = f;
    hi = f - 1;
    return;
  }
  lo = std::max<int64_t>(0, std::min(f - W, T - 1 - 2 * W));
  hi = std::min<int64_t>(T - 1, std::max(f + W, 2 * W));
  if (!expand) return;
  const int64_t target = std::min(2 * W + 1, T - global_count);
  int64_t non_global = 0;
  for (int64_t w = lo; w <= hi; ++w) non_global += is_global[static_cast<size_t>(w)] ? 0 : 1;
  while (non_global < target) {
    bool expanded = false;
    if (lo > 0) {
      --lo;
      if (!is_global[static_cast<size_t>(lo)]) ++non_global;
      expanded = true;
    }
    if (non_global >= target) break;
    if (hi < T - 1) {
      ++hi;
      if (!is_global[static_cast<size_t>(hi)]) ++non_global;
      expanded = true;
    }
    if (!expanded) break;
  }
}
}  // namespace

LvsaConfig LvsaConfig::from(const ParamValues& v) {
  LvsaConfig c;
  c.window_frames = detail::param_int(v, "window_frames");
  c.first_frames = detail::param_int(v, "first_frames");
  c.sparsity_scale = detail::param(v, "sparsity_scale");
  c.reference_frames = detail::param_int(v, "reference_frames");
  c.keyframe_interval = detail::param_int(v, "keyframe_interval");
  c.rotate = detail::param_int(v, "rotate") != 0;
  c.expand_window = detail::param_int(v, "expand_window") != 0;
  c.dense_steps = detail::param_int(v, "dense_steps");
  c.dense_layers = detail::param_int(v, "dense_layers");
  return c;
}

int64_t lvsa_auto_kfi(int64_t T, int64_t W, int64_t n_first, int64_t ref, double scale) {
  // Python's int() truncates toward zero; the product is positive.
  const int64_t scaled_ref = std::max<int64_t>(n_first + 1, static_cast<int64_t>(static_cast<double>(ref) * scale));
  if (T <= scaled_ref) return 1;
  const int64_t target_attended = std::min(scaled_ref, T);
  const int64_t target_globals = std::max<int64_t>(n_first, target_attended - std::min<int64_t>(2 * W + 1, T));
  int64_t strict = 1;
  for (int64_t kfi = T; kfi >= 1; --kfi) {
    if (static_cast<int64_t>(global_frames(T, n_first, kfi, 0).size()) >= target_globals) {
      strict = kfi;
      break;
    }
  }
  const int64_t mandatory = 2 * W + n_first;
  const int64_t total = std::max(T - mandatory, scaled_ref - mandatory);
  const int64_t per_ref = std::max<int64_t>(scaled_ref - mandatory, 1);
  const int64_t fallback = (total + per_ref - 1) / per_ref;  // math.ceil of a positive ratio
  return std::max(strict, fallback);
}

bool LvsaPattern::dense() const {
  for (const auto& row : attended)
    for (uint8_t a : row)
      if (!a) return false;
  return true;
}

double LvsaPattern::sparsity() const {
  const double T = static_cast<double>(attended.size());
  if (T == 0) return 0.0;
  double kept = 0;
  for (const auto& row : attended)
    for (uint8_t a : row) kept += a;
  return 1.0 - kept / (T * T);
}

LvsaPattern lvsa_pattern(const LvsaConfig& c, int64_t T, int64_t model_reference, int step) {
  LvsaPattern p;
  p.reference_frames = c.reference_frames > 0 ? c.reference_frames
                                              : (model_reference > 0 ? model_reference : kLvsaDefaultReference);
  p.window_frames = c.window_frames;
  p.first_frames = c.first_frames;
  if (2 * p.window_frames + 1 + p.first_frames >= T && T > p.reference_frames) {
    p.window_frames = std::max<int64_t>(p.reference_frames / 2, 1);
    p.first_frames = std::max<int64_t>(p.reference_frames / 4, 1);
  }
  p.kfi = c.keyframe_interval > 0
              ? c.keyframe_interval
              : lvsa_auto_kfi(T, p.window_frames, p.first_frames, p.reference_frames, c.sparsity_scale);
  p.offset = c.rotate && step > 0 ? (step - 1) % p.kfi : 0;
  p.globals = global_frames(T, p.first_frames, p.kfi, p.offset);
  std::vector<uint8_t> is_global(static_cast<size_t>(T), 0);
  for (int64_t g : p.globals) is_global[static_cast<size_t>(g)] = 1;
  p.attended.assign(static_cast<size_t>(T), is_global);
  for (int64_t f = 0; f < T; ++f) {
    int64_t lo, hi;
    window_bounds(f, p.window_frames, T, c.expand_window, is_global, static_cast<int64_t>(p.globals.size()), lo, hi);
    for (int64_t w = lo; w <= hi; ++w) p.attended[static_cast<size_t>(f)][static_cast<size_t>(w)] = 1;
  }
  return p;
}

namespace {
class LvsaPolicy final : public MaskPolicy {
 public:
  explicit LvsaPolicy(const LvsaConfig& c) : config_(c) {}
  std::string name() const override { return "lvsa"; }
  bool last_mask_cached() const override { return last_cached_; }
  void reset() override {
    cache_.clear();
    full_.reset();
    last_cached_ = false;
  }

  BlockMaskPtr build(const MaskRequest& r) override {
    detail::check_request(r, false, name());
    last_cached_ = false;
    if (detail::dense_call(r, config_.dense_steps, config_.dense_layers))
      return full_.get(r.grid.size(), r.block_size, OrderingKind::Raster);
    // The pattern depends on the step only through the rotation offset: one mask per offset.
    const LvsaPattern p = lvsa_pattern(config_, r.grid.t, r.reference_frames, r.step);
    if (p.dense()) return full_.get(r.grid.size(), r.block_size, OrderingKind::Raster);
    if (cache_grid_ != r.grid || cache_block_ != r.block_size) {
      cache_.clear();
      cache_grid_ = r.grid;
      cache_block_ = r.block_size;
    }
    auto& slot = cache_[p.offset];
    if (slot) {
      last_cached_ = true;
      return slot;
    }
    slot = std::make_shared<const BlockMask>(blocks_from_frames(r, p));
    return slot;
  }

  ParamValues params() const override {
    return {{"window_frames", double(config_.window_frames)},
            {"first_frames", double(config_.first_frames)},
            {"sparsity_scale", config_.sparsity_scale},
            {"reference_frames", double(config_.reference_frames)},
            {"keyframe_interval", double(config_.keyframe_interval)},
            {"rotate", config_.rotate ? 1.0 : 0.0},
            {"expand_window", config_.expand_window ? 1.0 : 0.0},
            {"dense_steps", double(config_.dense_steps)},
            {"dense_layers", double(config_.dense_layers)}};
  }

 private:
  // Token blocks from the frame pattern: a block's frames are those of its first and last token.
  static BlockMask blocks_from_frames(const MaskRequest& r, const LvsaPattern& p) {
    const int64_t N = r.grid.size(), bs = r.block_size, P = r.grid.h * r.grid.w, T = r.grid.t;
    const int64_t nb = BlockMask::blocks_for(N, bs);
    std::vector<int64_t> f0(static_cast<size_t>(nb)), f1(static_cast<size_t>(nb));
    for (int64_t b = 0; b < nb; ++b) {
      f0[static_cast<size_t>(b)] = (b * bs) / P;
      f1[static_cast<size_t>(b)] = (std::min(N, (b + 1) * bs) - 1) / P;
    }
    std::vector<std::vector<int32_t>> rows(static_cast<size_t>(nb));
    std::vector<uint8_t> frames(static_cast<size_t>(T));
    for (int64_t i = 0; i < nb; ++i) {
      std::fill(frames.begin(), frames.end(), 0);
      for (int64_t f = f0[static_cast<size_t>(i)]; f <= f1[static_cast<size_t>(i)]; ++f)
        for (int64_t k = 0; k < T; ++k) frames[static_cast<size_t>(k)] |= p.attended[static_cast<size_t>(f)][static_cast<size_t>(k)];
      auto& row = rows[static_cast<size_t>(i)];
      for (int64_t j = 0; j < nb; ++j) {
        bool keep = false;
        for (int64_t f = f0[static_cast<size_t>(j)]; f <= f1[static_cast<size_t>(j)] && !keep; ++f)
          keep = frames[static_cast<size_t>(f)] != 0;
        if (keep) row.push_back(static_cast<int32_t>(j));
      }
    }
    return detail::mask_from_rows(rows, N, bs, 1, OrderingKind::Raster);
  }

  LvsaConfig config_;
  std::map<int64_t, BlockMaskPtr> cache_;  // rotation offset → mask
  TokenGrid cache_grid_;
  int64_t cache_block_ = 0;
  detail::FullMaskCache full_;
  bool last_cached_ = false;
};
}  // namespace

PolicyInfo lvsa_policy_info() {
  return {"lvsa",
          "LVSA (gglorian/LVSA): whole-frame window of 2W+1 non-global frames + whole-frame global anchors rotating "
          "with the step; kfi from the model's reference horizon, dense at or below it",
          {{"window_frames", "W: half-window in latent frames (LVSA example: 12 video frames = 3)", 3, 0, 4096, true, true, true},
           {"first_frames", "n_first: leading latent frames that are always global", 1, 0, 4096, true, true, true},
           {"sparsity_scale", "multiplier on the reference budget (<1 sparser, >1 denser)", 1.0, 0.0, 100.0, false, true, false},
           {"reference_frames", "reference horizon in latent frames (0: the model's; Wan2.1 21)", 0, 0, 1e6, true, true, true},
           {"keyframe_interval", "global frame interval kfi (0: automatic from the reference horizon)", 0, 0, 1e6, true, true, true},
           {"rotate", "1: keyframes rotate with the denoising step (--rotate-keyframes)", 1, 0, 1, true, true, true},
           {"expand_window", "1: widen the window to 2W+1 non-global frames", 1, 0, 1, true, true, true},
           {"dense_steps", "leading denoising steps that run dense", 0, 0, 1e6, true, true, true},
           {"dense_layers", "leading layers that run dense", 0, 0, 1e6, true, true, true}},
          [](const ParamValues& v) { return make_lvsa_policy(LvsaConfig::from(v)); }};
}

std::unique_ptr<MaskPolicy> make_lvsa_policy(const LvsaConfig& config) { return std::make_unique<LvsaPolicy>(config); }

}  // namespace longshot::attention

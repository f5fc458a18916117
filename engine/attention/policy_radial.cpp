// radial-ratio (alias: radial) — Longshot's own radial mode, not DynamicRad's (that is
// policy_dynamicrad.cpp): a radial locality prior (Radial Attention's energy decay: the spatial
// window a query sees shrinks as the temporal distance grows) cut to a fixed share of block pairs.
// Unlike DynamicRad it may thin the query's own and adjacent frames, and keep_ratio is a share of
// all pairs, so its cost stays O(n²) with length; it stays for its one-knob speed/quality dial and
// because the built-in sparse model and its adapters were trained under it.
//
// Each block pair gets the radial distance ρ = (1 + s) · (1 + d)^decay, s the spatial gap of the
// two blocks' row/column boxes (patches), d the frames between them. A pair is kept iff ρ <= r*,
// i.e. at temporal distance d the spatial window radius is r*/(1+d)^decay − 1, shrinking with d
// until whole frames drop out. r* is not a user knob: it is the smallest radius whose kept set
// reaches keep_ratio of all block pairs — found exactly by ranking pairs by ρ (equivalent to a
// bisection on r*, without its ±1-tie steps). Ties at r* are broken by smaller d, then by block
// index distance, so the kept count hits the budget to one block pair.
// Always kept (count toward the budget): the diagonal block of each row, and key blocks touching
// the first sink_frames frames (Wan's first-frame sink). If these alone exceed the budget the
// mask keeps exactly them; the achieved sparsity is then below the requested one (logged).
// Seed silence: DynamicRad's static mode keeps a seeded random k of the candidate pairs; a
// deterministic ρ ranking is our choice (reproducible masks, monotone in keep_ratio).
#include <algorithm>
#include <cmath>
#include <numeric>

#include <spdlog/spdlog.h>

#include "engine/attention/policies.h"
#include "engine/attention/policy_util.h"

namespace longshot::attention {

RadialConfig RadialConfig::from(const ParamValues& v) {
  RadialConfig c;
  c.keep_ratio = detail::param(v, "keep_ratio");
  c.decay = detail::param(v, "decay");
  c.sink_frames = detail::param_int(v, "sink_frames");
  return c;
}

std::vector<uint8_t> radial_keep(const TokenGrid& grid, int64_t block_size, const RadialConfig& config) {
  const detail::BlockGeometry geo(grid, block_size);
  const int64_t nb = geo.num_blocks();
  std::vector<uint8_t> keep(static_cast<size_t>(nb * nb), 0);
  const int64_t budget = std::max<int64_t>(1, std::llround(config.keep_ratio * static_cast<double>(nb * nb)));

  struct Pair {
    double rho;
    int64_t dt, dist, qb, kb;
  };
  std::vector<Pair> pairs;
  pairs.reserve(static_cast<size_t>(nb * nb));
  int64_t kept = 0;
  for (int64_t qb = 0; qb < nb; ++qb) {
    for (int64_t kb = 0; kb < nb; ++kb) {
      const bool forced = qb == kb || geo.block(kb).t0 < config.sink_frames;
      if (forced) {
        keep[static_cast<size_t>(qb * nb + kb)] = 1;
        ++kept;
        continue;
      }
      const int64_t dt = geo.temporal_gap(qb, kb);
      const double rho = (1.0 + geo.spatial_gap(qb, kb)) * std::pow(1.0 + static_cast<double>(dt), config.decay);
      pairs.push_back({rho, dt, std::abs(qb - kb), qb, kb});
    }
  }
  if (kept > budget) {
    spdlog::debug("radial: diagonal + sink blocks ({}) exceed the keep_ratio budget ({}); keeping only them", kept,
                  budget);
    return keep;
  }
  const auto take = static_cast<size_t>(std::min<int64_t>(budget - kept, static_cast<int64_t>(pairs.size())));
  auto less = [](const Pair& a, const Pair& b) {
    if (a.rho != b.rho) return a.rho < b.rho;
    if (a.dt != b.dt) return a.dt < b.dt;
    if (a.dist != b.dist) return a.dist < b.dist;
    if (a.qb != b.qb) return a.qb < b.qb;
    return a.kb < b.kb;
  };
  if (take > 0 && take < pairs.size()) std::nth_element(pairs.begin(), pairs.begin() + take - 1, pairs.end(), less);
  for (size_t i = 0; i < take; ++i) keep[static_cast<size_t>(pairs[i].qb * nb + pairs[i].kb)] = 1;
  return keep;
}

namespace {
class RadialPolicy final : public MaskPolicy {
 public:
  explicit RadialPolicy(const RadialConfig& c) : config_(c) {}
  std::string name() const override { return "radial-ratio"; }
  BlockMaskPtr build(const MaskRequest& r) override {
    detail::check_request(r, false, name());
    // The mask depends on geometry only: built once per (grid, block) and reused, as DynamicRad does.
    if (!cached_ || cached_grid_ != r.grid || cached_->block_size != r.block_size) {
      cached_ = std::make_shared<const BlockMask>(
          BlockMask::from_dense(radial_keep(r.grid, r.block_size, config_), r.grid.size(), r.block_size, 1));
      cached_grid_ = r.grid;
      last_cached_ = false;
    } else {
      last_cached_ = true;
    }
    return cached_;
  }
  ParamValues params() const override {
    return {{"keep_ratio", config_.keep_ratio}, {"decay", config_.decay}, {"sink_frames", double(config_.sink_frames)}};
  }
  bool last_mask_cached() const override { return last_cached_; }
  void reset() override {
    cached_.reset();
    last_cached_ = false;
  }

 private:
  RadialConfig config_;
  BlockMaskPtr cached_;
  TokenGrid cached_grid_;
  bool last_cached_ = false;
};
}  // namespace

PolicyInfo radial_policy_info() {
  return {"radial-ratio",
          "Longshot's own: radial energy-decay prior (window shrinks with temporal distance) cut to a fixed keep ratio of all block pairs",
          {{"keep_ratio", "share of block pairs kept (sparsity = 1 - keep_ratio)", 0.3, 0.0, 1.0, false, true, false},
           {"decay", "temporal shrink exponent of the spatial window", 1.0, 0.0, 8.0, true, true, false},
           {"sink_frames", "leading frames every query attends to (first-frame sink)", 1, 0, 1024, true, true, true}},
          [](const ParamValues& v) { return make_radial_policy(RadialConfig::from(v)); },
          {"radial"}};
}

std::unique_ptr<MaskPolicy> make_radial_policy(const RadialConfig& config) {
  return std::make_unique<RadialPolicy>(config);
}

}  // namespace longshot::attention

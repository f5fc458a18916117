// local-anchors — Longshot's own windowed mode with rotating single-block anchors. It began as a
// reading of LVSA but is not LVSA (policy_lvsa.cpp is): its window is spatial as well as temporal,
// its anchors are single blocks per query block rather than whole frames shared by every query,
// it has no reference-horizon budget and is sparse at any length. It stays as the cheapest
// windowed mode (~3 frames of keys per query at any horizon).
//
// Blocks are raster-ordered token blocks of the kernel's 64/128 tokens. Query block i keeps:
//  - Window: key blocks j whose frames meet the temporal window of one of i's frames and whose
//    row/column box lies within spatial_window patches of i's (spatial gap <= spatial_window).
//    The temporal window of frame t is [t − w, t + w], slid inward at the ends of the video so it
//    always spans min(T, 2w + 1) frames (as LVSA widens its window at the borders).
//  - Sink: key blocks touching the first sink_frames frames (LVSA's n_first global frames).
//  - Anchors: A(i, layer, step) = {(φ + a·P) mod nb : a < anchors}, φ = (step + layer·layer_shift
//    + i·qblock_shift) mod P, P = rotation_period (0 → ceil(nb / anchors)). For a fixed row and
//    layer, φ runs through every residue mod P over any P consecutive steps, and since
//    anchors·P >= nb every key block is an anchor exactly once or more per period — no fixed
//    anchor grid survives across steps, layers or rows. A period with anchors·P < nb cannot
//    cover every block: that rotation_period is rejected.
//  - The diagonal block.
// Rotation with the query block and the layer (not only the step) is ours, with shifts as
// parameters (0 turns either off).
#include <algorithm>

#include "engine/attention/attention.h"
#include "engine/attention/policies.h"
#include "engine/attention/policy_util.h"
#include "engine/common/error.h"

namespace longshot::attention {

LocalAnchorsConfig LocalAnchorsConfig::from(const ParamValues& v) {
  LocalAnchorsConfig c;
  c.window_frames = detail::param_int(v, "window_frames");
  c.spatial_window = detail::param(v, "spatial_window");
  c.anchors = detail::param_int(v, "anchors");
  c.rotation_period = detail::param_int(v, "rotation_period");
  c.sink_frames = detail::param_int(v, "sink_frames");
  c.layer_shift = detail::param_int(v, "layer_shift");
  c.qblock_shift = detail::param_int(v, "qblock_shift");
  return c;
}

namespace {
int64_t period_for(const LocalAnchorsConfig& c, int64_t nb) {
  if (c.anchors <= 0) return 1;
  const int64_t minimal = (nb + c.anchors - 1) / c.anchors;
  if (c.rotation_period == 0) return minimal;
  if (c.rotation_period < minimal) {
    throw ParameterError("rotation_period", std::to_string(c.rotation_period) + " is too short: " +
                                                std::to_string(c.anchors) + " anchors need a period >= " +
                                                std::to_string(minimal) + " to cover all " + std::to_string(nb) +
                                                " key blocks");
  }
  return c.rotation_period;
}
}  // namespace

std::vector<int32_t> local_anchor_blocks(const LocalAnchorsConfig& c, int64_t nb, int64_t query_block, int layer, int step) {
  std::vector<int32_t> out;
  if (c.anchors <= 0 || nb <= 0) return out;
  const int64_t P = period_for(c, nb);
  const int64_t phase = (static_cast<int64_t>(step) + static_cast<int64_t>(layer) * c.layer_shift +
                         query_block * c.qblock_shift) % P;
  for (int64_t a = 0; a < c.anchors; ++a) out.push_back(static_cast<int32_t>((phase + a * P) % nb));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {
class LocalAnchorsPolicy final : public MaskPolicy {
 public:
  explicit LocalAnchorsPolicy(const LocalAnchorsConfig& c) : config_(c) {}
  std::string name() const override { return "local-anchors"; }

  BlockMaskPtr build(const MaskRequest& r) override {
    detail::check_request(r, false, name());
    const detail::BlockGeometry geo(r.grid, r.block_size);
    const int64_t nb = geo.num_blocks();
    const int64_t period = period_for(config_, nb);  // rejects a too-short rotation_period before any work
    // Every anchor phase is (step + layer · layer_shift + i · qblock_shift) mod P, so the mask
    // depends on the step and the layer only through s = (step + layer · layer_shift) mod P.
    const int64_t s = ((static_cast<int64_t>(r.step) + static_cast<int64_t>(r.layer) * config_.layer_shift) % period +
                       period) % period;
    const CacheKey key{r.grid, r.block_size, r.device, r.num_heads, s};
    if (auto hit = cache_.find(key)) {
      last_cached_ = true;
      return hit;
    }
    last_cached_ = false;
    BlockMaskPtr mask;
    if (r.device.is_cuda() && cuda_backend_available() && (r.block_size == 64 || r.block_size == 128))
      mask = build_on_device(r, geo, period, s);
    else
      mask = build_on_host(r, geo);
    cache_.put(key, mask);
    return mask;
  }

  bool last_mask_cached() const override { return last_cached_; }
  void reset() override {
    cache_.clear();
    last_cached_ = false;
  }

  ParamValues params() const override {
    return {{"window_frames", double(config_.window_frames)}, {"spatial_window", config_.spatial_window},
            {"anchors", double(config_.anchors)},             {"rotation_period", double(config_.rotation_period)},
            {"sink_frames", double(config_.sink_frames)},     {"layer_shift", double(config_.layer_shift)},
            {"qblock_shift", double(config_.qblock_shift)}};
  }

 private:
  // The masks of recent anchor phases, least recently used evicted. A 50-step job meets
  // steps + layers · layer_shift phases at most (≈ 80 for Wan's 30 layers), and step s + 1 reuses
  // all but one of step s's (the conditional and unconditional passes share them too), so the
  // per-call device build and its read-back of row sizes — a host synchronisation per layer — run
  // about once per step instead of once per layer and pass. Bounded by count and by bytes (the
  // host arrays and the device copy of each mask).
  struct CacheKey {
    TokenGrid grid;
    int64_t block_size = 0;
    torch::Device device{torch::kCPU};
    int64_t heads = 0;
    int64_t phase = 0;
    bool operator==(const CacheKey& o) const {
      return grid == o.grid && block_size == o.block_size && device == o.device && heads == o.heads && phase == o.phase;
    }
  };
  class PhaseCache {
   public:
    static constexpr size_t kMaxEntries = 96;
    static constexpr int64_t kMaxBytes = int64_t(256) << 20;
    BlockMaskPtr find(const CacheKey& k) {
      for (auto& e : entries_)
        if (e.key == k) {
          e.used = ++tick_;
          return e.mask;
        }
      return nullptr;
    }
    void put(const CacheKey& k, BlockMaskPtr mask) {
      const int64_t bytes = 2 * 4 * static_cast<int64_t>(mask->row_offsets.size() + mask->kept_blocks());
      if (bytes > kMaxBytes) return;
      while (!entries_.empty() && (entries_.size() >= kMaxEntries || bytes_ + bytes > kMaxBytes)) {
        auto lru = std::min_element(entries_.begin(), entries_.end(),
                                    [](const Entry& a, const Entry& b) { return a.used < b.used; });
        bytes_ -= lru->bytes;
        entries_.erase(lru);
      }
      entries_.push_back({k, std::move(mask), bytes, ++tick_});
      bytes_ += bytes;
    }
    void clear() {
      entries_.clear();
      bytes_ = 0;
    }

   private:
    struct Entry {
      CacheKey key;
      BlockMaskPtr mask;
      int64_t bytes = 0;
      uint64_t used = 0;
    };
    std::vector<Entry> entries_;
    int64_t bytes_ = 0;
    uint64_t tick_ = 0;
  };

  BlockMaskPtr build_on_host(const MaskRequest& r, const detail::BlockGeometry& geo) const {
    const int64_t nb = geo.num_blocks();
    std::vector<std::vector<int32_t>> rows(static_cast<size_t>(nb));
    const auto base = window_keep(r.grid, geo);
    for (int64_t i = 0; i < nb; ++i) {
      std::vector<uint8_t> keep(base.begin() + i * nb, base.begin() + (i + 1) * nb);
      for (int32_t j : local_anchor_blocks(config_, nb, i, r.layer, r.step)) keep[static_cast<size_t>(j)] = 1;
      for (int64_t j = 0; j < nb; ++j) {
        if (keep[static_cast<size_t>(j)]) rows[static_cast<size_t>(i)].push_back(static_cast<int32_t>(j));
      }
    }
    return std::make_shared<const BlockMask>(
        detail::mask_from_rows(rows, r.grid.size(), r.block_size, 1, OrderingKind::Raster));
  }

  // The step-independent part [nb × nb] (row i, key j): window, sink and diagonal blocks.
  std::vector<uint8_t> window_keep(const TokenGrid& grid, const detail::BlockGeometry& geo) const {
    const int64_t nb = geo.num_blocks(), T = grid.t, w = config_.window_frames;
    auto window = [&](int64_t t, int64_t& lo, int64_t& hi) {
      lo = std::max<int64_t>(0, std::min(t - w, T - 1 - 2 * w));
      hi = std::min<int64_t>(T - 1, std::max(t + w, 2 * w));
    };
    std::vector<uint8_t> keep(static_cast<size_t>(nb * nb), 0);
    for (int64_t i = 0; i < nb; ++i) {
      const auto& qi = geo.block(i);
      int64_t lo = T, hi = -1;
      for (int64_t t = qi.t0; t <= qi.t1; ++t) {
        int64_t a, b;
        window(t, a, b);
        lo = std::min(lo, a);
        hi = std::max(hi, b);
      }
      for (int64_t j = 0; j < nb; ++j) {
        const auto& kj = geo.block(j);
        const bool in_time = kj.t1 >= lo && kj.t0 <= hi;
        if ((in_time && geo.spatial_gap(i, j) <= config_.spatial_window) || kj.t0 < config_.sink_frames || j == i)
          keep[static_cast<size_t>(i * nb + j)] = 1;
      }
    }
    return keep;
  }

  // On a CUDA device: the window part is built once per (grid, block, device) by the loop above
  // and kept there; each call scatters the rows' anchors (the same formula as
  // local_anchor_blocks, with shift = (step + layer · layer_shift) mod period) into a copy and
  // compacts it on the device (mask_from_keep_tensor).
  BlockMaskPtr build_on_device(const MaskRequest& r, const detail::BlockGeometry& geo, int64_t period, int64_t shift) {
    const int64_t nb = geo.num_blocks();
    if (!base_.defined() || base_grid_ != r.grid || base_block_ != r.block_size || base_.device() != r.device) {
      auto host = window_keep(r.grid, geo);
      base_ = torch::from_blob(host.data(), {1, nb, nb}, torch::kUInt8).to(r.device).to(torch::kBool);
      base_grid_ = r.grid;
      base_block_ = r.block_size;
    }
    auto keep = base_.clone();
    if (config_.anchors > 0) {
      const auto lopts = torch::TensorOptions().dtype(torch::kLong).device(r.device);
      const auto phase = (torch::arange(nb, lopts) * config_.qblock_shift + shift).remainder(period);   // [nb]
      const auto idx = (phase.unsqueeze(1) + torch::arange(config_.anchors, lopts).unsqueeze(0) * period).remainder(nb);
      keep[0].scatter_(1, idx, true);
    }
    return detail::mask_from_keep_tensor(keep, r.grid.size(), r.block_size, OrderingKind::Raster, r.num_heads);
  }

  LocalAnchorsConfig config_;
  PhaseCache cache_;
  bool last_cached_ = false;
  torch::Tensor base_;  // [1, nb, nb] bool on the device of the last GPU build
  TokenGrid base_grid_;
  int64_t base_block_ = 0;
};
}  // namespace

PolicyInfo local_anchors_policy_info() {
  return {"local-anchors",
          "Longshot's own: local temporal/spatial window + single anchor blocks rotating with query block, layer and step",
          {{"window_frames", "temporal half-window w: frames t-w..t+w", 1, 0, 4096, true, true, true},
           {"spatial_window", "max spatial gap (patches) between query and key block inside the window", 4, 0, 1e6, true, true, false},
           {"anchors", "global anchor key blocks per query block", 4, 0, 4096, true, true, true},
           {"rotation_period", "steps per full anchor rotation (0: ceil(blocks/anchors))", 0, 0, 1e6, true, true, true},
           {"sink_frames", "leading frames every query attends to", 1, 0, 4096, true, true, true},
           {"layer_shift", "anchor phase shift per layer", 1, 0, 1e6, true, true, true},
           {"qblock_shift", "anchor phase shift per query block", 1, 0, 1e6, true, true, true}},
          [](const ParamValues& v) { return make_local_anchors_policy(LocalAnchorsConfig::from(v)); }};
}

std::unique_ptr<MaskPolicy> make_local_anchors_policy(const LocalAnchorsConfig& config) {
  return std::make_unique<LocalAnchorsPolicy>(config);
}

}  // namespace longshot::attention

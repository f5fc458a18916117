// radial-dynamic — DynamicRad's dynamic-threshold mode: content-adaptive selection inside the
// radial prior.
//
// Candidates: the radial mask at keep_ratio = candidate_ratio (policy_radial.cpp). Per head h and
// query block i, the estimated mass of candidate key block j is
//   m_ij = softmax_j∈C(i) ( q̄_i · k̄_j / √D + log |j| )
// with q̄, k̄ the block means of Q and K (raster order, averaged over the batch) and |j| the
// block's token count (a block of n similar keys carries ~n times one key's mass). Blocks are
// taken in decreasing m_ij until their cumulative mass reaches tau; the diagonal and sink blocks
// are always kept and count toward it. tau = 1 keeps the whole candidate set.
// Seed silence: DynamicRad scores with the first two heads and keeps score >= threshold; we score
// every head (per-head masks) and use a cumulative-mass threshold so tau is scale-free in (0, 1].
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/attention/mask_tensor.h"
#include "engine/attention/policies.h"
#include "engine/attention/policy_util.h"

namespace longshot::attention {

RadialDynamicConfig RadialDynamicConfig::from(const ParamValues& v) {
  RadialDynamicConfig c;
  c.tau = detail::param(v, "tau");
  c.candidate_ratio = detail::param(v, "candidate_ratio");
  c.decay = detail::param(v, "decay");
  c.sink_frames = detail::param_int(v, "sink_frames");
  return c;
}

namespace {
class RadialDynamicPolicy final : public MaskPolicy {
 public:
  explicit RadialDynamicPolicy(const RadialDynamicConfig& c) : config_(c) {}
  std::string name() const override { return "radial-dynamic"; }
  bool needs_qk() const override { return true; }

  BlockMaskPtr build(const MaskRequest& r) override {
    detail::check_request(r, true, name());
    torch::NoGradGuard no_grad;
    RadialConfig prior;
    prior.keep_ratio = config_.candidate_ratio;
    prior.decay = config_.decay;
    prior.sink_frames = config_.sink_frames;
    const auto candidates = radial_keep(r.grid, r.block_size, prior);
    const detail::BlockGeometry geo(r.grid, r.block_size);
    const int64_t nb = geo.num_blocks(), H = r.num_heads, N = r.grid.size();

    // Block-pooled logits [H, nb, nb], averaged over the batch.
    auto qp = detail::pool_tokens(r.q, r.block_size).to(torch::kCPU);  // pool on the device, then copy
    auto kp = detail::pool_tokens(r.k, r.block_size).to(torch::kCPU);
    const double scale = 1.0 / std::sqrt(static_cast<double>(r.q.size(3)));
    auto logits = torch::matmul(qp, kp.transpose(2, 3)).mul_(scale).mean(0).to(torch::kFloat64).contiguous();
    auto acc = logits.accessor<double, 3>();
    std::vector<double> log_len(static_cast<size_t>(nb));
    for (int64_t j = 0; j < nb; ++j) {
      log_len[static_cast<size_t>(j)] = std::log(static_cast<double>(std::min(r.block_size, N - j * r.block_size)));
    }

    std::vector<std::vector<int32_t>> rows(static_cast<size_t>(H * nb));
    std::vector<int32_t> cand;
    std::vector<double> mass;
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < nb; ++i) {
        cand.clear();
        for (int64_t j = 0; j < nb; ++j) {
          if (candidates[static_cast<size_t>(i * nb + j)]) cand.push_back(static_cast<int32_t>(j));
        }
        mass.assign(cand.size(), 0.0);
        double peak = -INFINITY;
        for (size_t c = 0; c < cand.size(); ++c) {
          mass[c] = acc[h][i][cand[c]] + log_len[static_cast<size_t>(cand[c])];
          peak = std::max(peak, mass[c]);
        }
        double total = 0.0;
        for (auto& m : mass) total += (m = std::exp(m - peak));
        std::vector<size_t> order(cand.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return mass[a] > mass[b]; });
        auto& row = rows[static_cast<size_t>(h * nb + i)];
        double cum = 0.0;
        for (size_t c = 0; c < cand.size(); ++c) {
          const int32_t j = cand[c];
          if (j == i || geo.block(j).t0 < config_.sink_frames) {
            row.push_back(j);
            cum += mass[c];
          }
        }
        for (size_t o : order) {
          if (cum >= config_.tau * total) break;
          const int32_t j = cand[o];
          if (j == i || geo.block(j).t0 < config_.sink_frames) continue;
          row.push_back(j);
          cum += mass[o];
        }
        std::sort(row.begin(), row.end());
      }
    }
    return std::make_shared<const BlockMask>(detail::mask_from_rows(rows, N, r.block_size, H, OrderingKind::Raster));
  }

  ParamValues params() const override {
    return {{"tau", config_.tau},
            {"candidate_ratio", config_.candidate_ratio},
            {"decay", config_.decay},
            {"sink_frames", double(config_.sink_frames)}};
  }

 private:
  RadialDynamicConfig config_;
};
}  // namespace

PolicyInfo radial_dynamic_policy_info() {
  return {"radial-dynamic",
          "DynamicRad dynamic-threshold: inside the radial set, per head, keep key blocks up to cumulative estimated mass tau",
          {{"tau", "cumulative share of the candidates' estimated attention mass to keep", 0.9, 0.0, 1.0, false, true, false},
           {"candidate_ratio", "keep ratio of the radial candidate set", 0.5, 0.0, 1.0, false, true, false},
           {"decay", "temporal shrink exponent of the radial prior", 1.0, 0.0, 8.0, true, true, false},
           {"sink_frames", "leading frames every query attends to (first-frame sink)", 1, 0, 1024, true, true, true}},
          [](const ParamValues& v) { return make_radial_dynamic_policy(RadialDynamicConfig::from(v)); }};
}

std::unique_ptr<MaskPolicy> make_radial_dynamic_policy(const RadialDynamicConfig& config) {
  return std::make_unique<RadialDynamicPolicy>(config);
}

}  // namespace longshot::attention

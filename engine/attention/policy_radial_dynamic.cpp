// radial-mass (alias: radial-dynamic) — Longshot's own content-adaptive radial mode, not
// DynamicRad's dynamic_threshold (policy_dynamicrad.cpp is): block-mean scoring per head, a
// cumulative-mass cut, a new mask every call. It stays as the per-head, scale-free variant.
//
// Candidates: the radial mask at keep_ratio = candidate_ratio (policy_radial.cpp). Per head h and
// query block i, the estimated mass of candidate key block j is
//   m_ij = softmax_j∈C(i) ( q̄_i · k̄_j / √D + log |j| )
// with q̄, k̄ the block means of Q and K (raster order, averaged over the batch) and |j| the
// block's token count (a block of n similar keys carries ~n times one key's mass). Blocks are
// taken in decreasing m_ij until their cumulative mass reaches tau; the diagonal and sink blocks
// are always kept and count toward it. tau = 1 keeps the whole candidate set.
// On a GPU (q on CUDA, CUDA backend available) the selection is one kernel
// (cuda::cumulative_keep, fp32): per row it bisects for the mass θ of the last block the sorted
// loop would take and keeps the open candidates of mass >= θ. The tensor form (LibTorch ops in
// float64: sort, cumulative sum, scatter) serves CPU tensors and rows of more than 2048 blocks.
// Only the finished mask comes back; it keeps its device copy for the kernel.
// Seed silence: DynamicRad scores with the first two heads and keeps score >= threshold; we score
// every head (per-head masks) and use a cumulative-mass threshold so tau is scale-free in (0, 1].
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/attention/mask_tensor.h"
#include "engine/attention/policies.h"
#include "engine/attention/policy_util.h"

#ifdef LONGSHOT_HAS_CUDA
#include "engine/attention/cuda/torch_adapter.h"
#endif

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
// Both paths' pieces: the radial candidate set, each key block's log token count (a block of n
// similar keys carries ~n times one key's mass), and the block-pooled logits [H, nb, nb],
// batch-averaged, computed where the pooled Q/K are (float64 for the loops and the tensor form,
// fp32 for the selection kernel).
RadialConfig candidate_config(const RadialDynamicConfig& config) {
  RadialConfig prior;
  prior.keep_ratio = config.candidate_ratio;
  prior.decay = config.decay;
  prior.sink_frames = config.sink_frames;
  return prior;
}

std::vector<double> block_log_len(int64_t seq_len, int64_t block_size, int64_t nb) {
  std::vector<double> out(static_cast<size_t>(nb));
  for (int64_t j = 0; j < nb; ++j) {
    out[static_cast<size_t>(j)] = std::log(static_cast<double>(std::min(block_size, seq_len - j * block_size)));
  }
  return out;
}

torch::Tensor pooled_logits(const torch::Tensor& qp, const torch::Tensor& kp, int64_t head_dim,
                            torch::ScalarType dtype = torch::kFloat64) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const auto logits = torch::matmul(qp, kp.transpose(2, 3)).mul_(scale);
  return (logits.size(0) == 1 ? logits.select(0, 0) : logits.mean(0)).to(dtype);  // the batch mean
}

// The request-independent part of the tensor form, on q's device: which blocks are candidates,
// which are forced (diagonal, sinks), and log |j|. The policy keeps it while grid, block size
// and device stay (building the radial prior costs more than the selection at nb = 1536).
struct DevicePrior {
  TokenGrid grid;
  int64_t block_size = 0;
  torch::Device device{torch::kCPU};
  torch::Tensor cand, forced, open, log_len;  // [nb, nb] bool ×3, [1, 1, nb] float64
  torch::Tensor cand8, forced8, log_len32;     // the selection kernel's types, converted once
  bool fits(const MaskRequest& r) const {
    return cand.defined() && grid == r.grid && block_size == r.block_size && device == r.q.device();
  }
};

DevicePrior make_device_prior(const MaskRequest& r, const RadialDynamicConfig& config) {
  auto candidates = radial_keep(r.grid, r.block_size, candidate_config(config));
  const detail::BlockGeometry geo(r.grid, r.block_size);
  const int64_t nb = geo.num_blocks();
  std::vector<uint8_t> sink(static_cast<size_t>(nb));
  for (int64_t j = 0; j < nb; ++j) sink[static_cast<size_t>(j)] = geo.block(j).t0 < config.sink_frames ? 1 : 0;
  auto log_len = block_log_len(r.grid.size(), r.block_size, nb);
  DevicePrior out;
  out.grid = r.grid;
  out.block_size = r.block_size;
  out.device = r.q.device();
  const auto u8 = torch::TensorOptions().dtype(torch::kUInt8);
  // .to(kBool) / clone() copy out of the vectors, which die here.
  out.cand = torch::from_blob(candidates.data(), {nb, nb}, u8).to(out.device).to(torch::kBool);
  const auto sink_t = torch::from_blob(sink.data(), {1, nb}, u8).to(out.device).to(torch::kBool);
  const auto diag = torch::eye(nb, torch::TensorOptions().dtype(torch::kBool).device(out.device));
  out.forced = (diag | sink_t) & out.cand;
  out.open = out.cand & out.forced.logical_not();
  out.log_len = torch::from_blob(log_len.data(), {1, 1, nb}, torch::kFloat64).to(out.device).clone();
  out.cand8 = out.cand.to(torch::kUInt8);
  out.forced8 = out.forced.to(torch::kUInt8);
  out.log_len32 = out.log_len.to(torch::kFloat32).reshape({nb});
  return out;
}

torch::Tensor keep_with_prior(const MaskRequest& r, const RadialDynamicConfig& config, const DevicePrior& prior) {
  const int64_t nb = prior.cand.size(0), H = r.num_heads;
#ifdef LONGSHOT_HAS_CUDA
  if (detail::select_on_device(r) && nb <= 2048) {
    const auto logits = pooled_logits(detail::request_means(r, false, r.block_size), detail::request_means(r, true, r.block_size),
                                      r.q.size(3), torch::kFloat32);  // the kernel selects in fp32
    return cuda::cumulative_keep(logits, prior.log_len32, prior.cand8, prior.forced8, config.tau);
  }
#endif
  const auto logits = pooled_logits(detail::request_means(r, false, r.block_size), detail::request_means(r, true, r.block_size),
                                    r.q.size(3));  // [H, nb, nb]
  const auto not_cand = prior.cand.logical_not();
  const auto not_open = prior.open.logical_not();
  const auto forced64 = prior.forced.to(torch::kFloat64);

  const int64_t chunk = detail::heads_per_chunk(nb);
  std::vector<torch::Tensor> parts;
  for (int64_t h0 = 0; h0 < H; h0 += chunk) {
    const int64_t hc = std::min(chunk, H - h0);
    auto m = logits.narrow(0, h0, hc) + prior.log_len;
    m.masked_fill_(not_cand, -std::numeric_limits<double>::infinity());
    const auto peak = std::get<0>(m.max(-1, /*keepdim=*/true));
    const auto mass = (m - peak).exp_();  // 0 outside the candidates
    const auto total = mass.sum(-1, /*keepdim=*/true);
    const auto forced_mass = (mass * forced64).sum(-1, /*keepdim=*/true);
    // Non-forced candidates by decreasing mass; everything else sorts last as -1.
    const auto sorted = torch::sort(mass.masked_fill(not_open, -1.0), -1, /*descending=*/true);
    const auto& values = std::get<0>(sorted);
    const auto contrib = values.clamp_min(0.0);
    const auto before = contrib.cumsum(-1) - contrib;
    const auto keep_sorted = values.ge(0.0) & (forced_mass + before).lt(total * config.tau);
    auto keep = torch::zeros({hc, nb, nb}, prior.cand.options()).scatter_(-1, std::get<1>(sorted), keep_sorted);
    parts.push_back(keep | prior.forced);
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}
class RadialDynamicPolicy final : public MaskPolicy {
 public:
  explicit RadialDynamicPolicy(const RadialDynamicConfig& c) : config_(c) {}
  std::string name() const override { return "radial-mass"; }
  bool needs_qk() const override { return true; }
  int64_t qk_pool_group(int64_t block_size) const override { return block_size; }

  BlockMaskPtr build(const MaskRequest& r) override {
    detail::check_request(r, true, name());
    torch::NoGradGuard no_grad;
    if (detail::select_on_device(r)) {
      if (!prior_.fits(r)) prior_ = make_device_prior(r, config_);
      return detail::mask_from_keep_tensor(keep_with_prior(r, config_, prior_), r.grid.size(), r.block_size,
                                           OrderingKind::Raster);
    }
    const auto candidates = radial_keep(r.grid, r.block_size, candidate_config(config_));
    const detail::BlockGeometry geo(r.grid, r.block_size);
    const int64_t nb = geo.num_blocks(), H = r.num_heads, N = r.grid.size();

    // Pool on Q/K's device, then score on the CPU.
    auto logits = pooled_logits(detail::request_means(r, false, r.block_size).to(torch::kCPU),
                                detail::request_means(r, true, r.block_size).to(torch::kCPU), r.q.size(3))
                      .contiguous();
    auto acc = logits.accessor<double, 3>();
    const auto log_len = block_log_len(N, r.block_size, nb);

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

  void reset() override { prior_ = DevicePrior{}; }

 private:
  RadialDynamicConfig config_;
  DevicePrior prior_;  // the GPU path's candidates, kept across calls
};
}  // namespace

torch::Tensor radial_dynamic_keep(const MaskRequest& r, const RadialDynamicConfig& config) {
  detail::check_request(r, true, "radial-mass");
  torch::NoGradGuard no_grad;
  return keep_with_prior(r, config, make_device_prior(r, config));
}

PolicyInfo radial_dynamic_policy_info() {
  return {"radial-mass",
          "Longshot's own: inside the radial-ratio set, per head, keep key blocks up to cumulative estimated mass tau (rebuilt every call)",
          {{"tau", "cumulative share of the candidates' estimated attention mass to keep", 0.9, 0.0, 1.0, false, true, false},
           {"candidate_ratio", "keep ratio of the radial candidate set", 0.5, 0.0, 1.0, false, true, false},
           {"decay", "temporal shrink exponent of the radial prior", 1.0, 0.0, 8.0, true, true, false},
           {"sink_frames", "leading frames every query attends to (first-frame sink)", 1, 0, 1024, true, true, true}},
          [](const ParamValues& v) { return make_radial_dynamic_policy(RadialDynamicConfig::from(v)); },
          {"radial-dynamic"}};
}

std::unique_ptr<MaskPolicy> make_radial_dynamic_policy(const RadialDynamicConfig& config) {
  return std::make_unique<RadialDynamicPolicy>(config);
}

}  // namespace longshot::attention

// dynamicrad — DynamicRad (Adamlong3/DynamicRad @ 058ed5c) as attention/attn_mask.py builds its
// mask for Wan (model_type "wan"), frame pair by frame pair (gen_log_mask_shrinked, :225-415).
//
// P = tokens per latent frame (raster order inside the frame), b = the block size, d = |i − j|.
//  - i = j: every block touching frame i, rows and columns, kept (:262-273).
//  - j = 0 (i ≠ 0): the whole token pair kept (first-frame sink, :279-281).
//  - otherwise (get_window_width, :165-223): d <= 1 → window P and parameter "keep all" (ratio 1
//    / threshold −1e6); else L = 2^bitlen(P) / 2^bitlen(d) · decay: L >= b → window L with the
//    near parameter, else window b with the far parameter. Token pairs |ti − tj| <= window.
//  - Temporal striding (get_diagonal_split_mask, :95-115): L' = 2^bitlen(P) / 2^bitlen(d) ·
//    long_factor; if L' < b the pair survives only when d mod int(b / L') = 0.
//  - Selection among the surviving token pairs (:318-372), n of them: static_ratio keeps
//    k = min(max(⌊n·ratio⌋, b), n) of a seeded random permutation; dynamic_ratio the k best
//    scores; dynamic_threshold the scores >= threshold (the best one if none). Score = mean over
//    the first score_heads heads of q·k/√D.
//  - Token → block (shrinkMaskStrict, :70-80, :374-405): the pair's token mask is placed at the
//    frames' offsets inside their first blocks, cropped to ceil(P/b) blocks each way, and a block
//    is kept when, among its key columns with any kept token, the share whose kept-token density
//    (over b rows) exceeds col_density_threshold is above mask_threshold.
// One mask for every layer, head, step and CFG pass: built at the first sparse call (after the
// dense steps, in the first sparse layer, from that call's Q/K) and reused until reset (MaskMap,
// :418-432; the class attribute shared by every processor, models/wan2_1/attention.py:31).
// Choices where the authors' code cannot run or cannot be matched (docs/attention.md):
//  - Their final mask is ⌊N/b⌋ blocks square, so any grid whose frames are not a multiple of b
//    (Wan 480p: 1,560 tokens) crashes when the last frame's blocks are written (:398-413). Ours
//    has ⌈N/b⌉ blocks and clips the frame-pair writes to it; everything else is their rule,
//    including the crop that drops a frame's tail tokens from the density test.
//  - static_ratio draws from a CPU generator seeded seed + i·T + j (theirs: the query's device,
//    so on CUDA another stream of numbers); scores are fp32 (theirs fp16) from batch element 0
//    (they assert batch 1); ties in dynamic_ratio keep the raster order (a stable sort).
#include <algorithm>
#include <cmath>

#include "engine/attention/policies.h"
#include "engine/attention/policy_util.h"
#include "engine/common/error.h"

namespace longshot::attention {

DynamicRadConfig DynamicRadConfig::from(const ParamValues& v) {
  DynamicRadConfig c;
  c.select = static_cast<DynamicRadSelect>(detail::param_int(v, "select"));
  c.ratio_near = detail::param(v, "ratio_near");
  c.ratio_far = detail::param(v, "ratio_far");
  c.threshold_near = detail::param(v, "threshold_near");
  c.threshold_far = detail::param(v, "threshold_far");
  c.decay = detail::param(v, "decay");
  c.long_factor = detail::param(v, "long_factor");
  c.mask_threshold = detail::param(v, "mask_threshold");
  c.col_density_threshold = detail::param(v, "col_density_threshold");
  c.seed = detail::param_int(v, "seed");
  c.score_heads = detail::param_int(v, "score_heads");
  c.dense_steps = detail::param_int(v, "dense_steps");
  c.dense_layers = detail::param_int(v, "dense_layers");
  return c;
}

namespace {

int64_t bit_length(int64_t x) {
  int64_t n = 0;
  for (; x > 0; x >>= 1) ++n;
  return n;
}

// What the rule says for one frame pair (i ≠ j, j ≠ 0).
struct PairRule {
  bool alive = true;     // the striding split keeps the pair
  double window = 0;     // |ti − tj| <= window
  double param = 0;      // ratio (ratio modes) or threshold
  bool keeps_all = false;  // the parameter keeps every surviving token pair
};

PairRule pair_rule(int64_t d, int64_t P, int64_t b, const DynamicRadConfig& c) {
  PairRule r;
  const bool ratio_mode = c.select != DynamicRadSelect::DynamicThreshold;
  const double span = std::ldexp(1.0, static_cast<int>(bit_length(P))) / std::ldexp(1.0, static_cast<int>(bit_length(d)));
  if (d <= 1) {
    r.window = static_cast<double>(P);
    r.param = ratio_mode ? 1.0 : -1e6;
    r.keeps_all = true;
  } else if (span * c.decay >= static_cast<double>(b)) {
    r.window = span * c.decay;
    r.param = ratio_mode ? c.ratio_near : c.threshold_near;
  } else {
    r.window = static_cast<double>(b);
    r.param = ratio_mode ? c.ratio_far : c.threshold_far;
  }
  if (ratio_mode && r.param >= 1.0) r.keeps_all = true;
  const double split_len = span * c.long_factor;
  if (split_len < static_cast<double>(b)) {
    const auto split_factor = static_cast<int64_t>(static_cast<double>(b) / split_len);
    r.alive = d % split_factor == 0;
  }
  return r;
}

// shrinkMaskStrict on one frame pair's token mask [P, P] placed at row/column offsets rr, rc
// inside their first blocks: [nbf, nbf] bool, nbf = ceil(P / b).
torch::Tensor shrink(const torch::Tensor& local, int64_t rr, int64_t rc, int64_t b, const DynamicRadConfig& c) {
  const int64_t P = local.size(0), nbf = (P + b - 1) / b, L = nbf * b;
  auto padded = torch::zeros({L, L}, local.options());
  const int64_t rows = std::min(P, L - rr), cols = std::min(P, L - rc);
  padded.narrow(0, rr, rows).narrow(1, rc, cols).copy_(local.narrow(0, 0, rows).narrow(1, 0, cols));
  const auto blocks = padded.view({nbf, b, nbf, b}).permute({0, 2, 1, 3});           // [qb, kb, row, col]
  const auto density = blocks.sum(2).to(torch::kFloat).div(static_cast<double>(b));  // [qb, kb, col]
  const auto nonzero = density.gt(0).sum(-1);
  const auto high = density.gt(c.col_density_threshold).sum(-1);
  return high.to(torch::kFloat).div(nonzero.to(torch::kFloat).add(1e-9)).gt(c.mask_threshold);
}

}  // namespace

std::vector<uint8_t> dynamicrad_keep(const TokenGrid& grid, int64_t b, const DynamicRadConfig& c,
                                     const torch::Tensor& q, const torch::Tensor& k) {
  torch::NoGradGuard no_grad;
  const int64_t T = grid.t, P = grid.h * grid.w, N = grid.size();
  const int64_t nb = BlockMask::blocks_for(N, b), nbf = (P + b - 1) / b;
  const bool dynamic = c.select != DynamicRadSelect::StaticRatio && q.defined() && k.defined();
  const auto device = dynamic ? q.device() : torch::Device(torch::kCPU);
  const auto bopts = torch::TensorOptions().dtype(torch::kBool).device(device);
  auto keep = torch::zeros({nb, nb}, bopts);

  // Scores need only batch 0 and the first score_heads heads: [hs, N, D] fp32.
  torch::Tensor qs, ks;
  double scale = 1.0;
  if (dynamic) {
    const int64_t hs = std::min<int64_t>(std::max<int64_t>(1, c.score_heads), q.size(1));
    qs = q[0].narrow(0, 0, hs).to(torch::kFloat);
    ks = k[0].narrow(0, 0, hs).to(torch::kFloat);
    scale = 1.0 / (std::sqrt(static_cast<double>(q.size(3))) * static_cast<double>(hs));
  }
  const auto lopts = torch::TensorOptions().dtype(torch::kLong).device(device);
  const auto idx = torch::arange(P, lopts);
  const auto band = (idx.view({P, 1}) - idx.view({1, P})).abs();  // |ti − tj|
  const auto all = torch::ones({P, P}, bopts);

  auto write = [&](int64_t i, int64_t j, const torch::Tensor& blk) {
    const int64_t r0 = (i * P) / b, c0 = (j * P) / b;
    const int64_t nr = std::min(nbf, nb - r0), nc = std::min(nbf, nb - c0);
    if (nr <= 0 || nc <= 0) return;
    auto dst = keep.narrow(0, r0, nr).narrow(1, c0, nc);
    dst.logical_or_(blk.narrow(0, 0, nr).narrow(1, 0, nc));
  };

  for (int64_t i = 0; i < T; ++i) {
    const int64_t rr = (i * P) % b;
    torch::Tensor scores_i;  // [P, N]: mean over the scoring heads of q·k/√D, made when a pair needs it
    auto scores = [&]() -> const torch::Tensor& {
      if (!dynamic) throw ShapeError("dynamicrad: the dynamic selection modes need tensors 'q' and 'k'");
      if (!scores_i.defined()) scores_i = torch::matmul(qs.narrow(1, i * P, P), ks.transpose(1, 2)).sum(0).mul_(scale);
      return scores_i;
    };
    for (int64_t j = 0; j < T; ++j) {
      if (i == j) continue;  // the dense frame block, written below
      const int64_t rc = (j * P) % b;
      if (j == 0) {
        write(i, j, shrink(all, rr, rc, b, c));
        continue;
      }
      const PairRule rule = pair_rule(std::abs(i - j), P, b, c);
      if (!rule.alive) continue;  // an all-zero token mask keeps no block
      auto local = band.le(rule.window);
      if (!rule.keeps_all) {
        const auto flat = local.flatten();
        const auto valid = flat.nonzero().squeeze(1);  // raster order of (ti, tj), as valid_pairs
        const int64_t n = valid.size(0);
        if (n > 0) {
          torch::Tensor chosen;
          if (c.select == DynamicRadSelect::StaticRatio) {
            const int64_t kk = std::min(std::max(static_cast<int64_t>(static_cast<double>(n) * rule.param), b), n);
            auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(c.seed + i * T + j));
            const auto perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
            chosen = valid.index_select(0, perm.narrow(0, 0, kk).to(device));
          } else {
            const auto s = scores().narrow(1, j * P, P).flatten().index_select(0, valid);
            if (c.select == DynamicRadSelect::DynamicRatio) {
              const int64_t kk = std::min(std::max(static_cast<int64_t>(static_cast<double>(n) * rule.param), b), n);
              const auto order = std::get<1>(torch::sort(s, /*stable=*/true, 0, /*descending=*/true));
              chosen = valid.index_select(0, order.narrow(0, 0, kk));
            } else {
              auto pick = s.ge(rule.param);
              chosen = pick.any().item<bool>() ? valid.masked_select(pick) : valid.index_select(0, s.argmax().view({1}));
            }
          }
          local = torch::zeros({P * P}, bopts).index_fill_(0, chosen, true).view({P, P});
        }
      }
      write(i, j, shrink(local, rr, rc, b, c));
    }
    // i = j: every block touching frame i, in rows and columns (ceil at the end, as :266-270).
    const int64_t s0 = (i * P) / b, s1 = std::min(nb, ((i + 1) * P + b - 1) / b);
    keep.narrow(0, s0, s1 - s0).narrow(1, s0, s1 - s0).fill_(true);
  }
  const auto host = keep.to(torch::kCPU, torch::kUInt8).contiguous();
  return std::vector<uint8_t>(host.data_ptr<uint8_t>(), host.data_ptr<uint8_t>() + host.numel());
}

namespace {
class DynamicRadPolicy final : public MaskPolicy {
 public:
  explicit DynamicRadPolicy(const DynamicRadConfig& c) : config_(c) {}
  std::string name() const override { return "dynamicrad"; }
  bool needs_qk() const override { return config_.select != DynamicRadSelect::StaticRatio; }
  bool last_mask_cached() const override { return last_cached_; }
  void reset() override {
    mask_.reset();
    full_.reset();
    last_cached_ = false;
  }

  BlockMaskPtr build(const MaskRequest& r) override {
    detail::check_request(r, needs_qk(), name());
    last_cached_ = false;
    if (detail::dense_call(r, config_.dense_steps, config_.dense_layers))
      return full_.get(r.grid.size(), r.block_size, OrderingKind::Raster);
    if (mask_ && grid_ == r.grid && mask_->block_size == r.block_size) {
      last_cached_ = true;
      return mask_;
    }
    const auto keep = dynamicrad_keep(r.grid, r.block_size, config_, r.q, r.k);
    mask_ = std::make_shared<const BlockMask>(BlockMask::from_dense(keep, r.grid.size(), r.block_size, 1));
    grid_ = r.grid;
    return mask_;
  }

  ParamValues params() const override {
    return {{"select", double(static_cast<int>(config_.select))},
            {"ratio_near", config_.ratio_near},
            {"ratio_far", config_.ratio_far},
            {"threshold_near", config_.threshold_near},
            {"threshold_far", config_.threshold_far},
            {"decay", config_.decay},
            {"long_factor", config_.long_factor},
            {"mask_threshold", config_.mask_threshold},
            {"col_density_threshold", config_.col_density_threshold},
            {"seed", double(config_.seed)},
            {"score_heads", double(config_.score_heads)},
            {"dense_steps", double(config_.dense_steps)},
            {"dense_layers", double(config_.dense_layers)}};
  }

 private:
  DynamicRadConfig config_;
  BlockMaskPtr mask_;
  TokenGrid grid_;
  detail::FullMaskCache full_;
  bool last_cached_ = false;
};
}  // namespace

PolicyInfo dynamicrad_policy_info() {
  // Defaults: the paper script (scripts/run_radial_vbench.sh:9-31), block 32 aside (our kernels
  // take 64 or 128: the preset picks 64).
  return {"dynamicrad",
          "DynamicRad (Adamlong3/DynamicRad): radial prior per frame pair (same/adjacent frames and frame 0 whole, "
          "log-shrinking token bands, temporal striding), token selection, density -> blocks; one mask per generation",
          {{"select", "0 static_ratio, 1 dynamic_ratio, 2 dynamic_threshold", 2, 0, 2, true, true, true},
           {"ratio_near", "kept share of near-band token pairs (ratio modes; topk_ratio1)", 1.0, 0.0, 1.0, true, true, false},
           {"ratio_far", "kept share of far-band token pairs (ratio modes; topk_ratio2)", 1.0, 0.0, 1.0, true, true, false},
           {"threshold_near", "score threshold, near bands (dynamic_threshold)", 3.0, -1e6, 1e6, true, true, false},
           {"threshold_far", "score threshold, far bands (dynamic_threshold)", 4.0, -1e6, 1e6, true, true, false},
           {"decay", "decay_factor: band width scale 2^bitlen(P)/2^bitlen(d)", 0.2, 0.0, 1e3, true, true, false},
           {"long_factor", "temporal striding scale (far pairs kept every int(b/L') frames)", 2.0, 0.0, 1e3, false, true, false},
           {"mask_threshold", "share of dense key columns a block needs", 0.8, 0.0, 1.0, true, true, false},
           {"col_density_threshold", "kept-token density that makes a key column dense", 0.5, 0.0, 1.0, true, true, false},
           {"seed", "static_ratio's random seed (topk_seed)", 0, 0, 1e9, true, true, true},
           {"score_heads", "heads averaged for the scores (num_heads_to_fuse)", 2, 1, 4096, true, true, true},
           {"dense_steps", "leading denoising steps that run dense (paper: 12)", 12, 0, 1e6, true, true, true},
           {"dense_layers", "leading layers that run dense (paper: 1)", 1, 0, 1e6, true, true, true}},
          [](const ParamValues& v) { return make_dynamicrad_policy(DynamicRadConfig::from(v)); }};
}

std::unique_ptr<MaskPolicy> make_dynamicrad_policy(const DynamicRadConfig& config) {
  return std::make_unique<DynamicRadPolicy>(config);
}

}  // namespace longshot::attention

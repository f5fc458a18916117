// The built-in mask policies: one plain config struct and one factory per mode. The registry in
// mask_policy.cpp lists them explicitly (no static-init self-registration: a static library drops
// object files nothing references). Attention core: no model, no sampler, no pipeline.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/attention/mask_policy.h"

namespace longshot::attention {

// dense: every block pair.
struct DenseConfig {
  static DenseConfig from(const ParamValues& values);
};
PolicyInfo dense_policy_info();
std::unique_ptr<MaskPolicy> make_dense_policy(const DenseConfig& config);

// radial-ratio (Longshot's own; alias radial): pairs ranked by the radial distance
// ρ = (1 + spatial gap) · (1 + temporal gap)^decay, kept in rank order until keep_ratio of all
// block pairs is reached; diagonal and first-frame sink blocks always kept. One mask for all heads.
struct RadialConfig {
  double keep_ratio = 0.3;
  double decay = 1.0;       // exponent of the temporal shrink of the spatial window
  int64_t sink_frames = 1;  // key blocks touching the first sink_frames frames are kept for every query
  static RadialConfig from(const ParamValues& values);
};
PolicyInfo radial_policy_info();
std::unique_ptr<MaskPolicy> make_radial_policy(const RadialConfig& config);
// The radial keep matrix [num_q_blocks × num_k_blocks] (raster blocks), shared by radial-dynamic.
std::vector<uint8_t> radial_keep(const TokenGrid& grid, int64_t block_size, const RadialConfig& config);

// radial-mass (Longshot's own; alias radial-dynamic): inside the radial candidate set (candidate_ratio),
// per head, keep the key blocks with the largest estimated mass (softmax of block-pooled Q·Kᵀ over
// the candidates) until their cumulative share reaches tau.
struct RadialDynamicConfig {
  double tau = 0.9;
  double candidate_ratio = 0.5;
  double decay = 1.0;
  int64_t sink_frames = 1;
  static RadialDynamicConfig from(const ParamValues& values);
};
PolicyInfo radial_dynamic_policy_info();
std::unique_ptr<MaskPolicy> make_radial_dynamic_policy(const RadialDynamicConfig& config);

// dfs-adaptive (Longshot's own extension of DFSAttn; alias dfs): Hilbert order; 16-token tile scores → block scores (fine) → region scores
// (coarse); per-head adaptive keep ratios with mean keep_ratio; masks cached per layer and
// refreshed at steps warmup_steps + i·refresh_interval.
struct DfsConfig {
  double keep_ratio = 0.3;
  int64_t tile_size = 16;
  int64_t region_blocks = 4;      // key blocks per coarse region (consecutive in Hilbert order)
  double candidate_factor = 2.0;  // candidate regions must hold >= factor × the row's budget
  double adaptivity = 1.0;        // 0: same ratio for every head; 1: proportional to spread
  double concentration_mass = 0.9;
  int64_t refresh_interval = 12;
  int64_t warmup_steps = 0;       // steps before the first sparse mask return the full mask
  double ratio_step = 0.0;        // keep ratio drops by this at every refresh (DFSAttn: 0.1)
  double min_keep_ratio = 0.05;
  static DfsConfig from(const ParamValues& values);
};
PolicyInfo dfs_policy_info();
std::unique_ptr<MaskPolicy> make_dfs_policy(const DfsConfig& config);

// The tensor form of the dynamic modes' selection, what runs on the GPU: a bool keep matrix
// [num_heads, nb, nb] on q's device, built with LibTorch ops from the same formulas as the
// policies' CPU loops (the oracle; they stay the path for CPU tensors). Any device works, so
// the CPU tests compare the two forms too. Rows always keep their diagonal block.
torch::Tensor radial_dynamic_keep(const MaskRequest& request, const RadialDynamicConfig& config);
// dfs's scoring and selection at keep ratio `ratio` (warm-up, cache and refresh stay in the policy).
torch::Tensor dfs_keep(const MaskRequest& request, const DfsConfig& config, double ratio);

// local-anchors (Longshot's own; the mode once called lvsa): raster blocks; a query block sees key
// blocks in frames within ±window_frames (slid inward at the video's ends) whose spatial gap is
// <= spatial_window patches, the first sink_frames frames, and `anchors` global key blocks
// (phase + j·P) mod num_blocks where phase = (step + layer·layer_shift + query_block·qblock_shift)
// mod P and P = rotation_period.
struct LocalAnchorsConfig {
  int64_t window_frames = 1;
  double spatial_window = 4.0;
  int64_t anchors = 4;
  int64_t rotation_period = 0;  // 0: ceil(num_blocks / anchors), the shortest full-coverage period
  int64_t sink_frames = 1;
  int64_t layer_shift = 1;
  int64_t qblock_shift = 1;
  static LocalAnchorsConfig from(const ParamValues& values);
};
PolicyInfo local_anchors_policy_info();
std::unique_ptr<MaskPolicy> make_local_anchors_policy(const LocalAnchorsConfig& config);
// The anchor key blocks of one row (exposed for tests and the studio's overlay).
std::vector<int32_t> local_anchor_blocks(const LocalAnchorsConfig& config, int64_t num_blocks, int64_t query_block,
                                         int layer, int step);

// ---- The papers' modes, as their authors' code runs them (docs/attention.md maps each rule to
// the authors' file:line). Each takes dense_steps / dense_layers: calls at a step < dense_steps
// or in a layer < dense_layers get the full mask, which the model runs as plain dense attention.

// lvsa (LVSA, gglorian/LVSA): whole latent frames. Every query frame attends the global frames
// G(step) — the first first_frames frames plus every kfi-th frame from a rotating offset — and a
// window of 2W+1 non-global frames around it. kfi comes from the reference horizon (the model's
// training length) times sparsity_scale, so the mode is fully dense at or below it.
struct LvsaConfig {
  int64_t window_frames = 3;     // W, latent frames (LVSA's example: 12 video frames / 4)
  int64_t first_frames = 1;      // n_first, latent frames (4 video frames / 4)
  double sparsity_scale = 1.0;
  int64_t reference_frames = 0;  // 0: the model's (MaskRequest::reference_frames), else LVSA's 21
  int64_t keyframe_interval = 0; // 0: automatic (compute_auto_kfi); > 0: fixed kfi
  bool rotate = true;            // --rotate-keyframes
  bool expand_window = true;     // window widened to 2W+1 non-global frames
  int64_t dense_steps = 0;
  int64_t dense_layers = 0;
  static LvsaConfig from(const ParamValues& values);
};
PolicyInfo lvsa_policy_info();
std::unique_ptr<MaskPolicy> make_lvsa_policy(const LvsaConfig& config);

// The frame-level pattern of LVSA for T frames at one denoising step: the geometry after LVSA's
// auto-scaling, its kfi, the global frames and, per query frame, the attended frames.
struct LvsaPattern {
  int64_t window_frames = 0, first_frames = 0, reference_frames = 0, kfi = 0, offset = 0;
  std::vector<int64_t> globals;                 // sorted
  std::vector<std::vector<uint8_t>> attended;   // [T][T]: query frame → key frames
  bool dense() const;                           // every frame attends every frame
  double sparsity() const;                      // 1 − attended pairs / T²
};
LvsaPattern lvsa_pattern(const LvsaConfig& config, int64_t frames, int64_t model_reference_frames, int step);
// LVSA's compute_auto_kfi (sparse_attention.py:132-195).
int64_t lvsa_auto_kfi(int64_t frames, int64_t window, int64_t first_frames, int64_t reference_frames,
                      double sparsity_scale);

// dynamicrad (DynamicRad, Adamlong3/DynamicRad): per latent-frame pair (i, j), a token mask over
// the frames' raster indices — same frame dense; |i−j| <= 1 and key frame 0 kept whole; else a
// band |ti − tj| <= 2^bitlen(P) / 2^bitlen(|i−j|) · decay (one block wide once narrower, with the
// "far" parameter), dropped unless |i−j| is a multiple of the stride set by long_factor — then
// thinned by the selection mode, and turned into blocks by the column-density rule. Built once per
// generation at the first sparse call and shared by every layer, head and step.
enum class DynamicRadSelect { StaticRatio = 0, DynamicRatio = 1, DynamicThreshold = 2 };
struct DynamicRadConfig {
  DynamicRadSelect select = DynamicRadSelect::DynamicThreshold;
  double ratio_near = 1.0, ratio_far = 1.0;          // topk_ratio1 / topk_ratio2 (ratio modes)
  double threshold_near = 3.0, threshold_far = 4.0;  // near/far_frame_threshold (threshold mode)
  double decay = 0.2;                                // decay_factor
  double long_factor = 2.0;
  double mask_threshold = 0.8;
  double col_density_threshold = 0.5;
  int64_t seed = 0;                                  // topk_seed (static_ratio)
  int64_t score_heads = 2;                           // num_heads_to_fuse
  int64_t dense_steps = 12;
  int64_t dense_layers = 1;
  static DynamicRadConfig from(const ParamValues& values);
};
PolicyInfo dynamicrad_policy_info();
std::unique_ptr<MaskPolicy> make_dynamicrad_policy(const DynamicRadConfig& config);
// DynamicRad's block keep matrix [nb × nb] (uint8, raster blocks) for a grid: q/k [B, H, N, D]
// are read for the dynamic modes only (undefined tensors are fine for static_ratio).
std::vector<uint8_t> dynamicrad_keep(const TokenGrid& grid, int64_t block_size, const DynamicRadConfig& config,
                                     const torch::Tensor& q, const torch::Tensor& k);

// dfsattn (DFSAttn, jessica-hujie/DFSAttn): Hilbert order; zero-padded 16-token tiles, block
// score = Σ of tile softmax probabilities; per head and query block plain top-k with
// k = max(1, ⌊ratio · nb⌋); masks cached per layer, refreshed every refresh_interval steps after
// warmup_steps with ratio keep_ratio − i·ratio_step, no refresh once that would reach 0.
struct DfsAttnConfig {
  double keep_ratio = 0.3;       // --sparsity (the kept share)
  double ratio_step = 0.1;       // --sparsity_dcrt
  int64_t refresh_interval = 12; // --cache_interval
  int64_t tile_size = 16;
  int64_t warmup_steps = 12;     // --skip_steps (dense)
  int64_t dense_layers = 1;      // --skip_layers [0]
  static DfsAttnConfig from(const ParamValues& values);
};
PolicyInfo dfsattn_policy_info();
std::unique_ptr<MaskPolicy> make_dfsattn_policy(const DfsAttnConfig& config);
// DFSAttn's schedule (_compute_cache_schedule, attention_wan.py:27-52) in true steps: the refresh
// index the step's mask belongs to and its keep ratio (steps before warm-up: index −1).
void dfsattn_schedule(const DfsAttnConfig& config, int step, int64_t& refresh, double& ratio);
// DFSAttn's per-head keep [H, nb, nb] bool at keep ratio `ratio` (Hilbert-ordered q/k).
torch::Tensor dfsattn_keep(const MaskRequest& request, const DfsAttnConfig& config, double ratio);

}  // namespace longshot::attention

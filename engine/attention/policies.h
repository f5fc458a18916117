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

// radial (DynamicRad static-ratio): pairs ranked by the radial distance
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

// radial-dynamic (DynamicRad dynamic-threshold): inside the radial candidate set (candidate_ratio),
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

// dfs (DFSAttn): Hilbert order; 16-token tile scores → block scores (fine) → region scores
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

// lvsa (LVSA): raster blocks; a query block sees key blocks in frames within ±window_frames
// (slid inward at the video's ends) whose spatial gap is <= spatial_window patches, the first
// sink_frames frames, and `anchors` global key blocks (phase + j·P) mod num_blocks where
// phase = (step + layer·layer_shift + query_block·qblock_shift) mod P and P = rotation_period.
struct LvsaConfig {
  int64_t window_frames = 1;
  double spatial_window = 4.0;
  int64_t anchors = 4;
  int64_t rotation_period = 0;  // 0: ceil(num_blocks / anchors), the shortest full-coverage period
  int64_t sink_frames = 1;
  int64_t layer_shift = 1;
  int64_t qblock_shift = 1;
  static LvsaConfig from(const ParamValues& values);
};
PolicyInfo lvsa_policy_info();
std::unique_ptr<MaskPolicy> make_lvsa_policy(const LvsaConfig& config);
// The anchor key blocks of one row (exposed for tests and the studio's overlay).
std::vector<int32_t> lvsa_anchor_blocks(const LvsaConfig& config, int64_t num_blocks, int64_t query_block, int layer,
                                        int step);

}  // namespace longshot::attention

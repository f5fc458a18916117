// Shared helpers of the mask policies: request checks, block geometry of raster-ordered blocks,
// typed reads of resolved parameters. Internal to the attention core; no model, no pipeline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/attention/block_mask.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/token_grid.h"

namespace longshot::attention::detail {

// Throws ParameterError naming block_size / num_heads / grid (grid vs q's N) when they do not fit;
// when needs_qk, also checks q/k are [B, H, N, D] with H == num_heads.
void check_request(const MaskRequest& request, bool needs_qk, const std::string& mode);

// Where a block of consecutive raster tokens lies in the grid: its frame range and the bounding
// box of its rows/columns (over all frames it touches). Raster blocks are row strips; a block that
// straddles a frame boundary is represented by the union box (documented in docs/attention.md).
struct BlockExtent {
  int64_t t0 = 0, t1 = 0;  // inclusive frame range
  int64_t y0 = 0, y1 = 0;  // inclusive row range
  int64_t x0 = 0, x1 = 0;  // inclusive column range
};

class BlockGeometry {
 public:
  BlockGeometry(const TokenGrid& grid, int64_t block_size);
  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  const BlockExtent& block(int64_t b) const { return blocks_[static_cast<size_t>(b)]; }
  // Frames between the two blocks' frame ranges (0 when they share a frame).
  int64_t temporal_gap(int64_t a, int64_t b) const;
  // Euclidean gap between the two row/column boxes, in patches (0 when they overlap or touch).
  double spatial_gap(int64_t a, int64_t b) const;

 private:
  std::vector<BlockExtent> blocks_;
};

// Typed reads from a resolved ParamValues map (resolve_params guarantees presence and range).
double param(const ParamValues& values, const std::string& name);
int64_t param_int(const ParamValues& values, const std::string& name);

// CSR mask from per-row sorted key lists (rows head-major).
BlockMask mask_from_rows(const std::vector<std::vector<int32_t>>& rows, int64_t seq_len, int64_t block_size,
                         int64_t num_heads, OrderingKind ordering);

// The BlockMask of a keep tensor [num_heads, nb, nb] (bool, any device). On a CUDA device with
// the CUDA backend it is made there and the host mask carries it as its device copy (attention
// then skips the upload); otherwise it is copied to the CPU and built there. attention_heads:
// the head count attention will run with (a shared keep [1, nb, nb] gets its device schedule
// for all of them; 0 = keep's own head count).
// keep_diagonal: add every row's diagonal block (the policies that promise it); false leaves the
// rows as selected (dfsattn's plain top-k).
BlockMaskPtr mask_from_keep_tensor(const torch::Tensor& keep, int64_t seq_len, int64_t block_size,
                                   OrderingKind ordering, int64_t attention_heads = 0, bool keep_diagonal = true);

// The papers' dense schedule: true when this call runs at a step < dense_steps or in a layer <
// dense_layers (the policy then hands out the full mask, which the model runs as dense attention).
bool dense_call(const MaskRequest& request, int64_t dense_steps, int64_t dense_layers);
// One full mask per (tokens, block, ordering), reused: at 188k tokens a full mask holds 2.2 M
// blocks, too many to rebuild for every dense call of a warm-up.
class FullMaskCache {
 public:
  BlockMaskPtr get(int64_t seq_len, int64_t block_size, OrderingKind ordering);
  void reset() { mask_.reset(); }

 private:
  BlockMaskPtr mask_;
};
// True when a dynamic policy should score and select on q's device: q is a CUDA tensor and this
// build's CUDA backend can run there.
bool select_on_device(const MaskRequest& request);
// Means of the request's q (keys = false) or k over groups of `group` tokens, [B, H, ng, D] fp32:
// the pooled tensors the caller handed over when they are of this group, else pooled here.
torch::Tensor request_means(const MaskRequest& request, bool keys, int64_t group);
// Heads per chunk of the tensor-form selections, so a chunk's [heads, nb, nb] float64 work
// tensors stay near 16M entries (at 196k tokens, nb 1536: 7 heads).
int64_t heads_per_chunk(int64_t nb);

}  // namespace longshot::attention::detail

// Block masks for display: one head's query-block × key-block matrix as RGBA texture bytes (kept /
// dropped / reused-from-cache colors) and the token-grid extent of a block under the mask's
// ordering, for hover read-outs. Pure: no Qt, no GL.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/attention/block_mask.h"
#include "engine/attention/token_grid.h"

namespace longshot::ui {

struct Rgba8 {
  uint8_t r = 0, g = 0, b = 0, a = 255;
};

struct MaskColors {
  Rgba8 kept{236, 150, 60, 255};
  Rgba8 cached{90, 170, 235, 255};  // kept, but the mask was reused from the policy's cache
  Rgba8 dropped{28, 28, 36, 255};
};

// num_q_blocks rows (query block 0 on top) × num_k_blocks columns, 4 bytes per block pair.
// A shared mask (num_heads == 1) serves every head. Throws ParameterError("head", ...) when
// `head` is out of range.
std::vector<uint8_t> mask_to_rgba(const attention::BlockMask& mask, int64_t head, bool from_cache,
                                  const MaskColors& colors = {});

// Kept block pairs of one head's row, per query block (the row's density read-out).
std::vector<int64_t> kept_per_row(const attention::BlockMask& mask, int64_t head);

// The grid-space bounding box of the tokens in block `block` (positions [block*bs, ...) of the
// ordered sequence), and the (t, h, w) of its first token.
struct BlockExtent {
  int64_t first_t = 0, first_h = 0, first_w = 0;
  int64_t t0 = 0, t1 = 0, h0 = 0, h1 = 0, w0 = 0, w1 = 0;  // inclusive
  int64_t tokens = 0;
};
// Throws ParameterError("block", ...) when the block is out of range.
BlockExtent block_extent(const attention::Ordering& ordering, int64_t block_size, int64_t block);

}  // namespace longshot::ui

// Token orderings for display: the walk of an Ordering (raster or 3D Hilbert) as a polyline over
// the token grid with the T frames tiled side by side, colored by sequence position, and the block
// each cell falls in (the mask's block boundaries). Pure: no Qt, no GL.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/attention/token_grid.h"

namespace longshot::ui {

struct OrderingDrawing {
  int64_t tile_w = 0, tile_h = 0, gap = 0, columns = 0;
  // In cell units, cell centres: point p is the token at sequence position p. A frame tile t sits
  // at x offset (t % columns) * (W + gap), y offset (t / columns) * (H + gap).
  std::vector<float> x, y;
  std::vector<float> position;       // p / (N − 1), for coloring
  std::vector<int64_t> block_of_cell;  // raster token → block index (position / block_size)
  int64_t num_blocks = 0;
  float width = 0, height = 0;  // extent in cell units
};

// Throws ParameterError("block_size", ...) / ("columns", ...) for non-positive values.
OrderingDrawing draw_ordering(const attention::Ordering& ordering, int64_t block_size, int64_t columns,
                              int64_t gap = 1);

// The largest grid whose walk the panel builds: 2^24 tokens (Wan2.1 at 720p x 121 frames is 0.2 M).
// A larger one (a job that asked for more than any machine runs, e.g. one that failed out of memory)
// would need gigabytes just to draw.
inline constexpr int64_t kMaxOrderingTokens = int64_t(1) << 24;

// Empty when `grid`'s walk can be drawn, else the sentence saying why not (its size, the limit).
std::string ordering_too_large(const attention::TokenGrid& grid);

// Points of one frame only, in sequence order, as runs of consecutive positions (the walk leaves
// and re-enters a frame in 3D orders): each run is a list of point indices.
std::vector<std::vector<int64_t>> frame_runs(const attention::Ordering& ordering, int64_t frame);

}  // namespace longshot::ui

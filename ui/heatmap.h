// Attention heatmaps for display: pooling a T×H×W map of attention mass down to the pixels a panel
// has, mapping it to [0, 1] on a linear or log scale, and tiling the T frames into one atlas
// texture. Pure: no Qt, no GL (the panel uploads the atlas; the colormap is applied in a shader).
#pragma once
#include <string>
#include <vector>

#include "engine/attention/token_grid.h"

namespace longshot::ui {

enum class Pooling { Sum, Max };
enum class HeatScale { Linear, Log };

// Pools `values` (raster order over `in`) onto `out`, each axis no larger than in `in`. Output cell
// i of an axis of length n covers input cells [floor(i*m/n), floor((i+1)*m/n)) of length m, so every
// input cell lands in exactly one output cell and Sum keeps the total mass.
// Throws ShapeError when sizes do not fit.
std::vector<float> pool_grid(const std::vector<float>& values, const attention::TokenGrid& in,
                             const attention::TokenGrid& out, Pooling pooling = Pooling::Sum);

// The largest grid with the same T that fits a frame into max_h × max_w cells, keeping H:W.
attention::TokenGrid fit_grid(const attention::TokenGrid& in, int64_t max_h, int64_t max_w);

// Maps v to [0, 1]: Linear v / vmax; Log spans `decades` decades below vmax (values under the
// floor map to 0). vmax <= 0 maps everything to 0.
float normalize_value(float v, float vmax, HeatScale scale, float decades = 4.f);

// Tick positions (in [0, 1] along the legend) with their labels ("1.2e-03").
struct LegendTick {
  float position = 0;
  float value = 0;
  std::string label;
};
std::vector<LegendTick> legend_ticks(float vmax, HeatScale scale, int count = 5, float decades = 4.f);

// The T frames of a heatmap tiled row-major into `columns` columns with `gap` cells between tiles.
// Gap cells hold −1 (the shader draws them as background).
struct HeatmapAtlas {
  int width = 0, height = 0;
  int columns = 0, rows = 0;
  int tile_w = 0, tile_h = 0, gap = 0;
  std::vector<float> values;  // width * height, row-major, top row first
  float vmax = 0;
  // Atlas cell (x, y) → grid coordinates; false on a gap cell or outside.
  bool cell_to_grid(int x, int y, int64_t& t, int64_t& h, int64_t& w) const;
};
HeatmapAtlas make_atlas(const std::vector<float>& values, const attention::TokenGrid& grid, int columns, int gap = 1);

}  // namespace longshot::ui

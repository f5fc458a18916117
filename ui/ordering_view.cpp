#include "ui/ordering_view.h"

#include <string>

#include "engine/common/error.h"

namespace longshot::ui {

std::string ordering_too_large(const attention::TokenGrid& grid) {
  if (grid.size() <= kMaxOrderingTokens) return "";
  return "The " + grid.to_string() + " token grid has " + std::to_string(grid.size()) +
         " tokens: the walk is drawn for grids of up to " + std::to_string(kMaxOrderingTokens) + " tokens.";
}

OrderingDrawing draw_ordering(const attention::Ordering& ordering, int64_t block_size, int64_t columns, int64_t gap) {
  if (block_size < 1) throw ParameterError("block_size", "must be positive, got " + std::to_string(block_size));
  if (columns < 1) throw ParameterError("columns", "must be positive, got " + std::to_string(columns));
  const auto& g = ordering.grid;
  const int64_t n = static_cast<int64_t>(ordering.perm.size());
  if (n != g.size())
    throw ShapeError("ordering: " + std::to_string(n) + " positions for grid " + g.to_string());
  OrderingDrawing d;
  d.tile_w = g.w;
  d.tile_h = g.h;
  d.gap = gap;
  d.columns = std::min(columns, g.t);
  const int64_t rows = (g.t + d.columns - 1) / d.columns;
  d.width = static_cast<float>(d.columns * g.w + (d.columns - 1) * gap);
  d.height = static_cast<float>(rows * g.h + (rows - 1) * gap);
  d.x.resize(n);
  d.y.resize(n);
  d.position.resize(n);
  d.block_of_cell.resize(n);
  d.num_blocks = (n + block_size - 1) / block_size;
  for (int64_t p = 0; p < n; ++p) {
    int64_t t, h, w;
    g.coords(ordering.perm[p], t, h, w);
    d.x[p] = static_cast<float>((t % d.columns) * (g.w + gap) + w) + 0.5f;
    d.y[p] = static_cast<float>((t / d.columns) * (g.h + gap) + h) + 0.5f;
    d.position[p] = n > 1 ? static_cast<float>(p) / (n - 1) : 0.f;
    d.block_of_cell[ordering.perm[p]] = p / block_size;
  }
  return d;
}

std::vector<std::vector<int64_t>> frame_runs(const attention::Ordering& ordering, int64_t frame) {
  const auto& g = ordering.grid;
  if (frame < 0 || frame >= g.t)
    throw ParameterError("frame", std::to_string(frame) + " is outside the grid's " + std::to_string(g.t) + " frames");
  std::vector<std::vector<int64_t>> runs;
  int64_t last = -2;
  for (int64_t p = 0; p < static_cast<int64_t>(ordering.perm.size()); ++p) {
    if (ordering.perm[p] / g.frame_size() != frame) continue;
    if (p != last + 1) runs.emplace_back();
    runs.back().push_back(p);
    last = p;
  }
  return runs;
}

}  // namespace longshot::ui

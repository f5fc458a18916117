#include "ui/heatmap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/common/error.h"

namespace longshot::ui {

namespace {
// Output bin of input cell i when an axis of length m pools to n: inverse of [floor(j*m/n), floor((j+1)*m/n)).
std::vector<int64_t> bin_of(int64_t m, int64_t n) {
  std::vector<int64_t> bins(m);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = j * m / n; i < (j + 1) * m / n; ++i) bins[i] = j;
  return bins;
}
}  // namespace

std::vector<float> pool_grid(const std::vector<float>& values, const attention::TokenGrid& in,
                             const attention::TokenGrid& out, Pooling pooling) {
  if (static_cast<int64_t>(values.size()) != in.size())
    throw ShapeError("heatmap values: " + std::to_string(values.size()) + " entries for grid " + in.to_string());
  if (out.t < 1 || out.h < 1 || out.w < 1 || out.t > in.t || out.h > in.h || out.w > in.w)
    throw ShapeError("heatmap pooling: output grid " + out.to_string() + " must be non-empty and fit in " +
                     in.to_string());
  const auto bt = bin_of(in.t, out.t), bh = bin_of(in.h, out.h), bw = bin_of(in.w, out.w);
  std::vector<float> result(out.size(), pooling == Pooling::Max ? -INFINITY : 0.f);
  for (int64_t t = 0; t < in.t; ++t)
    for (int64_t h = 0; h < in.h; ++h)
      for (int64_t w = 0; w < in.w; ++w) {
        const float v = values[in.index(t, h, w)];
        float& dst = result[out.index(bt[t], bh[h], bw[w])];
        dst = pooling == Pooling::Sum ? dst + v : std::max(dst, v);
      }
  return result;
}

attention::TokenGrid fit_grid(const attention::TokenGrid& in, int64_t max_h, int64_t max_w) {
  if (max_h < 1 || max_w < 1) throw ParameterError("max_size", "must be positive");
  if (in.h <= max_h && in.w <= max_w) return in;
  const double s = std::min(static_cast<double>(max_h) / in.h, static_cast<double>(max_w) / in.w);
  // The epsilon keeps 52 * (15 / 52) at 15, not 14.999...
  return {in.t, std::clamp<int64_t>(static_cast<int64_t>(in.h * s + 1e-9), 1, in.h),
          std::clamp<int64_t>(static_cast<int64_t>(in.w * s + 1e-9), 1, in.w)};
}

float normalize_value(float v, float vmax, HeatScale scale, float decades) {
  if (!(vmax > 0.f) || !(v > 0.f)) return 0.f;
  if (scale == HeatScale::Linear) return std::min(v / vmax, 1.f);
  const float x = 1.f + std::log10(v / vmax) / decades;
  return std::clamp(x, 0.f, 1.f);
}

std::vector<LegendTick> legend_ticks(float vmax, HeatScale scale, int count, float decades) {
  std::vector<LegendTick> ticks;
  if (count < 2) count = 2;
  for (int i = 0; i < count; ++i) {
    const float pos = static_cast<float>(i) / (count - 1);
    const float value = scale == HeatScale::Linear ? pos * vmax : vmax * std::pow(10.f, (pos - 1.f) * decades);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1e", static_cast<double>(value));
    ticks.push_back({pos, value, buf});
  }
  return ticks;
}

bool HeatmapAtlas::cell_to_grid(int x, int y, int64_t& t, int64_t& h, int64_t& w) const {
  if (x < 0 || y < 0 || x >= width || y >= height) return false;
  const int col = x / (tile_w + gap), row = y / (tile_h + gap);
  const int ix = x - col * (tile_w + gap), iy = y - row * (tile_h + gap);
  if (ix >= tile_w || iy >= tile_h) return false;
  const int frame = row * columns + col;
  if (frame >= columns * rows || values[static_cast<size_t>(y) * width + x] < 0.f) return false;
  t = frame;
  h = iy;
  w = ix;
  return true;
}

HeatmapAtlas make_atlas(const std::vector<float>& values, const attention::TokenGrid& grid, int columns, int gap) {
  if (static_cast<int64_t>(values.size()) != grid.size())
    throw ShapeError("heatmap values: " + std::to_string(values.size()) + " entries for grid " + grid.to_string());
  if (columns < 1) throw ParameterError("columns", "must be at least 1");
  if (gap < 0) throw ParameterError("gap", "must not be negative");
  HeatmapAtlas a;
  a.columns = static_cast<int>(std::min<int64_t>(columns, grid.t));
  a.rows = static_cast<int>((grid.t + a.columns - 1) / a.columns);
  a.tile_w = static_cast<int>(grid.w);
  a.tile_h = static_cast<int>(grid.h);
  a.gap = gap;
  a.width = a.columns * a.tile_w + (a.columns - 1) * gap;
  a.height = a.rows * a.tile_h + (a.rows - 1) * gap;
  a.values.assign(static_cast<size_t>(a.width) * a.height, -1.f);
  for (int64_t t = 0; t < grid.t; ++t) {
    const int x0 = static_cast<int>(t % a.columns) * (a.tile_w + gap);
    const int y0 = static_cast<int>(t / a.columns) * (a.tile_h + gap);
    for (int64_t h = 0; h < grid.h; ++h)
      for (int64_t w = 0; w < grid.w; ++w) {
        const float v = std::max(0.f, values[grid.index(t, h, w)]);
        a.values[static_cast<size_t>(y0 + h) * a.width + x0 + w] = v;
        a.vmax = std::max(a.vmax, v);
      }
  }
  return a;
}

}  // namespace longshot::ui

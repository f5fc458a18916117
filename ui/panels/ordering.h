// Hilbert ordering panel: the mask's (or a chosen) walk over the token grid, frame tiles side by
// side, with the block boundaries the walk makes. The walk is rebuilt only when the grid, the
// ordering, the block size or the tiling change.
#pragma once
#include <imgui.h>

#include <string>

#include "engine/attention/token_grid.h"
#include "ui/ordering_view.h"
#include "ui/panels/panel.h"

namespace longshot::ui {

class OrderingPanel : public Panel {
 public:
  const char* name() const override { return "Hilbert ordering"; }
  bool draw(PanelContext& ctx) override;

 private:
  void draw_cells(const attention::TokenGrid& g, int64_t frames, int64_t columns, bool show_blocks, ImVec2 p0, float sc);
  void draw_walk(const attention::TokenGrid& g, int64_t frames, const Colormap& colormap, ImVec2 p0, float sc);

  OrderingDrawing drawing_;
  attention::Ordering ordering_;
  std::string key_;     // grid, ordering, block size and columns of drawing_
  int choice_ = 0;      // 0 = the mask's, 1 = Hilbert, 2 = raster
  int frames_ = 4;      // frames shown
};

}  // namespace longshot::ui

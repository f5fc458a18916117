// Attention heatmap panel: T small H×W maps of one query's attention (one tile per frame, pooled
// to at most 48 cells a side), log or linear, with the colormap's legend. Its texture is rebuilt
// only when the run's heatmap (job, step), the columns, the scale or the colormap change.
#pragma once
#include <string>

#include "ui/gl.h"
#include "ui/heatmap.h"
#include "ui/panels/panel.h"

namespace longshot::ui {

class AttentionHeatmapPanel : public Panel {
 public:
  const char* name() const override { return "Attention heatmap"; }
  bool draw(PanelContext& ctx) override;

 private:
  void draw_toolbar(ViewSettings& v);
  void draw_legend(PanelContext& ctx);

  gl::Texture texture_;
  HeatmapAtlas atlas_;
  PayloadKey drawn_;
  int drawn_columns_ = 0;
  bool drawn_log_ = false;
  std::string drawn_colormap_;
};

}  // namespace longshot::ui

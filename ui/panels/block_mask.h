// Block mask panel: the query-block × key-block matrix of the inspected layer (kept, reused from
// the policy's cache, dropped), per head, with zoom about the mouse, drag to pan, and a hover
// read-out of each block's extent in (t, h, w). The texture is rebuilt only when the run's mask
// (job, step), the head or the cache flag change.
#pragma once
#include <imgui.h>

#include <string>

#include "engine/attention/block_mask.h"
#include "engine/attention/token_grid.h"
#include "ui/gl.h"
#include "ui/panels/panel.h"

namespace longshot::ui {

class BlockMaskPanel : public Panel {
 public:
  const char* name() const override { return "Block mask"; }
  bool draw(PanelContext& ctx) override;

 private:
  void draw_toolbar(const RunRecord& r, const attention::BlockMask& m, int heads);
  // Wheel zoom and drag pan over the matrix at p0 of `size`; returns whether it is hovered.
  bool navigate(ImVec2 p0, ImVec2 size);
  void draw_matrix(const attention::BlockMask& m, ImVec2 p0, ImVec2 size);
  void draw_tooltip(const RunRecord& r, const attention::BlockMask& m, int heads, bool grid_fits, ImVec2 p0, ImVec2 size);

  gl::Texture texture_;
  PayloadKey drawn_;  // the mask in texture_ ...
  int drawn_head_ = -1;
  bool drawn_cached_ = false;
  int head_ = 0;
  float zoom_ = 1.f;
  ImVec2 pan_{0, 0};
  attention::Ordering ordering_;  // for the hover read-out
  std::string ordering_key_;
};

}  // namespace longshot::ui

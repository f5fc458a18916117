// Sparsity & speed panel: a per-layer heat strip of the current run's sparsity (rows = layers,
// columns = steps, mode switches marked), the mean sparsity, step and attention times and the
// recall estimate per step, each with the previous finished run overlaid. The strip's texture is
// rebuilt only when the job, its step count or the colormap change.
#pragma once
#include <string>

#include "ui/gl.h"
#include "ui/panels/panel.h"

namespace longshot::ui {

class SparsityPanel : public Panel {
 public:
  const char* name() const override { return "Sparsity & speed"; }
  bool draw(PanelContext& ctx) override;

 private:
  void draw_strip(PanelContext& ctx, const RunRecord& r, int x_count);
  void draw_plots(const RunRecord& r, const RunRecord* prev, int x_count);

  gl::Texture texture_;
  uint64_t drawn_job_ = 0;
  size_t drawn_steps_ = 0;
  std::string drawn_colormap_;
};

}  // namespace longshot::ui

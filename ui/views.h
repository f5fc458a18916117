// The studio's six live views as Dear ImGui windows drawn with OpenGL 3: Preview, Attention
// heatmap, Hilbert ordering, Block mask, Sparsity & speed, Compare (A vs B, a one-parameter
// sweep plotted as a quality/speed trade-off, and a calibration table's BO trace). They read a StudioState (never
// the engine) and return what the user asked for as PanelActions; the shell carries those out.
// Each panel is a class of its own in ui/panels/ with its own state; Views tiles them.
// Needs a current GL 3.3 context and an ImGui frame; knows nothing of Qt.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ui/settings.h"
#include "ui/studio_state.h"

namespace longshot::calibrate {
struct TableTrace;
}  // namespace longshot::calibrate

namespace longshot::ui {

struct PanelActions {
  int64_t pick_query = -1;   // Preview: a click chose this raster token as the inspected query
  bool run_compare = false;  // Compare: generate the current request under modes A and B
  // Compare ▸ Sweep: a dense reference and one job per value of `sweep_param` of `sweep_mode`.
  bool run_sweep = false;
  std::string sweep_mode, sweep_param;
  std::vector<double> sweep_values;
};

// Where a panel drew last frame (framebuffer pixels, top-left origin) and whether it had data.
struct PanelRect {
  std::string name;
  float x = 0, y = 0, w = 0, h = 0;
  bool has_data = false;
};

class Views {
 public:
  // Compiles the shaders: the GL context must be current. Throws longshot::Error on GL failure.
  Views();
  ~Views();  // GL context must be current
  Views(const Views&) = delete;
  Views& operator=(const Views&) = delete;

  static const std::vector<std::string>& panel_names();
  // Mode names for the Compare panel's combos (attention::registered_policies(), from the shell).
  void set_modes(std::vector<std::string> modes);
  // The two jobs of the last A/B comparison; until set, the last two finished runs.
  void set_compare_jobs(uint64_t job_a, uint64_t job_b);
  // The jobs of the last sweep: the dense reference and one per value, in value order.
  void set_sweep_jobs(uint64_t reference, std::vector<uint64_t> jobs, std::string mode, std::string param,
                      std::vector<double> values);
  // Compare > Calibration: a table's BO trace (calibrate::read_trace), or none (null) with `error`
  // saying why loading failed ("" with no table: the tab says how to get one). `show`: select the tab.
  void set_calibration(std::shared_ptr<const calibrate::TableTrace> trace, std::string error, bool show = false);

  // Draws the visible panels tiled over width × height. Call between ImGui::NewFrame() and
  // ImGui::Render(); offscreen passes rebind `target_fbo` (QOpenGLWidget's framebuffer) after.
  PanelActions draw(const StudioState& state, ViewSettings& view, double dt_seconds, unsigned target_fbo,
                    float width, float height);
  const std::vector<PanelRect>& last_rects() const;
  // A clip is playing: the shell schedules the next frame (nothing else redraws on its own).
  bool animating() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longshot::ui

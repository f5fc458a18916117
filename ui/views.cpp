// Views: the panels (ui/panels/*, one class each with its own state) tiled over the GL widget,
// the colormap they share, the rects the self-test checks. Each panel draws in its own ImGui
// window; an exception in one is shown in that panel and never takes the window down.
#include "ui/views.h"

#include <new>

#include <imgui.h>

#include "ui/panels/attention_heatmap.h"
#include "ui/panels/block_mask.h"
#include "ui/panels/compare.h"
#include "ui/panels/ordering.h"
#include "ui/panels/panel_kit.h"
#include "ui/panels/preview.h"
#include "ui/panels/sparsity.h"

namespace longshot::ui {

struct Views::Impl {
  ColormapPass pass;
  Colormap colormap = Colormap::builtin("ember");
  std::vector<std::string> modes = {"dense"};
  std::vector<PanelRect> rects;
  // In panel_names() order; the typed pointers reach the panels the shell talks to.
  std::vector<std::unique_ptr<Panel>> panels;
  PreviewPanel* preview = nullptr;
  ComparePanel* compare = nullptr;

  Impl() {
    auto preview_panel = std::make_unique<PreviewPanel>();
    auto compare_panel = std::make_unique<ComparePanel>();
    preview = preview_panel.get();
    compare = compare_panel.get();
    panels.push_back(std::move(preview_panel));
    panels.push_back(std::make_unique<AttentionHeatmapPanel>());
    panels.push_back(std::make_unique<OrderingPanel>());
    panels.push_back(std::make_unique<BlockMaskPanel>());
    panels.push_back(std::make_unique<SparsityPanel>());
    panels.push_back(std::move(compare_panel));
  }
};

Views::Views() : impl_(std::make_unique<Impl>()) {}
Views::~Views() = default;

const std::vector<std::string>& Views::panel_names() {
  static const std::vector<std::string> names = {"Preview",     "Attention heatmap", "Hilbert ordering",
                                                 "Block mask",  "Sparsity & speed",  "Compare"};
  return names;
}

void Views::set_modes(std::vector<std::string> modes) { impl_->modes = std::move(modes); }
void Views::set_compare_jobs(uint64_t job_a, uint64_t job_b) { impl_->compare->set_jobs(job_a, job_b); }
const std::vector<PanelRect>& Views::last_rects() const { return impl_->rects; }
bool Views::animating() const { return impl_->preview->animating(); }
void Views::set_sweep_jobs(uint64_t reference, std::vector<uint64_t> jobs, std::string mode, std::string param,
                           std::vector<double> values) {
  impl_->compare->set_sweep({reference, std::move(jobs), std::move(mode), std::move(param), std::move(values)});
}
void Views::set_calibration(std::shared_ptr<const calibrate::TableTrace> trace, std::string error, bool show) {
  impl_->compare->set_calibration(std::move(trace), std::move(error), show);
}

PanelActions Views::draw(const StudioState& state, ViewSettings& view, double dt_seconds, unsigned target_fbo,
                         float width, float height) {
  Impl& m = *impl_;
  kit::resolve_colormap(m.colormap, view.colormap);
  PanelActions act;
  m.rects.clear();
  std::vector<Panel*> visible;
  for (const auto& p : m.panels) {
    const auto it = view.panels.find(p->name());
    if (it == view.panels.end() || it->second) visible.push_back(p.get());
  }
  if (visible.empty()) return act;
  // Tiling: 3 columns × 2 rows for six panels, fewer columns when fewer are visible.
  const int cols = visible.size() <= 2 ? static_cast<int>(visible.size()) : visible.size() <= 4 ? 2 : 3;
  const int rows = static_cast<int>((visible.size() + cols - 1) / cols);
  const float pw = width / cols, ph = height / rows;
  const ImGuiWindowFlags flags = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                                 ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoScrollbar |
                                 ImGuiWindowFlags_NoScrollWithMouse;
  PanelContext ctx{state, view, dt_seconds, act, m.pass, m.colormap, target_fbo, m.modes};
  for (size_t i = 0; i < visible.size(); ++i) {
    const int c = static_cast<int>(i) % cols, r = static_cast<int>(i) / cols;
    ImGui::SetNextWindowPos({c * pw, r * ph});
    ImGui::SetNextWindowSize({pw, ph});
    Panel& panel = *visible[i];
    bool has = false;
    if (ImGui::Begin(panel.name(), nullptr, flags)) {
      try {
        has = panel.draw(ctx);
      } catch (const std::bad_alloc&) {
        // "std::bad_alloc" tells a user nothing: say what ran out.
        ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "Not enough memory to draw this view for this run.");
        has = false;
      } catch (const std::exception& e) {
        // A view never takes the window down: it shows what went wrong in its own panel.
        ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s", e.what());
        has = false;
      }
    }
    const ImVec2 wp = ImGui::GetWindowPos();
    const ImVec2 cmin = ImGui::GetWindowContentRegionMin(), cmax = ImGui::GetWindowContentRegionMax();
    m.rects.push_back({panel.name(), wp.x + cmin.x, wp.y + cmin.y, cmax.x - cmin.x, cmax.y - cmin.y, has});
    ImGui::End();
  }
  return act;
}

}  // namespace longshot::ui

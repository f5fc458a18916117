// [SECTION] index: regime colours and axes · the tab (caption, horizon, legend, table) · the plot
// (grid, floors, trials, fronts, choices, hover) · the key under it.
#include "ui/panels/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/calibrate/calibration.h"
#include "ui/panels/panel_kit.h"

namespace longshot::ui {

using calibrate::HorizonTrace;
using calibrate::RegimeTrace;
using calibrate::TracePoint;

namespace {

// A dense mask's NMSE is ~0: drawn at the plot's floor instead of at minus infinity on a log axis.
constexpr double kMinNmse = 1e-12;
constexpr float kHoverPx = 8.f;

// The world's three regimes keep one colour everywhere; others (a table of other regimes) cycle.
ImU32 regime_color(const std::string& name, size_t index, int alpha = 255) {
  struct C {
    int r, g, b;
  };
  static const C others[] = {{200, 120, 255}, {255, 110, 160}, {240, 220, 90}, {90, 220, 220}};
  const C c = name == "static" ? C{90, 160, 255}
              : name == "slow" ? C{110, 210, 120}
              : name == "fast" ? C{255, 150, 60}
                               : others[index % (sizeof others / sizeof others[0])];
  return IM_COL32(c.r, c.g, c.b, alpha);
}

// x: mask sparsity in percent, linear; y: log10 of the NMSE.
struct Axes {
  float left = 0, right = 0, top = 0, bottom = 0;
  double x0 = 0, x1 = 100, y0 = -3, y1 = 0;
  float px(double sparsity) const { return left + static_cast<float>((100 * sparsity - x0) / (x1 - x0)) * (right - left); }
  float py(double nmse) const {
    const double y = std::log10(std::max(nmse, kMinNmse));
    return bottom - static_cast<float>((y - y0) / (y1 - y0)) * (bottom - top);
  }
  ImVec2 at(const TracePoint& p) const { return {px(p.sparsity), py(p.nmse)}; }
};

// 1, 2, 2.5 or 5 times a power of ten: about `target` steps over `span`.
double nice_step(double span, int target) {
  const double raw = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0})
    if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

// The ranges of the visible regimes' points (every regime when none is visible).
void fit_ranges(const std::vector<const RegimeTrace*>& regimes, bool refused, Axes& a) {
  double xlo = 1, xhi = 0, ylo = INFINITY, yhi = -INFINITY;
  auto add = [&](const TracePoint& p) {
    if (!std::isfinite(p.sparsity) || !std::isfinite(p.nmse)) return;
    xlo = std::min(xlo, p.sparsity), xhi = std::max(xhi, p.sparsity);
    const double y = std::log10(std::max(p.nmse, kMinNmse));
    ylo = std::min(ylo, y), yhi = std::max(yhi, y);
  };
  for (const RegimeTrace* r : regimes) {
    for (const auto& p : r->trials)
      if (refused || !p.refused) add(p);
    add(r->chosen);
    add(r->defaults);
    if (r->floor >= 0) xlo = std::min(xlo, r->floor), xhi = std::max(xhi, r->floor);
  }
  if (xhi < xlo) xlo = 0, xhi = 1;
  if (!std::isfinite(ylo)) ylo = -3, yhi = 0;
  double span = std::max(100 * (xhi - xlo), 1.0);
  const double step = nice_step(span * 1.04, 5);
  a.x0 = std::max(0.0, std::floor((100 * xlo - 0.02 * span) / step) * step);
  a.x1 = std::min(100.0, std::ceil((100 * xhi + 0.02 * span) / step) * step);
  if (a.x1 <= a.x0) a.x1 = a.x0 + step;
  ylo -= 0.02, yhi += 0.02;
  if (yhi - ylo > 3) {
    a.y0 = std::floor(ylo), a.y1 = std::ceil(yhi);
    return;
  }
  // Up to 3 decades: the range ends on 1-2-5 ticks, so the data fills the plot.
  const double steps[] = {0.0, std::log10(2.0), std::log10(5.0), 1.0};
  const double d0 = std::floor(ylo), d1 = std::floor(yhi);
  a.y0 = d0, a.y1 = d1 + 1;
  for (double m : steps)
    if (d0 + m <= ylo) a.y0 = d0 + m;
  for (int i = 3; i >= 0; --i)
    if (d1 + steps[i] >= yhi) a.y1 = d1 + steps[i];
}

// Ticks of the log axis: 1, 2 and 5 times each decade over at most 3 decades, else every decade
// (every other one beyond 8).
std::vector<double> log_ticks(const Axes& a) {
  std::vector<double> ticks;
  const bool fine = a.y1 - a.y0 <= 3 + 1e-9;
  const int every = a.y1 - a.y0 > 8 ? 2 : 1;
  for (int d = static_cast<int>(std::floor(a.y0)); d <= static_cast<int>(std::ceil(a.y1)); d += every)
    for (double m : {1.0, 2.0, 5.0}) {
      if (m > 1 && !fine) break;
      const double y = d + std::log10(m);
      if (y >= a.y0 - 1e-9 && y <= a.y1 + 1e-9) ticks.push_back(m * std::pow(10.0, d));
    }
  return ticks;
}

void dashed_vline(ImDrawList* dl, float x, float y0, float y1, ImU32 c) {
  for (float y = y0; y < y1; y += 9.f) dl->AddLine({x, y}, {x, std::min(y + 5.f, y1)}, c, 1.2f);
}

void cross(ImDrawList* dl, ImVec2 c, float s, ImU32 col, float thickness) {
  dl->AddLine({c.x - s, c.y - s}, {c.x + s, c.y + s}, col, thickness);
  dl->AddLine({c.x - s, c.y + s}, {c.x + s, c.y - s}, col, thickness);
}

std::string percent(double sparsity) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %%", 100 * sparsity);
  return buf;
}

std::string nmse_text(double nmse) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#.3g", nmse);
  return buf;
}

// "fast, trial 7: sparsity 70.3 %, NMSE 0.00770; chosen; on the Pareto front".
std::string describe_trial(const RegimeTrace& r, size_t i) {
  const TracePoint& p = r.trials[i];
  std::string s = r.regime + ", trial " + std::to_string(p.trial) + ": sparsity " + percent(p.sparsity) + ", NMSE " +
                  nmse_text(p.nmse);
  if (!r.kept_defaults && p.trial == r.chosen.trial) s += "; chosen";
  if (std::find(r.front.begin(), r.front.end(), i) != r.front.end()) s += "; on the Pareto front";
  if (p.refused) s += "; refused: below the floor of " + percent(r.floor);
  return s;
}

std::string describe_defaults(const RegimeTrace& r) {
  return r.regime + ", the mode's defaults: sparsity " + percent(r.defaults.sparsity) + ", NMSE " +
         nmse_text(r.defaults.nmse) + (r.kept_defaults ? "; kept: no trial beat them" : "");
}

// The key under the plot, wrapping at the panel's edge: each entry a symbol and its words.
void draw_key() {
  const ImU32 c = IM_COL32(190, 190, 200, 255);
  const float lh = ImGui::GetTextLineHeight();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const char* words[] = {"trial", "refused (below the floor)", "chosen", "defaults", "Pareto front", "floor"};
  const float avail = ImGui::GetContentRegionAvail().x;
  ImVec2 pos = ImGui::GetCursorScreenPos();
  const float x_start = pos.x;
  for (int i = 0; i < 6; ++i) {
    const float w = 16 + ImGui::CalcTextSize(words[i]).x + 12;
    if (pos.x > x_start && pos.x + w > x_start + avail) pos = {x_start, pos.y + lh + 2};
    const ImVec2 m(pos.x + 7, pos.y + lh * 0.5f);
    switch (i) {
      case 0: dl->AddCircleFilled(m, 2.5f, c); break;
      case 1: dl->AddCircle(m, 3.f, c, 12, 1.f); break;
      case 2: dl->AddCircle(m, 5.5f, c, 16, 2.f); break;
      case 3: cross(dl, m, 4.f, c, 2.f); break;
      case 4: dl->AddLine({m.x - 7, m.y + 3}, {m.x + 7, m.y - 3}, c, 1.8f); break;
      default: dashed_vline(dl, m.x, pos.y + 1, pos.y + lh - 1, c); break;
    }
    dl->AddText({pos.x + 16, pos.y}, c, words[i]);
    pos.x += w;
  }
  ImGui::Dummy({avail, pos.y + lh - ImGui::GetCursorScreenPos().y});
}

}  // namespace

void CalibrationTab::set_trace(std::shared_ptr<const calibrate::TableTrace> trace, std::string error) {
  trace_ = std::move(trace);
  error_ = std::move(error);
  horizon_ = 0;
}

bool CalibrationTab::draw(PanelContext& ctx) {
  if (!error_.empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1, 0.55f, 0.45f, 1));
    ImGui::TextWrapped("%s", error_.c_str());
    ImGui::PopStyleColor();
  }
  if (!trace_ || trace_->horizons.empty()) {
    kit::hint(error_.empty() ? "No calibration table for this model and mode: run `longshot calibrate` and open its JSON "
                               "(File > Open calibration table...)."
                             : "Open another table: File > Open calibration table...");
    return false;
  }
  const auto& t = *trace_;
  // One line: the file and the mode (the full path on hover).
  const std::string name = std::filesystem::path(t.file).filename().string();
  ImGui::TextWrapped("mode %s: %s", t.mode.c_str(), name.c_str());
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s (version %d)", t.file.c_str(), t.version);
  horizon_ = std::clamp(horizon_, 0, static_cast<int>(t.horizons.size()) - 1);
  // The horizons by length and geometry; the run each came from on hover.
  auto from_tip = [&](int i) {
    const auto& from = t.horizons[static_cast<size_t>(i)].from;
    if (!from.empty() && ImGui::IsItemHovered()) ImGui::SetTooltip("calibrated by %s", from.c_str());
  };
  if (t.horizons.size() > 1) {
    const std::string label = std::to_string(t.horizons.size()) + " horizons";
    ImGui::SetNextItemWidth(std::max(120.f, ImGui::GetContentRegionAvail().x - kit::text_w(label.c_str()) -
                                                ImGui::GetStyle().ItemInnerSpacing.x));
    if (ImGui::BeginCombo(label.c_str(), t.horizons[static_cast<size_t>(horizon_)].label.c_str())) {
      for (int i = 0; i < static_cast<int>(t.horizons.size()); ++i) {
        if (ImGui::Selectable(t.horizons[static_cast<size_t>(i)].label.c_str(), i == horizon_)) horizon_ = i;
        from_tip(i);
      }
      ImGui::EndCombo();
    }
    from_tip(horizon_);
  } else {
    kit::hint(t.horizons[0].label.c_str());
    from_tip(0);
  }
  const HorizonTrace& h = t.horizons[static_cast<size_t>(horizon_)];
  // The legend: one toggle per regime in its colour.
  for (size_t i = 0; i < h.regimes.size(); ++i) {
    const std::string& r = h.regimes[i].regime;
    bool on = !hidden_.count(r);
    if (i) kit::flow(kit::toggle_w(r.c_str()) + 8);
    ImGui::PushStyleColor(ImGuiCol_CheckMark, ImGui::ColorConvertU32ToFloat4(regime_color(r, i)));
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::ColorConvertU32ToFloat4(regime_color(r, i)));
    if (ImGui::Checkbox(r.c_str(), &on)) on ? (void)hidden_.erase(r) : (void)hidden_.insert(r);
    ImGui::PopStyleColor(2);
  }
  kit::flow(kit::toggle_w("refused") + 8);
  ImGui::Checkbox("refused", &show_refused_);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("Trials below the sparsity floor (never chosen). Off: the plot zooms on those that met it.");
  const float lh = ImGui::GetTextLineHeightWithSpacing();
  const float key_h = (ImGui::GetContentRegionAvail().x < 480 ? 2 : 1) * lh + 6;
  draw_plot(h, std::max(120.f, ImGui::GetContentRegionAvail().y - key_h));
  draw_key();
  return true;
}

void CalibrationTab::draw_plot(const HorizonTrace& h, float height) {
  std::vector<const RegimeTrace*> shown;
  std::vector<size_t> colour_index;
  for (size_t i = 0; i < h.regimes.size(); ++i)
    if (!hidden_.count(h.regimes[i].regime)) shown.push_back(&h.regimes[i]), colour_index.push_back(i);
  const kit::PlotFrame frame = kit::plot_frame(height, 160.f);
  ImDrawList* dl = frame.dl;
  const float lh = ImGui::GetTextLineHeight();
  const ImU32 text_c = IM_COL32(200, 200, 210, 255), axis_c = IM_COL32(150, 150, 160, 255),
              grid_c = IM_COL32(255, 255, 255, 22);
  Axes a;
  std::vector<const RegimeTrace*> all;
  for (const auto& r : h.regimes) all.push_back(&r);
  fit_ranges(shown.empty() ? all : shown, show_refused_, a);
  const std::vector<double> yticks = log_ticks(a);
  float label_w = 0;
  std::vector<std::string> ylabels;
  for (double v : yticks) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%g", v);
    ylabels.push_back(buf);
    label_w = std::max(label_w, ImGui::CalcTextSize(buf).x);
  }
  a.left = frame.p0.x + label_w + 10, a.right = frame.p1.x - 12;
  // Room above for the title and half a label (the top tick's), below for the labels and the x title.
  a.top = frame.p0.y + 1.5f * lh + 8, a.bottom = frame.p1.y - 2 * lh - 8;
  dl->PushClipRect(frame.p0, frame.p1, true);
  dl->AddText({frame.p0.x + 6, frame.p0.y + 3}, text_c, "proxy NMSE against dense (log scale)");
  for (size_t i = 0; i < yticks.size(); ++i) {
    const float y = a.py(yticks[i]);
    if (y < a.top - 1 || y > a.bottom + 1) continue;
    dl->AddLine({a.left, y}, {a.right, y}, grid_c);
    dl->AddText({a.left - 6 - ImGui::CalcTextSize(ylabels[i].c_str()).x, y - lh * 0.5f}, axis_c, ylabels[i].c_str());
  }
  const double xstep = nice_step(a.x1 - a.x0, 5);
  for (double x = a.x0; x <= a.x1 + 1e-9; x += xstep) {
    const float px = a.px(x / 100);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%g", x);
    dl->AddLine({px, a.top}, {px, a.bottom}, grid_c);
    dl->AddText({px - ImGui::CalcTextSize(buf).x * 0.5f, a.bottom + 3}, axis_c, buf);
  }
  const char* x_title = "mask sparsity (%)";
  dl->AddText({(a.left + a.right - ImGui::CalcTextSize(x_title).x) * 0.5f, a.bottom + lh + 5}, text_c, x_title);
  dl->AddRect({a.left, a.top}, {a.right, a.bottom}, IM_COL32(90, 90, 100, 255));

  // Back to front: floors, trials, fronts, then the choices on top.
  for (size_t k = 0; k < shown.size(); ++k)
    if (shown[k]->floor >= 0)
      dashed_vline(dl, a.px(shown[k]->floor), a.top, a.bottom, regime_color(shown[k]->regime, colour_index[k], 130));
  for (size_t k = 0; k < shown.size(); ++k) {
    const RegimeTrace& r = *shown[k];
    for (const auto& p : r.trials) {
      if (p.refused && !show_refused_) continue;
      if (p.refused) dl->AddCircle(a.at(p), 3.f, regime_color(r.regime, colour_index[k], 120), 12, 1.f);
      else dl->AddCircleFilled(a.at(p), 2.5f, regime_color(r.regime, colour_index[k], 200));
    }
  }
  for (size_t k = 0; k < shown.size(); ++k) {
    std::vector<ImVec2> line;
    for (size_t i : shown[k]->front) line.push_back(a.at(shown[k]->trials[i]));
    if (line.size() > 1)
      dl->AddPolyline(line.data(), static_cast<int>(line.size()), regime_color(shown[k]->regime, colour_index[k]),
                      ImDrawFlags_None, 1.8f);
  }
  for (size_t k = 0; k < shown.size(); ++k) {
    const RegimeTrace& r = *shown[k];
    const ImU32 c = regime_color(r.regime, colour_index[k]);
    cross(dl, a.at(r.defaults), 5.f, IM_COL32(0, 0, 0, 200), 4.f);  // a dark outline keeps it readable over dots
    cross(dl, a.at(r.defaults), 5.f, c, 2.f);
    dl->AddCircle(a.at(r.chosen), 7.f, IM_COL32(0, 0, 0, 200), 20, 4.f);
    dl->AddCircle(a.at(r.chosen), 7.f, c, 20, 2.f);
  }

  // Hover: the nearest point within a few pixels, trials before the defaults at a tie.
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  const bool inside = ImGui::IsWindowHovered() && mouse.x >= a.left - kHoverPx && mouse.x <= a.right + kHoverPx &&
                      mouse.y >= a.top - kHoverPx && mouse.y <= a.bottom + kHoverPx;
  if (inside) {
    float best = kHoverPx * kHoverPx;
    std::string tip;
    ImVec2 at;
    auto consider = [&](ImVec2 c, auto&& text) {
      const float d = (c.x - mouse.x) * (c.x - mouse.x) + (c.y - mouse.y) * (c.y - mouse.y);
      if (d < best) best = d, tip = text(), at = c;
    };
    for (const RegimeTrace* r : shown) {
      for (size_t i = 0; i < r->trials.size(); ++i)
        if (show_refused_ || !r->trials[i].refused) consider(a.at(r->trials[i]), [&] { return describe_trial(*r, i); });
      consider(a.at(r->defaults), [&] { return describe_defaults(*r); });
    }
    if (!tip.empty()) {
      dl->AddCircle(at, 5.f, IM_COL32(255, 240, 120, 255), 16, 1.5f);
      ImGui::SetTooltip("%s", tip.c_str());
    }
  }
  dl->PopClipRect();
  ImGui::Dummy({frame.w, height});
}

}  // namespace longshot::ui

#include "ui/panels/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "ui/compare.h"
#include "ui/panels/panel_kit.h"

namespace longshot::ui {

void SweepTab::set_jobs(SweepJobs jobs) {
  sweep_ = std::move(jobs);
  sync_ = true;
  quality_.clear();
}

// A new sweep shows its mode, parameter and range in the controls; returns mode B's policy.
const attention::PolicyInfo* SweepTab::sync_controls(ViewSettings& v) {
  if (sync_ && !sweep_.mode.empty()) v.compare_mode_b = sweep_.mode;
  const attention::PolicyInfo* info = nullptr;
  for (const auto& p : attention::registered_policies())
    if (p.name == v.compare_mode_b) info = &p;
  if (sync_ && info) {
    param_mode_ = info->name;
    for (size_t i = 0; i < info->params.size(); ++i)
      if (info->params[i].name == sweep_.param) param_ = static_cast<int>(i);
    if (!sweep_.values.empty()) {
      from_ = static_cast<float>(sweep_.values.front());
      to_ = static_cast<float>(sweep_.values.back());
      points_ = std::clamp(static_cast<int>(sweep_.values.size()), 2, 8);
    }
  }
  sync_ = false;
  return info;
}

void SweepTab::draw_controls(PanelContext& ctx, const attention::PolicyInfo* info) {
  kit::mode_combo("mode", ctx.view.compare_mode_b, ctx.modes);
  if (!info || info->params.empty()) {
    kit::hint("This mode has no parameter to sweep: pick a sparse mode (radial-ratio, dfsattn, lvsa, ...).");
    return;
  }
  if (param_mode_ != info->name) {
    // A new mode: its keep_ratio if it has one, else its first parameter, over its range.
    param_ = 0;
    for (size_t i = 0; i < info->params.size(); ++i)
      if (info->params[i].name == "keep_ratio") param_ = static_cast<int>(i);
    const auto& spec = info->params[param_];
    from_ = spec.name == "keep_ratio" ? 0.1f : static_cast<float>(spec.min);
    to_ = spec.name == "keep_ratio" ? 0.5f : static_cast<float>(spec.max);
    param_mode_ = info->name;
  }
  param_ = std::clamp(param_, 0, static_cast<int>(info->params.size()) - 1);
  kit::flow(140);
  ImGui::SetNextItemWidth(std::max(80.f, ImGui::GetContentRegionAvail().x - 60));
  if (ImGui::BeginCombo("param", info->params[param_].name.c_str())) {
    for (size_t i = 0; i < info->params.size(); ++i)
      if (ImGui::Selectable(info->params[i].name.c_str(), static_cast<int>(i) == param_)) {
        param_ = static_cast<int>(i);
        from_ = static_cast<float>(info->params[i].min);
        to_ = static_cast<float>(info->params[i].max);
      }
    ImGui::EndCombo();
  }
  const auto& spec = info->params[param_];
  ImGui::SetNextItemWidth(std::max(120.f, ImGui::GetContentRegionAvail().x * 0.55f));
  ImGui::DragFloatRange2("range", &from_, &to_, (spec.max - spec.min) / 200.f, static_cast<float>(spec.min),
                         static_cast<float>(spec.max), spec.integer ? "%.0f" : "%.2f");
  kit::flow(60 + kit::text_w("points") + 8);
  ImGui::SetNextItemWidth(60);
  ImGui::SliderInt("points", &points_, 2, 8);
  if (ImGui::Button("Run sweep")) {
    PanelActions& act = ctx.actions;
    act.run_sweep = true;
    act.sweep_mode = info->name;
    act.sweep_param = spec.name;
    act.sweep_values = sweep_values(from_, to_, points_, spec.integer);
    // An open lower bound (keep_ratio in (0, 1]) must not be hit exactly.
    if (!spec.min_inclusive)
      for (double& x : act.sweep_values) x = std::max(x, spec.min + 1e-3 * (spec.max - spec.min));
  }
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("Queues a dense run and one %s run per value, all from the dock's request and seed",
                      info->name.c_str());
}

std::vector<SweepTab::Point> SweepTab::gather(const StudioState& s) {
  const RunRecord* ref = s.find(sweep_.reference);
  const VideoPtr vref = ref && ref->status == RunStatus::Finished ? ref->frames() : nullptr;
  std::vector<Point> points;
  for (size_t i = 0; i < sweep_.jobs.size(); ++i) {
    Point p;
    p.value = i < sweep_.values.size() ? sweep_.values[i] : 0;
    p.job = sweep_.jobs[i];
    const RunRecord* r = s.find(p.job);
    const VideoPtr vr = r && r->status == RunStatus::Finished ? r->frames() : nullptr;
    if (vref && vr && vr->width == vref->width && vr->height == vref->height && vr->frames == vref->frames) {
      Quality& q = quality_[p.job];
      if (q.reference != frames_key(ref) || q.run != frames_key(r)) {
        double ps = 0, ss = 0;
        const auto pf = per_frame_psnr(*vref, *vr);
        const auto sf = per_frame_ssim(*vref, *vr);
        for (double x : pf) ps += std::min(x, 99.0);
        for (double x : sf) ss += x;
        q = {frames_key(ref), frames_key(r), ps / std::max<size_t>(1, pf.size()), ss / std::max<size_t>(1, sf.size())};
      }
      p.psnr = q.psnr;
      p.ssim = q.ssim;
      p.step_ms = kit::mean_step_ms(r);
      p.sparsity = r->mean_sparsity;
      p.done = true;
    }
    points.push_back(p);
  }
  return points;
}

bool SweepTab::draw(PanelContext& ctx, uint64_t& pick_a, uint64_t& pick_b) {
  // One parameter of mode B over a range, each point against a dense run of the same seed.
  const attention::PolicyInfo* info = sync_controls(ctx.view);
  draw_controls(ctx, info);
  if (sweep_.jobs.empty()) {
    kit::hint("The sweep's points appear here as a trade-off curve: quality against the dense run (PSNR) over time per step.");
    return false;
  }
  const RunRecord* ref = ctx.state.find(sweep_.reference);
  const bool ref_done = ref && ref->status == RunStatus::Finished && ref->frames();
  const std::vector<Point> points = gather(ctx.state);
  const size_t done = static_cast<size_t>(std::count_if(points.begin(), points.end(), [](const Point& p) { return p.done; }));
  const double ref_ms = ref ? kit::mean_step_ms(ref) : 0;
  ImGui::TextWrapped("%s over %s: %zu of %zu points, dense reference %s", sweep_.param.c_str(), sweep_.mode.c_str(),
                     done, points.size(), ref_done ? "done" : "running");
  int clicked = draw_plot(points, ref_ms, done);
  const int row = draw_table(ctx.state, points);
  if (row >= 0) clicked = row;
  if (clicked >= 0) {
    pick_a = sweep_.reference;
    pick_b = points[static_cast<size_t>(clicked)].job;
  }
  return done > 0;
}

// x = time per step, y = PSNR against dense; one dot per point, joined in value order. Returns
// the point clicked (-1: none).
int SweepTab::draw_plot(const std::vector<Point>& points, double ref_ms, size_t done) {
  const float plot_h = std::max(60.f, ImGui::GetContentRegionAvail().y -
                                          (points.size() + 1.5f) * ImGui::GetTextLineHeightWithSpacing() - 8);
  const kit::PlotFrame frame = kit::plot_frame(plot_h, 60.f);
  ImDrawList* dl = frame.dl;
  const ImVec2 p0 = frame.p0, p1 = frame.p1;
  const float w = frame.w;
  double xmin = ref_ms > 0 ? ref_ms : 1e30, xmax = ref_ms, ymin = 1e30, ymax = -1e30;
  for (const auto& p : points)
    if (p.done) {
      xmin = std::min(xmin, p.step_ms), xmax = std::max(xmax, p.step_ms);
      ymin = std::min(ymin, p.psnr), ymax = std::max(ymax, p.psnr);
    }
  int clicked = -1;
  if (done > 0) {
    if (xmax <= xmin) xmax = xmin + 1;
    ymin = std::floor(ymin - 1), ymax = std::ceil(ymax + 1);
    const float lh = ImGui::GetTextLineHeight();
    const float left = p0.x + 8, right = p1.x - 8, top = p0.y + lh + 6, bottom = p1.y - lh - 6;
    auto px = [&](double x) { return left + static_cast<float>((x - xmin) / (xmax - xmin)) * (right - left); };
    auto py = [&](double y) { return bottom - static_cast<float>((y - ymin) / (ymax - ymin)) * (bottom - top); };
    const ImU32 line_c = IM_COL32(120, 220, 140, 255), text_c = IM_COL32(200, 200, 210, 255),
                axis_c = IM_COL32(150, 150, 160, 255);
    if (ref_ms > 0) {
      dl->AddLine({px(ref_ms), top}, {px(ref_ms), bottom}, IM_COL32(150, 150, 170, 160), 1.f);
      const float dx = px(ref_ms), dw = ImGui::CalcTextSize("dense").x;
      dl->AddText({dx - dw - 3 < left ? dx + 3 : dx - dw - 3, top}, axis_c, "dense");
    }
    const Point* prev = nullptr;
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    for (size_t i = 0; i < points.size(); ++i) {
      const auto& p = points[i];
      if (!p.done) continue;
      const ImVec2 c(px(p.step_ms), py(p.psnr));
      if (prev) dl->AddLine({px(prev->step_ms), py(prev->psnr)}, c, line_c, 1.5f);
      const bool hover = std::abs(mouse.x - c.x) < 7 && std::abs(mouse.y - c.y) < 7;
      dl->AddCircleFilled(c, hover ? 6.f : 4.f, hover ? IM_COL32(255, 240, 120, 255) : line_c);
      char label[32];
      std::snprintf(label, sizeof label, "%.3g", p.value);
      const float lw = ImGui::CalcTextSize(label).x;
      dl->AddText({c.x + 6 + lw > p1.x - 2 ? c.x - 6 - lw : c.x + 6, c.y - lh}, text_c, label);
      if (hover) {
        ImGui::SetTooltip("%s = %.3g: PSNR %.2f dB, SSIM %.3f, %.0f ms per step (dense %.0f), sparsity %.0f%%\nclick: "
                          "its frames against dense",
                          sweep_.param.c_str(), p.value, p.psnr, p.ssim, p.step_ms, ref_ms, 100 * p.sparsity);
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) clicked = static_cast<int>(i);
      }
      prev = &p;
    }
    char buf[64];
    dl->AddText({p0.x + 6, p0.y + 2}, text_c, "PSNR vs dense (dB) over time per step");
    std::snprintf(buf, sizeof buf, "%.0f dB", ymin);
    dl->AddText({p0.x + 6, bottom - lh}, axis_c, buf);
    std::snprintf(buf, sizeof buf, "%.0f ms", xmin);
    dl->AddText({left, bottom + 3}, axis_c, buf);
    std::snprintf(buf, sizeof buf, "%.0f ms per step", xmax);
    dl->AddText({right - ImGui::CalcTextSize(buf).x, bottom + 3}, axis_c, buf);
  }
  ImGui::Dummy({w, plot_h});
  return clicked;
}

// One row per point; a click on a finished one returns its index (-1: none).
int SweepTab::draw_table(const StudioState& s, const std::vector<Point>& points) {
  int clicked = -1;
  if (!ImGui::BeginTable("sweep", 5, ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_BordersInnerH)) return clicked;
  ImGui::TableSetupColumn(sweep_.param.c_str());
  ImGui::TableSetupColumn("PSNR");
  ImGui::TableSetupColumn("SSIM");
  ImGui::TableSetupColumn("step");
  ImGui::TableSetupColumn("sparsity");
  ImGui::TableHeadersRow();
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    char label[48];
    std::snprintf(label, sizeof label, "%.3g##pt%zu", p.value, i);
    if (ImGui::Selectable(label, false, ImGuiSelectableFlags_SpanAllColumns) && p.done) clicked = static_cast<int>(i);
    ImGui::TableNextColumn();
    if (!p.done) {
      const RunRecord* r = s.find(p.job);
      ImGui::TextDisabled("%s", !r ? "queued" : to_string(r->status));
      continue;
    }
    ImGui::Text("%.2f dB", p.psnr);
    ImGui::TableNextColumn();
    ImGui::Text("%.3f", p.ssim);
    ImGui::TableNextColumn();
    ImGui::Text("%.0f ms", p.step_ms);
    ImGui::TableNextColumn();
    ImGui::Text("%.0f%%", 100 * p.sparsity);
  }
  ImGui::EndTable();
  return clicked;
}

}  // namespace longshot::ui

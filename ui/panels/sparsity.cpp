#include "ui/panels/sparsity.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "ui/panels/panel_kit.h"

namespace longshot::ui {

bool SparsityPanel::draw(PanelContext& ctx) {
  const RunRecord* r = ctx.state.current();
  if (!r || r->steps.empty()) {
    kit::hint(kit::waiting_text(ctx.state, "step timing").c_str());
    return false;
  }
  const StepRecord& last = r->steps.back();
  char recall[32] = "";
  if (last.recall_estimate >= 0) std::snprintf(recall, sizeof recall, "  recall %.3f", last.recall_estimate);
  ImGui::TextWrapped("step %d/%d  %s%s  sparsity %.1f%%  step %.0f ms  attention %.0f ms%s", last.step + 1, r->num_steps,
                     last.mode.c_str(), last.dense_step ? " (dense warm-up)" : "", 100.0 * last.mean_sparsity,
                     last.step_ms, last.attention_ms, recall);
  for (const auto& sw : r->mode_switches) {
    ImGui::TextColored(ImVec4(0.98f, 0.86f, 0.35f, 1.f), "mode %s -> %s applied from step %d", sw.from.c_str(),
                       sw.to.c_str(), sw.step + 1);
  }
  const int x_count = std::max(r->num_steps, static_cast<int>(r->steps.size()));
  draw_strip(ctx, *r, x_count);
  draw_plots(*r, ctx.state.previous(), x_count);
  return true;
}

// Heat strip: one row per layer, one column per step; empty columns are steps still to come.
void SparsityPanel::draw_strip(PanelContext& ctx, const RunRecord& r, int x_count) {
  const int layers = std::max(1, r.num_layers);
  ctx.pass.set_colormap(ctx.colormap);
  if (r.job_id != drawn_job_ || r.steps.size() != drawn_steps_ || drawn_colormap_ != ctx.colormap.name()) {
    std::vector<float> cells(static_cast<size_t>(layers) * x_count, -1.f);
    for (const auto& st : r.steps) {
      if (st.step < 0 || st.step >= x_count) continue;
      for (int l = 0; l < layers; ++l)
        cells[static_cast<size_t>(l) * x_count + st.step] =
            l < static_cast<int>(st.layer_sparsity.size()) ? st.layer_sparsity[l] : static_cast<float>(st.mean_sparsity);
    }
    ctx.pass.render(cells, x_count, layers, 1.f, HeatScale::Linear, texture_, ctx.target_fbo);
    drawn_job_ = r.job_id;
    drawn_steps_ = r.steps.size();
    drawn_colormap_ = ctx.colormap.name();
  }
  kit::hint("sparsity per layer (rows, layer 0 on top) and step (columns):");
  {
    // Colourbar of the strip: 0 % .. 100 % of blocks skipped.
    ImDrawList* dl0 = ImGui::GetWindowDrawList();
    const ImVec2 c0 = ImGui::GetCursorScreenPos();
    const float cw = std::min(160.f, std::max(60.f, ImGui::GetContentRegionAvail().x - 90));
    const float lh = ImGui::GetTextLineHeight();
    dl0->AddText(c0, IM_COL32(200, 200, 200, 255), "0%");
    const float x0 = c0.x + ImGui::CalcTextSize("0% ").x;
    dl0->AddImage(kit::tex_id(ctx.pass.lut()), {x0, c0.y + 3}, {x0 + cw, c0.y + lh - 2});
    dl0->AddText({x0 + cw + 4, c0.y}, IM_COL32(200, 200, 200, 255), "100% skipped");
    ImGui::Dummy({cw, lh});
  }
  const float w = std::max(40.f, ImGui::GetContentRegionAvail().x);
  const float strip_h = std::clamp(layers * 6.f, 24.f, 90.f);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::Image(kit::tex_id(texture_), {w, strip_h});
  ImDrawList* dl = ImGui::GetWindowDrawList();
  for (const auto& sw : r.mode_switches) {
    const float x = p0.x + w * sw.step / x_count;
    dl->AddLine({x, p0.y - 2}, {x, p0.y + strip_h + 2}, IM_COL32(250, 220, 90, 255), 2.f);
  }
}

void SparsityPanel::draw_plots(const RunRecord& r, const RunRecord* prev, int x_count) {
  auto series_of = [](const RunRecord* run, auto field) {
    std::vector<float> out;
    if (!run) return out;
    for (const auto& st : run->steps) out.push_back(static_cast<float>(field(st)));
    return out;
  };
  const auto mean_now = series_of(&r, [](const StepRecord& st) { return st.mean_sparsity; });
  const auto mean_prev = series_of(prev, [](const StepRecord& st) { return st.mean_sparsity; });
  const auto step_now = series_of(&r, [](const StepRecord& st) { return st.step_ms; });
  const auto attn_now = series_of(&r, [](const StepRecord& st) { return st.attention_ms; });
  const auto step_prev = series_of(prev, [](const StepRecord& st) { return st.step_ms; });
  const auto recall_now = series_of(&r, [](const StepRecord& st) { return st.recall_estimate; });
  const auto recall_prev = series_of(prev, [](const StepRecord& st) { return st.recall_estimate; });
  const float plot_h = std::max(40.f, (ImGui::GetContentRegionAvail().y - 12) / 3.f);
  const ImU32 now_c = IM_COL32(240, 150, 60, 255), prev_c = IM_COL32(150, 150, 170, 200),
              attn_c = IM_COL32(90, 170, 235, 255);
  const auto& markers = r.mode_switches;
  kit::step_plot("mean sparsity", {{&mean_now, now_c, 2.f, "this run"}, {&mean_prev, prev_c, 1.f, "previous"}}, x_count,
                 0.f, 1.f, markers, plot_h, "%.0f%%", 100.f);
  float tmax = 1.f;
  for (const auto* sv : {&step_now, &step_prev, &attn_now})
    for (float x : *sv) tmax = std::max(tmax, x);
  // Seconds once steps take more than ten of them: "68.1 s", never "6.81e+04".
  const bool secs = tmax > 10000.f;
  kit::step_plot(secs ? "time per step (s)" : "time per step (ms)",
                 {{&step_now, now_c, 2.f, "step"}, {&attn_now, attn_c, 2.f, "attention"}, {&step_prev, prev_c, 1.f, "previous"}},
                 x_count, 0.f, tmax * 1.1f, markers, plot_h, secs ? "%.1f s" : "%.0f ms", secs ? 1e-3f : 1.f);
  const bool any_recall = std::any_of(recall_now.begin(), recall_now.end(), [](float x) { return x >= 0; });
  if (!any_recall) {
    ImGui::TextDisabled("recall not measured by this run");
    return;
  }
  auto clean = [](std::vector<float> v) {
    for (float& x : v)
      if (x < 0) x = std::numeric_limits<float>::quiet_NaN();
    return v;
  };
  const auto rn = clean(recall_now), rp = clean(recall_prev);
  kit::step_plot("recall (dense mass kept)", {{&rn, now_c, 2.f, "this run"}, {&rp, prev_c, 1.f, "previous"}}, x_count,
                 0.f, 1.f, markers, plot_h, "%.0f%%", 100.f);
}

}  // namespace longshot::ui

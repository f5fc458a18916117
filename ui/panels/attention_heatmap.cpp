#include "ui/panels/attention_heatmap.h"

#include <algorithm>

#include "ui/panels/panel_kit.h"

namespace longshot::ui {

void AttentionHeatmapPanel::draw_toolbar(ViewSettings& v) {
  bool log_scale = v.log_scale;
  if (ImGui::Checkbox("log scale", &log_scale)) v.log_scale = log_scale;
  kit::flow(90);
  ImGui::SetNextItemWidth(90);
  if (ImGui::BeginCombo("##cmap", v.colormap.c_str())) {
    for (const auto& n : Colormap::names())
      if (ImGui::Selectable(n.c_str(), n == v.colormap)) v.colormap = n;
    ImGui::EndCombo();
  }
  kit::flow(70 + ImGui::GetStyle().ItemInnerSpacing.x + kit::text_w("columns"));
  ImGui::SetNextItemWidth(70);
  ImGui::SliderInt("columns", &v.heatmap_columns, 1, 8);
}

bool AttentionHeatmapPanel::draw(PanelContext& ctx) {
  ViewSettings& v = ctx.view;
  const RunRecord* r = ctx.state.current();
  const pipeline::HeatmapPtr hm = r ? r->heatmap : nullptr;
  draw_toolbar(v);
  if (!hm || hm->values.empty()) {
    kit::hint(kit::waiting_text(ctx.state, "attention map").c_str());
    return false;
  }
  int64_t qt, qh, qw;
  hm->source_grid.coords(hm->query_token, qt, qh, qw);
  ImGui::TextWrapped("layer %d  head %d  query (t=%lld, h=%lld, w=%lld)  over %s tokens, one tile per frame",
                     hm->layer, hm->head, static_cast<long long>(qt), static_cast<long long>(qh),
                     static_cast<long long>(qw), hm->grid.to_string().c_str());

  kit::resolve_colormap(ctx.colormap, v.colormap);  // the toolbar's choice, this frame
  const Colormap& colormap = ctx.colormap;
  ctx.pass.set_colormap(colormap);
  const PayloadKey key = heatmap_key(r);
  const auto shown = fit_grid(hm->grid, 48, 48);
  if (key != drawn_ || drawn_columns_ != v.heatmap_columns || drawn_log_ != v.log_scale ||
      drawn_colormap_ != colormap.name()) {
    // Large grids are pooled (sum: attention mass stays mass) to at most 48 cells a side.
    const auto values = shown == hm->grid ? hm->values : pool_grid(hm->values, hm->grid, shown, Pooling::Sum);
    atlas_ = make_atlas(values, shown, v.heatmap_columns, 1);
    ctx.pass.render(atlas_.values, atlas_.width, atlas_.height, atlas_.vmax,
                    v.log_scale ? HeatScale::Log : HeatScale::Linear, texture_, ctx.target_fbo);
    drawn_ = key;
    drawn_columns_ = v.heatmap_columns;
    drawn_log_ = v.log_scale;
    drawn_colormap_ = colormap.name();
  }
  const float legend_h = 40 + ImGui::GetTextLineHeight();
  ImVec2 avail = ImGui::GetContentRegionAvail();
  avail.y -= legend_h;
  const ImVec2 size = kit::fit(avail, static_cast<float>(atlas_.width), static_cast<float>(atlas_.height));
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::Image(kit::tex_id(texture_), size);
  const float cell = size.x / atlas_.width;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  {
    // The query's own cell, outlined in its frame's tile.
    const int64_t t = qt * shown.t / hm->source_grid.t;
    const int64_t h = qh * shown.h / hm->source_grid.h, w = qw * shown.w / hm->source_grid.w;
    const float x = p0.x + ((t % atlas_.columns) * (atlas_.tile_w + atlas_.gap) + w) * cell;
    const float y = p0.y + ((t / atlas_.columns) * (atlas_.tile_h + atlas_.gap) + h) * cell;
    dl->AddRect({x, y}, {x + cell, y + cell}, IM_COL32(80, 255, 120, 255), 0, 0, 1.5f);
  }
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    int64_t t, h, w;
    const int cx = static_cast<int>((m.x - p0.x) / cell), cy = static_cast<int>((m.y - p0.y) / cell);
    if (atlas_.cell_to_grid(cx, cy, t, h, w))
      ImGui::SetTooltip("frame %lld, cell (%lld, %lld)\nmass %.3e", static_cast<long long>(t),
                        static_cast<long long>(h), static_cast<long long>(w),
                        static_cast<double>(atlas_.values[static_cast<size_t>(cy) * atlas_.width + cx]));
  }
  draw_legend(ctx);
  return true;
}

// The colormap bar with its scale's ticks, and what it measures.
void AttentionHeatmapPanel::draw_legend(PanelContext& ctx) {
  const bool log_scale = ctx.view.log_scale;
  const float legend_h = 40 + ImGui::GetTextLineHeight();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 l0(ImGui::GetCursorScreenPos().x, ImGui::GetCursorScreenPos().y + 4 + ImGui::GetTextLineHeight());
  const float lw = std::min(ImGui::GetContentRegionAvail().x, 360.f);
  dl->AddText({l0.x, l0.y - ImGui::GetTextLineHeight() - 2}, IM_COL32(200, 200, 200, 255),
              log_scale ? "attention probability (log)" : "attention probability");
  dl->AddImage(kit::tex_id(ctx.pass.lut()), l0, {l0.x + lw, l0.y + 12});
  float label_end = -1e9f;
  for (const auto& tick : legend_ticks(atlas_.vmax, log_scale ? HeatScale::Log : HeatScale::Linear, 5)) {
    const float x = l0.x + tick.position * lw;
    dl->AddLine({x, l0.y + 12}, {x, l0.y + 16}, IM_COL32(200, 200, 200, 255));
    const float tw = ImGui::CalcTextSize(tick.label.c_str()).x;
    const float tx = std::clamp(x - tw / 2, l0.x, l0.x + lw - tw);
    if (tx < label_end + 6) continue;  // a narrow panel: fewer labels rather than overlapping ones
    dl->AddText({tx, l0.y + 17}, IM_COL32(200, 200, 200, 255), tick.label.c_str());
    label_end = tx + tw;
  }
  ImGui::Dummy({lw, legend_h});
}

}  // namespace longshot::ui

#include "ui/panels/ordering.h"

#include <algorithm>

#include "ui/panels/panel_kit.h"

namespace longshot::ui {

namespace {
// Block tints: muted, alternating in hue so neighbours differ.
ImU32 block_tint(int64_t block) {
  static const ImU32 tints[] = {IM_COL32(48, 58, 92, 255),  IM_COL32(76, 52, 84, 255), IM_COL32(44, 78, 74, 255),
                                IM_COL32(86, 70, 46, 255), IM_COL32(60, 60, 60, 255), IM_COL32(40, 66, 100, 255)};
  return tints[block % 6];
}
}  // namespace

bool OrderingPanel::draw(PanelContext& ctx) {
  ViewSettings& v = ctx.view;
  const RunRecord* r = ctx.state.current();
  if (r && r->grid.size() == 0) r = nullptr;
  ImGui::RadioButton("mask's order", &choice_, 0);
  kit::flow(kit::toggle_w("Hilbert"));
  ImGui::RadioButton("Hilbert", &choice_, 1);
  kit::flow(kit::toggle_w("raster"));
  ImGui::RadioButton("raster", &choice_, 2);
  kit::flow(kit::toggle_w("blocks"));
  ImGui::Checkbox("blocks", &v.show_blocks);
  if (!r) {
    kit::hint(kit::waiting_text(ctx.state, "token grid").c_str());
    return false;
  }
  if (const std::string why = ordering_too_large(r->grid); !why.empty()) {
    kit::hint(why.c_str());
    return false;
  }
  const auto kind = choice_ == 1   ? attention::OrderingKind::Hilbert
                    : choice_ == 2 ? attention::OrderingKind::Raster
                    : r->mask      ? r->mask->ordering
                                   : attention::OrderingKind::Raster;
  const int64_t bs = r->mask ? r->mask->block_size : r->request.attention.block_size;
  ImGui::SetNextItemWidth(100);
  ImGui::SliderInt("frames shown", &frames_, 1, static_cast<int>(std::max<int64_t>(1, r->grid.t)));
  const int64_t frames = std::clamp<int64_t>(frames_, 1, r->grid.t);
  const int64_t columns = std::min<int64_t>(frames, 4);
  const std::string key =
      r->grid.to_string() + attention::to_string(kind) + std::to_string(bs) + "/" + std::to_string(columns);
  if (key != key_) {
    ordering_ = attention::make_ordering(kind, r->grid);
    drawing_ = draw_ordering(ordering_, std::max<int64_t>(1, bs), columns, 1);
    key_ = key;
  }
  ImGui::TextWrapped("%s order over %s tokens, %lld blocks of %lld", attention::to_string(kind),
                     r->grid.to_string().c_str(), static_cast<long long>(drawing_.num_blocks),
                     static_cast<long long>(bs));
  const int64_t rows = (frames + columns - 1) / columns;
  const float ext_w = drawing_.width;
  const float ext_h = static_cast<float>(rows * drawing_.tile_h + (rows - 1) * drawing_.gap);
  const ImVec2 size = kit::fit(ImGui::GetContentRegionAvail(), ext_w, ext_h);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const float sc = size.x / ext_w;
  const auto& g = r->grid;
  draw_cells(g, frames, columns, v.show_blocks, p0, sc);
  draw_walk(g, frames, ctx.colormap, p0, sc);
  ImGui::Dummy(size);
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int64_t cx = static_cast<int64_t>((m.x - p0.x) / sc), cy = static_cast<int64_t>((m.y - p0.y) / sc);
    const int64_t t = (cy / (g.h + 1)) * columns + cx / (g.w + 1), h = cy % (g.h + 1), w = cx % (g.w + 1);
    if (t < frames && h < g.h && w < g.w) {
      const int64_t idx = g.index(t, h, w);
      ImGui::SetTooltip("token (t=%lld, h=%lld, w=%lld)\nsequence position %lld, block %lld", static_cast<long long>(t),
                        static_cast<long long>(h), static_cast<long long>(w),
                        static_cast<long long>(ordering_.inverse[idx]),
                        static_cast<long long>(drawing_.block_of_cell[idx]));
    }
  }
  return true;
}

void OrderingPanel::draw_cells(const attention::TokenGrid& g, int64_t frames, int64_t columns, bool show_blocks,
                               ImVec2 p0, float sc) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  auto cell_pos = [&](int64_t t, int64_t h, int64_t w) {
    return ImVec2(p0.x + ((t % columns) * (g.w + 1) + w) * sc, p0.y + ((t / columns) * (g.h + 1) + h) * sc);
  };
  for (int64_t t = 0; t < frames; ++t)
    for (int64_t h = 0; h < g.h; ++h)
      for (int64_t w = 0; w < g.w; ++w) {
        const ImVec2 a = cell_pos(t, h, w);
        const int64_t b = drawing_.block_of_cell[g.index(t, h, w)];
        dl->AddRectFilled(a, {a.x + sc, a.y + sc}, show_blocks ? block_tint(b) : IM_COL32(40, 40, 48, 255));
        if (!show_blocks) continue;
        // Block boundaries: an edge where the neighbour cell belongs to another block.
        const ImU32 edge = IM_COL32(235, 235, 240, 200);
        if (w + 1 < g.w && drawing_.block_of_cell[g.index(t, h, w + 1)] != b)
          dl->AddLine({a.x + sc, a.y}, {a.x + sc, a.y + sc}, edge, 1.2f);
        if (h + 1 < g.h && drawing_.block_of_cell[g.index(t, h + 1, w)] != b)
          dl->AddLine({a.x, a.y + sc}, {a.x + sc, a.y + sc}, edge, 1.2f);
      }
}

// The walk as a polyline coloured by sequence position; jumps between frames drawn thin and faint.
void OrderingPanel::draw_walk(const attention::TokenGrid& g, int64_t frames, const Colormap& colormap, ImVec2 p0,
                              float sc) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float thick = std::clamp(sc * 0.18f, 1.f, 3.f);
  for (size_t p = 1; p < drawing_.x.size(); ++p) {
    const int64_t ta = ordering_.perm[p - 1] / g.frame_size(), tb = ordering_.perm[p] / g.frame_size();
    if (ta >= frames || tb >= frames) continue;
    const ImVec2 a(p0.x + drawing_.x[p - 1] * sc, p0.y + drawing_.y[p - 1] * sc);
    const ImVec2 b(p0.x + drawing_.x[p] * sc, p0.y + drawing_.y[p] * sc);
    const ImU32 c = kit::rgb(colormap.at(0.15f + 0.85f * drawing_.position[p]), ta == tb ? 255 : 110);
    dl->AddLine(a, b, c, ta == tb ? thick : 1.f);
  }
}

}  // namespace longshot::ui

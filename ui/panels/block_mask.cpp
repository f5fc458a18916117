#include "ui/panels/block_mask.h"

#include <algorithm>
#include <cmath>

#include "ui/mask_view.h"
#include "ui/panels/panel_kit.h"

namespace longshot::ui {

void BlockMaskPanel::draw_toolbar(const RunRecord& r, const attention::BlockMask& m, int heads) {
  ImGui::SetNextItemWidth(120);
  if (heads > 1) ImGui::SliderInt("head", &head_, 0, heads - 1);
  else ImGui::TextDisabled("one mask shared by all heads");
  kit::flow(kit::text_w("reset view") + 2 * ImGui::GetStyle().FramePadding.x);
  if (ImGui::Button("reset view")) {
    zoom_ = 1;
    pan_ = {0, 0};
  }
  const MaskColors colors;
  // Legend entries flow onto the next line rather than off the panel's edge.
  auto legend = [&](const char* id, const Rgba8& c, const char* text) {
    const float need = 16 + ImGui::CalcTextSize(text).x + ImGui::GetStyle().ItemSpacing.x;
    ImGui::SameLine();
    if (ImGui::GetContentRegionAvail().x < need) ImGui::NewLine();
    ImGui::ColorButton(id, ImColor(kit::rgba(c)), 0, {10, 10});
    ImGui::SameLine(0, 3);
    ImGui::TextUnformatted(text);
  };
  legend("kept", colors.kept, "kept");
  legend("cached", colors.cached, "reused (cached mask)");
  legend("dropped", colors.dropped, "dropped");
  ImGui::TextWrapped("layer %d, %lld x %lld blocks of %lld, %s order, block sparsity %.1f%%%s", r.mask_layer,
                     static_cast<long long>(m.num_q_blocks), static_cast<long long>(m.num_k_blocks),
                     static_cast<long long>(m.block_size), attention::to_string(m.ordering),
                     100.0 * m.head_block_sparsity(heads > 1 ? head_ : 0), r.mask_from_cache ? " (from cache)" : "");
}

bool BlockMaskPanel::draw(PanelContext& ctx) {
  const RunRecord* r = ctx.state.current();
  const attention::BlockMaskPtr m = r ? r->mask : nullptr;
  if (!m || m->num_q_blocks == 0) {
    kit::hint(kit::waiting_text(ctx.state, "block mask").c_str());
    return false;
  }
  const int heads = static_cast<int>(std::max<int64_t>(1, m->num_heads));
  const PayloadKey key = mask_key(r);
  if (!drawn_.valid()) head_ = r->mask_head;  // the first mask shows the inspected head
  head_ = std::clamp(head_, 0, heads - 1);
  draw_toolbar(*r, *m, heads);

  if (key != drawn_ || head_ != drawn_head_ || r->mask_from_cache != drawn_cached_) {
    const auto px = mask_to_rgba(*m, head_, r->mask_from_cache, MaskColors{});
    gl::upload_texture(texture_, static_cast<int>(m->num_k_blocks), static_cast<int>(m->num_q_blocks), GL_RGBA8,
                       GL_RGBA, GL_UNSIGNED_BYTE, px.data());
    drawn_ = key;
    drawn_head_ = head_;
    drawn_cached_ = r->mask_from_cache;
  }
  const std::string okey = r->grid.to_string() + attention::to_string(m->ordering);
  const bool grid_fits = r->grid.size() == m->seq_len;
  if (grid_fits && okey != ordering_key_) {
    ordering_ = attention::make_ordering(m->ordering, r->grid);
    ordering_key_ = okey;
  }
  const ImVec2 size =
      kit::fit(ImGui::GetContentRegionAvail(), static_cast<float>(m->num_k_blocks), static_cast<float>(m->num_q_blocks));
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("mask", size);
  const bool hovered = navigate(p0, size);
  draw_matrix(*m, p0, size);
  if (hovered) draw_tooltip(*r, *m, heads, grid_fits, p0, size);
  return true;
}

bool BlockMaskPanel::navigate(ImVec2 p0, ImVec2 size) {
  const bool hovered = ImGui::IsItemHovered();
  ImGuiIO& io = ImGui::GetIO();
  const float span = 1.f / zoom_;
  if (hovered && io.MouseWheel != 0) {
    // Zoom about the mouse: the texel under it stays put.
    const ImVec2 rel((io.MousePos.x - p0.x) / size.x, (io.MousePos.y - p0.y) / size.y);
    const ImVec2 uv(pan_.x + rel.x * span, pan_.y + rel.y * span);
    zoom_ = std::clamp(zoom_ * std::pow(1.25f, io.MouseWheel), 1.f, 64.f);
    const float ns = 1.f / zoom_;
    pan_ = {uv.x - rel.x * ns, uv.y - rel.y * ns};
  }
  if (ImGui::IsItemActive() && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 0)) {
    pan_.x -= io.MouseDelta.x / size.x * span;
    pan_.y -= io.MouseDelta.y / size.y * span;
  }
  const float ns = 1.f / zoom_;
  pan_.x = std::clamp(pan_.x, 0.f, 1.f - ns);
  pan_.y = std::clamp(pan_.y, 0.f, 1.f - ns);
  return hovered;
}

void BlockMaskPanel::draw_matrix(const attention::BlockMask& m, ImVec2 p0, ImVec2 size) {
  const float ns = 1.f / zoom_;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddImage(kit::tex_id(texture_), p0, {p0.x + size.x, p0.y + size.y}, pan_, {pan_.x + ns, pan_.y + ns});
  const float cell_x = size.x / (m.num_k_blocks * ns), cell_y = size.y / (m.num_q_blocks * ns);
  if (cell_x >= 6 && cell_y >= 6) {
    // Block grid lines once a block is big enough to see them.
    const ImU32 c = IM_COL32(0, 0, 0, 110);
    for (int64_t k = static_cast<int64_t>(pan_.x * m.num_k_blocks) + 1; k < m.num_k_blocks; ++k) {
      const float x = p0.x + (static_cast<float>(k) / m.num_k_blocks - pan_.x) / ns * size.x;
      if (x > p0.x + size.x) break;
      dl->AddLine({x, p0.y}, {x, p0.y + size.y}, c);
    }
    for (int64_t q = static_cast<int64_t>(pan_.y * m.num_q_blocks) + 1; q < m.num_q_blocks; ++q) {
      const float y = p0.y + (static_cast<float>(q) / m.num_q_blocks - pan_.y) / ns * size.y;
      if (y > p0.y + size.y) break;
      dl->AddLine({p0.x, y}, {p0.x + size.x, y}, c);
    }
  }
  dl->AddRect(p0, {p0.x + size.x, p0.y + size.y}, IM_COL32(90, 90, 100, 255));
}

void BlockMaskPanel::draw_tooltip(const RunRecord& r, const attention::BlockMask& m, int heads, bool grid_fits,
                                  ImVec2 p0, ImVec2 size) {
  const ImGuiIO& io = ImGui::GetIO();
  const float ns = 1.f / zoom_;
  const float u = pan_.x + (io.MousePos.x - p0.x) / size.x * ns;
  const float vv = pan_.y + (io.MousePos.y - p0.y) / size.y * ns;
  const int64_t kb = std::clamp<int64_t>(static_cast<int64_t>(u * m.num_k_blocks), 0, m.num_k_blocks - 1);
  const int64_t qb = std::clamp<int64_t>(static_cast<int64_t>(vv * m.num_q_blocks), 0, m.num_q_blocks - 1);
  const bool kept = m.contains(heads > 1 ? head_ : 0, qb, kb);
  if (!grid_fits) {
    ImGui::SetTooltip("query block %lld, key block %lld: %s", static_cast<long long>(qb), static_cast<long long>(kb),
                      kept ? "kept" : "dropped");
    return;
  }
  const auto qe = block_extent(ordering_, m.block_size, qb);
  const auto ke = block_extent(ordering_, m.block_size, kb);
  using ll = long long;
  ImGui::SetTooltip(
      "query block %lld: t %lld-%lld, h %lld-%lld, w %lld-%lld (starts at %lld,%lld,%lld)\n"
      "key block %lld: t %lld-%lld, h %lld-%lld, w %lld-%lld (starts at %lld,%lld,%lld)\n%s",
      static_cast<ll>(qb), static_cast<ll>(qe.t0), static_cast<ll>(qe.t1), static_cast<ll>(qe.h0),
      static_cast<ll>(qe.h1), static_cast<ll>(qe.w0), static_cast<ll>(qe.w1), static_cast<ll>(qe.first_t),
      static_cast<ll>(qe.first_h), static_cast<ll>(qe.first_w), static_cast<ll>(kb), static_cast<ll>(ke.t0),
      static_cast<ll>(ke.t1), static_cast<ll>(ke.h0), static_cast<ll>(ke.h1), static_cast<ll>(ke.w0),
      static_cast<ll>(ke.w1), static_cast<ll>(ke.first_t), static_cast<ll>(ke.first_h), static_cast<ll>(ke.first_w),
      kept ? (r.mask_from_cache ? "kept (mask reused from cache)" : "kept") : "dropped");
}

}  // namespace longshot::ui

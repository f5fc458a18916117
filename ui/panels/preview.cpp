#include "ui/panels/preview.h"

#include <algorithm>
#include <cstdio>

#include "ui/panels/panel_kit.h"

namespace longshot::ui {

bool PreviewPanel::draw(PanelContext& ctx) {
  const StudioState& s = ctx.state;
  ViewSettings& v = ctx.view;
  const RunRecord* r = s.current();
  const VideoPtr vid = r ? r->frames() : nullptr;
  if (!vid || vid->frames == 0 || vid->rgb.size() < vid->frame_bytes() * vid->frames) {
    kit::hint(kit::waiting_text(s, "first preview").c_str());
    return false;
  }
  playback_.set_loop(v.loop);
  playback_.set_frame_count(vid->frames);
  if (r->video && r->job_id != autoplayed_job_) {
    // Final frames of a new run play on their own, twice; previews stay on their frame.
    autoplayed_job_ = r->job_id;
    playback_.play();
    autoplay_wraps_ = 0;
  }
  playback_.advance(ctx.dt_seconds, vid->fps);
  if (autoplay_wraps_ >= 0 && playback_.frame() < last_frame_ && ++autoplay_wraps_ >= 2) {
    playback_.pause();
    autoplay_wraps_ = -1;
  }
  last_frame_ = playback_.frame();

  if (ImGui::Button(playback_.playing() ? "Pause" : "Play")) {
    playback_.toggle();
    autoplay_wraps_ = -1;  // the user's Play loops until paused
  }
  kit::flow(kit::toggle_w("Loop"));
  ImGui::Checkbox("Loop", &v.loop);
  kit::flow(140);
  int f = playback_.frame();
  ImGui::SetNextItemWidth(std::max(60.f, ImGui::GetContentRegionAvail().x - 70));
  if (ImGui::SliderInt("##scrub", &f, 0, std::max(0, vid->frames - 1), "frame %d")) playback_.scrub(f);
  ImGui::SameLine();
  ImGui::Text("%d / %d", playback_.frame() + 1, vid->frames);
  char line[160];
  if (r->video)
    std::snprintf(line, sizeof line, "final frames, job %llu, %s", static_cast<unsigned long long>(r->job_id),
                  r->steps.empty() ? r->request.attention.mode.c_str() : r->steps.back().mode.c_str());
  else
    std::snprintf(line, sizeof line, "x0 preview after step %d / %d (the clip is not finished)",
                  r->steps.empty() ? 0 : r->steps.back().step + 1, r->num_steps);
  kit::hint(line);

  const PayloadKey key = frames_key(r);
  if (key != uploaded_ || playback_.frame() != uploaded_frame_) {
    gl::upload_texture(texture_, vid->width, vid->height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE,
                       vid->frame(playback_.frame()), GL_LINEAR);
    uploaded_ = key;
    uploaded_frame_ = playback_.frame();
  }
  const ImVec2 size =
      kit::fit(ImGui::GetContentRegionAvail(), static_cast<float>(vid->width), static_cast<float>(vid->height));
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::Image(kit::tex_id(texture_), size);
  const auto& g = r->grid;
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int64_t t = std::min<int64_t>(g.t - 1, static_cast<int64_t>(playback_.frame()) * g.t / vid->frames);
    const int64_t h = std::clamp<int64_t>(static_cast<int64_t>((m.y - p0.y) / size.y * g.h), 0, g.h - 1);
    const int64_t w = std::clamp<int64_t>(static_cast<int64_t>((m.x - p0.x) / size.x * g.w), 0, g.w - 1);
    ImGui::SetTooltip("token (t=%lld, h=%lld, w=%lld)\nclick: inspect this query", static_cast<long long>(t),
                      static_cast<long long>(h), static_cast<long long>(w));
    if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) ctx.actions.pick_query = g.index(t, h, w);
  }
  if (r->heatmap && g.size() > 0) draw_query_marker(*r, vid->frames, p0, size);
  return true;
}

// The inspected query token, as a crosshair on its frame (dim on others).
void PreviewPanel::draw_query_marker(const RunRecord& r, int frames, ImVec2 p0, ImVec2 size) {
  const auto& g = r.grid;
  int64_t qt, qh, qw;
  r.heatmap->source_grid.coords(r.heatmap->query_token, qt, qh, qw);
  const int64_t ft = std::min<int64_t>(g.t - 1, static_cast<int64_t>(playback_.frame()) * g.t / frames);
  const ImU32 c = ft == qt ? IM_COL32(80, 255, 120, 255) : IM_COL32(80, 255, 120, 90);
  const float x = p0.x + (qw + 0.5f) / r.heatmap->source_grid.w * size.x;
  const float y = p0.y + (qh + 0.5f) / r.heatmap->source_grid.h * size.y;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddLine({x - 8, y}, {x + 8, y}, c, 1.5f);
  dl->AddLine({x, y - 8}, {x, y + 8}, c, 1.5f);
  dl->AddCircle({x, y}, 5, c);
}

}  // namespace longshot::ui

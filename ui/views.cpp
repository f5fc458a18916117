// [SECTION] index
//   helpers        colors, fitting, a small line plot with an overlay series and step markers
//   ColormapPass   scalar texture → colormap → RGBA texture, offscreen (the shader does the map)
//   Preview        frames as they arrive, play / pause / scrub / loop, click to pick the query
//   Heatmap        T small H×W maps of one query's attention, log / linear, legend
//   Ordering       Hilbert / raster walk over the token grid with the mask's block boundaries
//   Mask           query-block × key-block matrix, zoom / pan, hover read-out in (t, h, w)
//   Sparsity       per-layer heat strip, mean sparsity, timings, recall; previous run overlaid
//   Compare        A / B runs of one seed side by side, their difference and PSNR
//   Views          tiling, panel rects for the self-test
#include "ui/views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include <imgui.h>

#include "engine/attention/mask_policy.h"
#include "engine/common/error.h"
#include "ui/colormap.h"
#include "ui/compare.h"
#include "ui/gl.h"
#include "ui/heatmap.h"
#include "ui/jobs.h"
#include "ui/mask_view.h"
#include "ui/ordering_view.h"
#include "ui/playback.h"
#include "ui/resources.h"

namespace longshot::ui {

// ---------------------------------------------------------------------------------------------
// [SECTION] helpers
namespace {

ImTextureID tex_id(const gl::Texture& t) { return reinterpret_cast<ImTextureID>(static_cast<intptr_t>(t.get())); }

ImU32 rgb(const Rgb8& c, uint8_t a = 255) { return IM_COL32(c.r, c.g, c.b, a); }
ImU32 rgba(const Rgba8& c) { return IM_COL32(c.r, c.g, c.b, c.a); }

// The largest size of aspect w:h inside `avail`.
ImVec2 fit(ImVec2 avail, float w, float h) {
  if (w <= 0 || h <= 0 || avail.x <= 1 || avail.y <= 1) return {std::max(avail.x, 1.f), std::max(avail.y, 1.f)};
  const float s = std::min(avail.x / w, avail.y / h);
  return {w * s, h * s};
}

// Block tints for the ordering view: muted, alternating in hue so neighbours differ.
ImU32 block_tint(int64_t block) {
  static const ImU32 tints[] = {IM_COL32(48, 58, 92, 255),  IM_COL32(76, 52, 84, 255), IM_COL32(44, 78, 74, 255),
                                IM_COL32(86, 70, 46, 255), IM_COL32(60, 60, 60, 255), IM_COL32(40, 66, 100, 255)};
  return tints[block % 6];
}

struct Series {
  const std::vector<float>* values;
  ImU32 color;
  float thickness;
  const char* label;
};

// A line plot over steps 0..x_count-1: series (the first drawn on top), vertical markers at mode
// switches, y range [y_min, y_max]. Returns the height used.
// `fmt` prints one y value with its unit ("%.0f ms", "%.0f%%" of value*scale).
void step_plot(const char* title, const std::vector<Series>& series, int x_count, float y_min, float y_max,
               const std::vector<ModeSwitch>& markers, float height, const char* fmt = "%.3g", float scale = 1.f,
               const char* x_label = "step") {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const float w = std::max(40.f, ImGui::GetContentRegionAvail().x);
  const ImVec2 p1(p0.x + w, p0.y + height);
  dl->AddRectFilled(p0, p1, IM_COL32(22, 22, 28, 255));
  dl->AddRect(p0, p1, IM_COL32(70, 70, 80, 255));
  if (y_max <= y_min) y_max = y_min + 1;
  auto px = [&](int i) { return p0.x + 4 + (w - 8) * (x_count > 1 ? static_cast<float>(i) / (x_count - 1) : 0.5f); };
  // Data below the title line, so a curve at its maximum never runs through the title.
  const float data_h = std::max(4.f, height - 8 - ImGui::GetTextLineHeight());
  auto py = [&](float v) { return p1.y - 3 - data_h * std::clamp((v - y_min) / (y_max - y_min), 0.f, 1.f); };
  for (const auto& m : markers) {
    const float x = px(m.step);
    dl->AddLine({x, p0.y}, {x, p1.y}, IM_COL32(250, 220, 90, 200), 1.5f);
  }
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    const auto& v = *it->values;
    if (v.size() == 1) dl->AddCircleFilled({px(0), py(v[0])}, 2.5f, it->color);
    for (size_t i = 1; i < v.size(); ++i) {
      if (std::isnan(v[i - 1]) || std::isnan(v[i])) continue;
      dl->AddLine({px(static_cast<int>(i - 1)), py(v[i - 1])}, {px(static_cast<int>(i)), py(v[i])}, it->color,
                  it->thickness);
    }
  }
  // Title top-left, legend top-right (on the next line when both do not fit), the y range as tick
  // labels at the left edge, the x axis's first and last values at the bottom.
  const ImU32 text_c = IM_COL32(200, 200, 210, 255), axis_c = IM_COL32(150, 150, 160, 255);
  const float lh = ImGui::GetTextLineHeight();
  dl->AddText({p0.x + 6, p0.y + 2}, text_c, title);
  float legend_w = 0;
  for (const auto& s : series) legend_w += ImGui::CalcTextSize(s.label).x + 10;
  const float legend_y = ImGui::CalcTextSize(title).x + 16 + legend_w > w ? p0.y + 2 + lh : p0.y + 2;
  float lx = p1.x - 6;
  for (const auto& s : series) {
    lx -= ImGui::CalcTextSize(s.label).x;
    dl->AddText({lx, legend_y}, s.color, s.label);
    lx -= 10;
  }
  // Range labels only where they cannot sit on each other (a short plot keeps its title and x).
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, y_max * scale);
  if (height > 4 * lh) dl->AddText({p0.x + 6, p0.y + 2 + lh}, axis_c, buf);
  std::snprintf(buf, sizeof buf, fmt, y_min * scale);
  if (height > 3 * lh) dl->AddText({p0.x + 6, p1.y - lh - 2}, axis_c, buf);
  std::snprintf(buf, sizeof buf, "%s %d", x_label, x_count);
  const float xw = ImGui::CalcTextSize(buf).x;
  dl->AddText({p1.x - xw - 6, p1.y - lh - 2}, axis_c, buf);
  ImGui::Dummy({w, height});
}

std::vector<ModeSwitch> switches_of(const RunRecord* r) { return r ? r->mode_switches : std::vector<ModeSwitch>{}; }

// The next item on this line if `need` pixels are left, else on the next line: toolbars wrap in
// narrow panels (1280x800) instead of running off the edge.
void flow(float need) {
  ImGui::SameLine();
  if (ImGui::GetContentRegionAvail().x < need) ImGui::NewLine();
}
float text_w(const char* s) { return ImGui::CalcTextSize(s).x; }
// A checkbox / radio button: box + spacing + label.
float toggle_w(const char* s) { return ImGui::GetFrameHeight() + ImGui::GetStyle().ItemInnerSpacing.x + text_w(s); }

// Grey text that wraps at the panel's edge instead of running off it.
void hint(const char* text) {
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
  ImGui::TextWrapped("%s", text);
  ImGui::PopStyleColor();
}

// What an empty panel says: the truth about the newest job, not "press Generate" while it runs.
std::string waiting_text(const StudioState& s, const char* what) {
  const RunRecord* r = s.current();
  if (r && r->status == RunStatus::Running)
    return r->steps.empty() ? "Step 1 of " + std::to_string(r->num_steps) + " is running (job " + std::to_string(r->job_id) +
                                  "): the " + what + " appears when it ends."
                            : std::string("This run publishes no ") + what + " (previews off, or a dense layer).";
  if (s.queued() > 0) return "A job is queued: it starts once the model is loaded.";
  return std::string("No ") + what + " yet: press Generate.";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// [SECTION] ColormapPass
namespace {
class ColormapPass {
 public:
  ColormapPass()
      : program_(gl::link_program("fullscreen.vert.glsl", embedded_resource("fullscreen.vert.glsl"),
                                  "colormap.frag.glsl", embedded_resource("colormap.frag.glsl"))) {
    GLuint vao = 0;
    glGenVertexArrays(1, &vao);
    vao_ = gl::VertexArray(vao);
    GLuint fbo = 0;
    glGenFramebuffers(1, &fbo);
    fbo_ = gl::Framebuffer(fbo);
  }

  void set_colormap(const Colormap& map) {
    if (map.name() == lut_name_) return;
    gl::upload_texture(lut_, Colormap::kSize, 1, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, map.table().data(), GL_LINEAR);
    lut_name_ = map.name();
  }
  const gl::Texture& lut() const { return lut_; }

  // values: width × height floats, top row first; negative = background.
  void render(const std::vector<float>& values, int width, int height, float vmax, HeatScale scale, gl::Texture& out,
              GLuint target_fbo) {
    gl::upload_texture(data_, width, height, GL_R32F, GL_RED, GL_FLOAT, values.data());
    gl::upload_texture(out, width, height, GL_RGBA8, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    GLint viewport[4];
    glGetIntegerv(GL_VIEWPORT, viewport);
    const GLboolean blend = glIsEnabled(GL_BLEND), scissor = glIsEnabled(GL_SCISSOR_TEST);
    glBindFramebuffer(GL_FRAMEBUFFER, fbo_.get());
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, out.get(), 0);
    glViewport(0, 0, width, height);
    glDisable(GL_BLEND);
    glDisable(GL_SCISSOR_TEST);
    glUseProgram(program_.get());
    glActiveTexture(GL_TEXTURE0);
    glBindTexture(GL_TEXTURE_2D, data_.get());
    glActiveTexture(GL_TEXTURE1);
    glBindTexture(GL_TEXTURE_2D, lut_.get());
    glUniform1i(glGetUniformLocation(program_.get(), "u_values"), 0);
    glUniform1i(glGetUniformLocation(program_.get(), "u_colormap"), 1);
    glUniform1f(glGetUniformLocation(program_.get(), "u_vmax"), vmax);
    glUniform1i(glGetUniformLocation(program_.get(), "u_log"), scale == HeatScale::Log ? 1 : 0);
    glUniform1f(glGetUniformLocation(program_.get(), "u_decades"), 4.f);
    glUniform4f(glGetUniformLocation(program_.get(), "u_background"), 0.09f, 0.09f, 0.11f, 1.f);
    glBindVertexArray(vao_.get());
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
    glBindVertexArray(0);
    glBindTexture(GL_TEXTURE_2D, 0);
    glActiveTexture(GL_TEXTURE0);
    glBindTexture(GL_TEXTURE_2D, 0);
    glUseProgram(0);
    glBindFramebuffer(GL_FRAMEBUFFER, target_fbo);
    glViewport(viewport[0], viewport[1], viewport[2], viewport[3]);
    if (blend) glEnable(GL_BLEND);
    if (scissor) glEnable(GL_SCISSOR_TEST);
  }

 private:
  gl::Program program_;
  gl::VertexArray vao_;
  gl::Framebuffer fbo_;
  gl::Texture data_, lut_;
  std::string lut_name_;
};
}  // namespace

// ---------------------------------------------------------------------------------------------
struct Views::Impl {
  ColormapPass pass;
  Colormap colormap = Colormap::builtin("ember");
  std::vector<std::string> modes = {"dense"};
  uint64_t compare_a = 0, compare_b = 0;
  std::vector<PanelRect> rects;
  GLuint target_fbo = 0;

  // Preview
  Playback playback;
  gl::Texture preview_tex;
  const Video* preview_video = nullptr;
  const Video* autoplayed = nullptr;
  int preview_frame = -1;

  // Heatmap
  gl::Texture heat_tex;
  HeatmapAtlas atlas;
  const pipeline::AttentionHeatmap* heat_src = nullptr;
  int heat_columns = 0;
  bool heat_log = false;
  std::string heat_cmap;

  // Ordering
  OrderingDrawing drawing;
  attention::Ordering ordering;
  std::string ordering_key;
  int ordering_choice = 0;  // 0 = the mask's, 1 = Hilbert, 2 = raster
  int ordering_frames = 4;

  // Mask
  gl::Texture mask_tex;
  const attention::BlockMask* mask_src = nullptr;
  int mask_head_drawn = -1;
  bool mask_cached_drawn = false;
  int mask_head = 0;
  float mask_zoom = 1.f;
  ImVec2 mask_pan{0, 0};
  attention::Ordering mask_ordering;
  std::string mask_ordering_key;

  // Sparsity
  gl::Texture strip_tex;
  const RunRecord* strip_run = nullptr;
  uint64_t strip_job = 0;
  size_t strip_steps = 0;
  std::string strip_cmap;

  // Compare
  gl::Texture cmp_a_tex, cmp_b_tex, cmp_diff_tex;
  const Video *cmp_a_src = nullptr, *cmp_b_src = nullptr;
  int cmp_frame = 0, cmp_frame_drawn = -1;
  std::vector<float> cmp_psnr;

  // Sweep (a tab of Compare)
  struct Sweep {
    uint64_t reference = 0;
    std::vector<uint64_t> jobs;
    std::string mode, param;
    std::vector<double> values;
  } sweep;
  int sweep_param = 0, sweep_points = 5;
  float sweep_from = 0.1f, sweep_to = 0.5f;
  std::string sweep_param_mode;  // the mode sweep_from/to were set for
  bool show_ab_tab = false;       // a click on a sweep point opens A vs B with its frames
  bool show_sweep_tab = false;    // a new sweep shows itself
  bool sweep_sync = false;        // ... and its mode, parameter and range in the controls
  int autoplay_wraps = -1;  // a new clip plays twice on its own, then waits (no redraws while idle)
  int last_frame = 0;
  std::vector<float> cmp_ssim;

  bool preview(const StudioState& s, ViewSettings& v, double dt, PanelActions& act);
  bool heatmap(const StudioState& s, ViewSettings& v);
  bool ordering_view(const StudioState& s, ViewSettings& v);
  bool mask(const StudioState& s, ViewSettings& v);
  bool sparsity(const StudioState& s, ViewSettings& v);
  bool compare(const StudioState& s, ViewSettings& v, PanelActions& act);
  bool compare_ab(const StudioState& s, ViewSettings& v, PanelActions& act);
  bool sweep_tab(const StudioState& s, ViewSettings& v, PanelActions& act);
  const RunRecord* run_with_grid(const StudioState& s) const;
};

// ---------------------------------------------------------------------------------------------
// [SECTION] Preview
bool Views::Impl::preview(const StudioState& s, ViewSettings& v, double dt, PanelActions& act) {
  const RunRecord* r = s.current();
  const VideoPtr vid = r ? r->frames() : nullptr;
  if (!vid || vid->frames == 0 || vid->rgb.size() < vid->frame_bytes() * vid->frames) {
    hint(waiting_text(s, "first preview").c_str());
    return false;
  }
  playback.set_loop(v.loop);
  playback.set_frame_count(vid->frames);
  if (r->video && r->video.get() != autoplayed) {
    // Final frames of a new run play on their own, twice; previews stay on their frame.
    autoplayed = r->video.get();
    playback.play();
    autoplay_wraps = 0;
  }
  playback.advance(dt, vid->fps);
  if (autoplay_wraps >= 0 && playback.frame() < last_frame && ++autoplay_wraps >= 2) {
    playback.pause();
    autoplay_wraps = -1;
  }
  last_frame = playback.frame();

  if (ImGui::Button(playback.playing() ? "Pause" : "Play")) {
    playback.toggle();
    autoplay_wraps = -1;  // the user's Play loops until paused
  }
  flow(toggle_w("Loop"));
  ImGui::Checkbox("Loop", &v.loop);
  flow(140);
  int f = playback.frame();
  ImGui::SetNextItemWidth(std::max(60.f, ImGui::GetContentRegionAvail().x - 70));
  if (ImGui::SliderInt("##scrub", &f, 0, std::max(0, vid->frames - 1), "frame %d")) playback.scrub(f);
  ImGui::SameLine();
  ImGui::Text("%d / %d", playback.frame() + 1, vid->frames);
  char line[160];
  if (r->video)
    std::snprintf(line, sizeof line, "final frames, job %llu, %s", static_cast<unsigned long long>(r->job_id),
                  r->steps.empty() ? r->request.attention.mode.c_str() : r->steps.back().mode.c_str());
  else
    std::snprintf(line, sizeof line, "x0 preview after step %d / %d (the clip is not finished)",
                  r->steps.empty() ? 0 : r->steps.back().step + 1, r->num_steps);
  hint(line);

  if (vid.get() != preview_video || playback.frame() != preview_frame) {
    gl::upload_texture(preview_tex, vid->width, vid->height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE,
                       vid->frame(playback.frame()), GL_LINEAR);
    preview_video = vid.get();
    preview_frame = playback.frame();
  }
  const ImVec2 size = fit(ImGui::GetContentRegionAvail(), static_cast<float>(vid->width), static_cast<float>(vid->height));
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::Image(tex_id(preview_tex), size);
  const auto& g = r->grid;
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int64_t t = std::min<int64_t>(g.t - 1, static_cast<int64_t>(playback.frame()) * g.t / vid->frames);
    const int64_t h = std::clamp<int64_t>(static_cast<int64_t>((m.y - p0.y) / size.y * g.h), 0, g.h - 1);
    const int64_t w = std::clamp<int64_t>(static_cast<int64_t>((m.x - p0.x) / size.x * g.w), 0, g.w - 1);
    ImGui::SetTooltip("token (t=%lld, h=%lld, w=%lld)\nclick: inspect this query", static_cast<long long>(t),
                      static_cast<long long>(h), static_cast<long long>(w));
    if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) act.pick_query = g.index(t, h, w);
  }
  // The inspected query token, as a crosshair on its frame (dim on others).
  if (r->heatmap && g.size() > 0) {
    int64_t qt, qh, qw;
    r->heatmap->source_grid.coords(r->heatmap->query_token, qt, qh, qw);
    const int64_t ft = std::min<int64_t>(g.t - 1, static_cast<int64_t>(playback.frame()) * g.t / vid->frames);
    const ImU32 c = ft == qt ? IM_COL32(80, 255, 120, 255) : IM_COL32(80, 255, 120, 90);
    const float x = p0.x + (qw + 0.5f) / r->heatmap->source_grid.w * size.x;
    const float y = p0.y + (qh + 0.5f) / r->heatmap->source_grid.h * size.y;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddLine({x - 8, y}, {x + 8, y}, c, 1.5f);
    dl->AddLine({x, y - 8}, {x, y + 8}, c, 1.5f);
    dl->AddCircle({x, y}, 5, c);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Heatmap
bool Views::Impl::heatmap(const StudioState& s, ViewSettings& v) {
  const RunRecord* r = s.current();
  const pipeline::HeatmapPtr hm = r ? r->heatmap : nullptr;
  bool log_scale = v.log_scale;
  if (ImGui::Checkbox("log scale", &log_scale)) v.log_scale = log_scale;
  flow(90);
  ImGui::SetNextItemWidth(90);
  if (ImGui::BeginCombo("##cmap", v.colormap.c_str())) {
    for (const auto& n : Colormap::names())
      if (ImGui::Selectable(n.c_str(), n == v.colormap)) v.colormap = n;
    ImGui::EndCombo();
  }
  flow(70 + ImGui::GetStyle().ItemInnerSpacing.x + text_w("columns"));
  ImGui::SetNextItemWidth(70);
  ImGui::SliderInt("columns", &v.heatmap_columns, 1, 8);
  if (!hm || hm->values.empty()) {
    hint(waiting_text(s, "attention map").c_str());
    return false;
  }
  int64_t qt, qh, qw;
  hm->source_grid.coords(hm->query_token, qt, qh, qw);
  ImGui::TextWrapped("layer %d  head %d  query (t=%lld, h=%lld, w=%lld)  over %s tokens, one tile per frame",
                     hm->layer, hm->head, static_cast<long long>(qt), static_cast<long long>(qh),
                     static_cast<long long>(qw), hm->grid.to_string().c_str());

  if (v.colormap != colormap.name()) {
    try {
      colormap = Colormap::builtin(v.colormap);
    } catch (const Error&) {
      v.colormap = colormap.name();
    }
  }
  pass.set_colormap(colormap);
  if (hm.get() != heat_src || heat_columns != v.heatmap_columns || heat_log != v.log_scale ||
      heat_cmap != colormap.name()) {
    // Large grids are pooled (sum: attention mass stays mass) to at most 48 cells a side.
    const auto shown = fit_grid(hm->grid, 48, 48);
    const auto values = shown == hm->grid ? hm->values : pool_grid(hm->values, hm->grid, shown, Pooling::Sum);
    atlas = make_atlas(values, shown, v.heatmap_columns, 1);
    pass.render(atlas.values, atlas.width, atlas.height, atlas.vmax, v.log_scale ? HeatScale::Log : HeatScale::Linear,
                heat_tex, target_fbo);
    heat_src = hm.get();
    heat_columns = v.heatmap_columns;
    heat_log = v.log_scale;
    heat_cmap = colormap.name();
  }
  const float legend_h = 40 + ImGui::GetTextLineHeight();
  ImVec2 avail = ImGui::GetContentRegionAvail();
  avail.y -= legend_h;
  const ImVec2 size = fit(avail, static_cast<float>(atlas.width), static_cast<float>(atlas.height));
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::Image(tex_id(heat_tex), size);
  const float cell = size.x / atlas.width;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  // The query's own cell, outlined in its frame's tile.
  {
    const auto shown_grid = fit_grid(hm->grid, 48, 48);
    const int64_t t = qt * shown_grid.t / hm->source_grid.t;
    const int64_t h = qh * shown_grid.h / hm->source_grid.h, w = qw * shown_grid.w / hm->source_grid.w;
    const float x = p0.x + ((t % atlas.columns) * (atlas.tile_w + atlas.gap) + w) * cell;
    const float y = p0.y + ((t / atlas.columns) * (atlas.tile_h + atlas.gap) + h) * cell;
    dl->AddRect({x, y}, {x + cell, y + cell}, IM_COL32(80, 255, 120, 255), 0, 0, 1.5f);
  }
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    int64_t t, h, w;
    const int cx = static_cast<int>((m.x - p0.x) / cell), cy = static_cast<int>((m.y - p0.y) / cell);
    if (atlas.cell_to_grid(cx, cy, t, h, w))
      ImGui::SetTooltip("frame %lld, cell (%lld, %lld)\nmass %.3e", static_cast<long long>(t),
                        static_cast<long long>(h), static_cast<long long>(w),
                        static_cast<double>(atlas.values[static_cast<size_t>(cy) * atlas.width + cx]));
  }
  // Legend: the colormap bar with its scale's ticks, and what it measures.
  const ImVec2 l0(ImGui::GetCursorScreenPos().x, ImGui::GetCursorScreenPos().y + 4 + ImGui::GetTextLineHeight());
  const float lw = std::min(ImGui::GetContentRegionAvail().x, 360.f);
  dl->AddText({l0.x, l0.y - ImGui::GetTextLineHeight() - 2}, IM_COL32(200, 200, 200, 255),
              v.log_scale ? "attention probability (log)" : "attention probability");
  dl->AddImage(tex_id(pass.lut()), l0, {l0.x + lw, l0.y + 12});
  float label_end = -1e9f;
  for (const auto& tick : legend_ticks(atlas.vmax, v.log_scale ? HeatScale::Log : HeatScale::Linear, 5)) {
    const float x = l0.x + tick.position * lw;
    dl->AddLine({x, l0.y + 12}, {x, l0.y + 16}, IM_COL32(200, 200, 200, 255));
    const float tw = ImGui::CalcTextSize(tick.label.c_str()).x;
    const float tx = std::clamp(x - tw / 2, l0.x, l0.x + lw - tw);
    if (tx < label_end + 6) continue;  // a narrow panel: fewer labels rather than overlapping ones
    dl->AddText({tx, l0.y + 17}, IM_COL32(200, 200, 200, 255), tick.label.c_str());
    label_end = tx + tw;
  }
  ImGui::Dummy({lw, legend_h});
  return true;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Ordering
const RunRecord* Views::Impl::run_with_grid(const StudioState& s) const {
  const RunRecord* r = s.current();
  return r && r->grid.size() > 0 ? r : nullptr;
}

bool Views::Impl::ordering_view(const StudioState& s, ViewSettings& v) {
  const RunRecord* r = run_with_grid(s);
  ImGui::RadioButton("mask's order", &ordering_choice, 0);
  flow(toggle_w("Hilbert"));
  ImGui::RadioButton("Hilbert", &ordering_choice, 1);
  flow(toggle_w("raster"));
  ImGui::RadioButton("raster", &ordering_choice, 2);
  flow(toggle_w("blocks"));
  ImGui::Checkbox("blocks", &v.show_blocks);
  if (!r) {
    hint(waiting_text(s, "token grid").c_str());
    return false;
  }
  const auto kind = ordering_choice == 1   ? attention::OrderingKind::Hilbert
                    : ordering_choice == 2 ? attention::OrderingKind::Raster
                    : r->mask              ? r->mask->ordering
                                           : attention::OrderingKind::Raster;
  const int64_t bs = r->mask ? r->mask->block_size : r->request.attention.block_size;
  ImGui::SetNextItemWidth(100);
  ImGui::SliderInt("frames shown", &ordering_frames, 1, static_cast<int>(std::max<int64_t>(1, r->grid.t)));
  const int64_t frames = std::clamp<int64_t>(ordering_frames, 1, r->grid.t);
  const int64_t columns = std::min<int64_t>(frames, 4);
  const std::string key = r->grid.to_string() + attention::to_string(kind) + std::to_string(bs) + "/" +
                          std::to_string(columns);
  if (key != ordering_key) {
    ordering = attention::make_ordering(kind, r->grid);
    drawing = draw_ordering(ordering, std::max<int64_t>(1, bs), columns, 1);
    ordering_key = key;
  }
  ImGui::TextWrapped("%s order over %s tokens, %lld blocks of %lld", attention::to_string(kind), r->grid.to_string().c_str(),
              static_cast<long long>(drawing.num_blocks), static_cast<long long>(bs));
  const int64_t rows = (frames + columns - 1) / columns;
  const float ext_w = drawing.width;
  const float ext_h = static_cast<float>(rows * drawing.tile_h + (rows - 1) * drawing.gap);
  const ImVec2 size = fit(ImGui::GetContentRegionAvail(), ext_w, ext_h);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const float sc = size.x / ext_w;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const auto& g = r->grid;
  auto cell_pos = [&](int64_t t, int64_t h, int64_t w) {
    return ImVec2(p0.x + ((t % columns) * (g.w + 1) + w) * sc, p0.y + ((t / columns) * (g.h + 1) + h) * sc);
  };
  for (int64_t t = 0; t < frames; ++t)
    for (int64_t h = 0; h < g.h; ++h)
      for (int64_t w = 0; w < g.w; ++w) {
        const ImVec2 a = cell_pos(t, h, w);
        const int64_t b = drawing.block_of_cell[g.index(t, h, w)];
        dl->AddRectFilled(a, {a.x + sc, a.y + sc}, v.show_blocks ? block_tint(b) : IM_COL32(40, 40, 48, 255));
        if (!v.show_blocks) continue;
        // Block boundaries: an edge where the neighbour cell belongs to another block.
        const ImU32 edge = IM_COL32(235, 235, 240, 200);
        if (w + 1 < g.w && drawing.block_of_cell[g.index(t, h, w + 1)] != b)
          dl->AddLine({a.x + sc, a.y}, {a.x + sc, a.y + sc}, edge, 1.2f);
        if (h + 1 < g.h && drawing.block_of_cell[g.index(t, h + 1, w)] != b)
          dl->AddLine({a.x, a.y + sc}, {a.x + sc, a.y + sc}, edge, 1.2f);
      }
  const float thick = std::clamp(sc * 0.18f, 1.f, 3.f);
  for (size_t p = 1; p < drawing.x.size(); ++p) {
    const int64_t ta = ordering.perm[p - 1] / g.frame_size(), tb = ordering.perm[p] / g.frame_size();
    if (ta >= frames || tb >= frames) continue;
    const ImVec2 a(p0.x + drawing.x[p - 1] * sc, p0.y + drawing.y[p - 1] * sc);
    const ImVec2 b(p0.x + drawing.x[p] * sc, p0.y + drawing.y[p] * sc);
    const ImU32 c = rgb(colormap.at(0.15f + 0.85f * drawing.position[p]), ta == tb ? 255 : 110);
    dl->AddLine(a, b, c, ta == tb ? thick : 1.f);
  }
  ImGui::Dummy(size);
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int64_t cx = static_cast<int64_t>((m.x - p0.x) / sc), cy = static_cast<int64_t>((m.y - p0.y) / sc);
    const int64_t t = (cy / (g.h + 1)) * columns + cx / (g.w + 1), h = cy % (g.h + 1), w = cx % (g.w + 1);
    if (t < frames && h < g.h && w < g.w) {
      const int64_t idx = g.index(t, h, w);
      ImGui::SetTooltip("token (t=%lld, h=%lld, w=%lld)\nsequence position %lld, block %lld", static_cast<long long>(t),
                        static_cast<long long>(h), static_cast<long long>(w),
                        static_cast<long long>(ordering.inverse[idx]), static_cast<long long>(drawing.block_of_cell[idx]));
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Mask
bool Views::Impl::mask(const StudioState& s, ViewSettings&) {
  const RunRecord* r = s.current();
  const attention::BlockMaskPtr m = r ? r->mask : nullptr;
  if (!m || m->num_q_blocks == 0) {
    hint(waiting_text(s, "block mask").c_str());
    return false;
  }
  const int heads = static_cast<int>(std::max<int64_t>(1, m->num_heads));
  if (m.get() != mask_src && mask_src == nullptr) mask_head = r->mask_head;
  mask_head = std::clamp(mask_head, 0, heads - 1);
  ImGui::SetNextItemWidth(120);
  if (heads > 1) ImGui::SliderInt("head", &mask_head, 0, heads - 1);
  else ImGui::TextDisabled("one mask shared by all heads");
  flow(text_w("reset view") + 2 * ImGui::GetStyle().FramePadding.x);
  if (ImGui::Button("reset view")) {
    mask_zoom = 1;
    mask_pan = {0, 0};
  }
  const MaskColors colors;
  // Legend entries flow onto the next line rather than off the panel's edge.
  auto legend = [&](const char* id, const Rgba8& c, const char* text) {
    const float need = 16 + ImGui::CalcTextSize(text).x + ImGui::GetStyle().ItemSpacing.x;
    ImGui::SameLine();
    if (ImGui::GetContentRegionAvail().x < need) ImGui::NewLine();
    ImGui::ColorButton(id, ImColor(rgba(c)), 0, {10, 10});
    ImGui::SameLine(0, 3);
    ImGui::TextUnformatted(text);
  };
  legend("kept", colors.kept, "kept");
  legend("cached", colors.cached, "reused (cached mask)");
  legend("dropped", colors.dropped, "dropped");
  ImGui::TextWrapped("layer %d, %lld x %lld blocks of %lld, %s order, block sparsity %.1f%%%s", r->mask_layer,
              static_cast<long long>(m->num_q_blocks), static_cast<long long>(m->num_k_blocks),
              static_cast<long long>(m->block_size), attention::to_string(m->ordering),
              100.0 * m->head_block_sparsity(heads > 1 ? mask_head : 0), r->mask_from_cache ? " (from cache)" : "");

  if (m.get() != mask_src || mask_head != mask_head_drawn || r->mask_from_cache != mask_cached_drawn) {
    const auto px = mask_to_rgba(*m, mask_head, r->mask_from_cache, colors);
    gl::upload_texture(mask_tex, static_cast<int>(m->num_k_blocks), static_cast<int>(m->num_q_blocks), GL_RGBA8,
                       GL_RGBA, GL_UNSIGNED_BYTE, px.data());
    mask_src = m.get();
    mask_head_drawn = mask_head;
    mask_cached_drawn = r->mask_from_cache;
  }
  const std::string okey = r->grid.to_string() + attention::to_string(m->ordering);
  const bool grid_fits = r->grid.size() == m->seq_len;
  if (grid_fits && okey != mask_ordering_key) {
    mask_ordering = attention::make_ordering(m->ordering, r->grid);
    mask_ordering_key = okey;
  }

  const ImVec2 size =
      fit(ImGui::GetContentRegionAvail(), static_cast<float>(m->num_k_blocks), static_cast<float>(m->num_q_blocks));
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("mask", size);
  const bool hovered = ImGui::IsItemHovered();
  ImGuiIO& io = ImGui::GetIO();
  const float span = 1.f / mask_zoom;
  if (hovered && io.MouseWheel != 0) {
    // Zoom about the mouse: the texel under it stays put.
    const ImVec2 rel((io.MousePos.x - p0.x) / size.x, (io.MousePos.y - p0.y) / size.y);
    const ImVec2 uv(mask_pan.x + rel.x * span, mask_pan.y + rel.y * span);
    mask_zoom = std::clamp(mask_zoom * std::pow(1.25f, io.MouseWheel), 1.f, 64.f);
    const float ns = 1.f / mask_zoom;
    mask_pan = {uv.x - rel.x * ns, uv.y - rel.y * ns};
  }
  if (ImGui::IsItemActive() && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 0)) {
    mask_pan.x -= io.MouseDelta.x / size.x * span;
    mask_pan.y -= io.MouseDelta.y / size.y * span;
  }
  const float ns = 1.f / mask_zoom;
  mask_pan.x = std::clamp(mask_pan.x, 0.f, 1.f - ns);
  mask_pan.y = std::clamp(mask_pan.y, 0.f, 1.f - ns);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddImage(tex_id(mask_tex), p0, {p0.x + size.x, p0.y + size.y}, mask_pan, {mask_pan.x + ns, mask_pan.y + ns});
  const float cell_x = size.x / (m->num_k_blocks * ns), cell_y = size.y / (m->num_q_blocks * ns);
  if (cell_x >= 6 && cell_y >= 6) {
    // Block grid lines once a block is big enough to see them.
    const ImU32 c = IM_COL32(0, 0, 0, 110);
    for (int64_t k = static_cast<int64_t>(mask_pan.x * m->num_k_blocks) + 1; k < m->num_k_blocks; ++k) {
      const float x = p0.x + (static_cast<float>(k) / m->num_k_blocks - mask_pan.x) / ns * size.x;
      if (x > p0.x + size.x) break;
      dl->AddLine({x, p0.y}, {x, p0.y + size.y}, c);
    }
    for (int64_t q = static_cast<int64_t>(mask_pan.y * m->num_q_blocks) + 1; q < m->num_q_blocks; ++q) {
      const float y = p0.y + (static_cast<float>(q) / m->num_q_blocks - mask_pan.y) / ns * size.y;
      if (y > p0.y + size.y) break;
      dl->AddLine({p0.x, y}, {p0.x + size.x, y}, c);
    }
  }
  dl->AddRect(p0, {p0.x + size.x, p0.y + size.y}, IM_COL32(90, 90, 100, 255));
  if (hovered) {
    const float u = mask_pan.x + (io.MousePos.x - p0.x) / size.x * ns;
    const float vv = mask_pan.y + (io.MousePos.y - p0.y) / size.y * ns;
    const int64_t kb = std::clamp<int64_t>(static_cast<int64_t>(u * m->num_k_blocks), 0, m->num_k_blocks - 1);
    const int64_t qb = std::clamp<int64_t>(static_cast<int64_t>(vv * m->num_q_blocks), 0, m->num_q_blocks - 1);
    const bool kept = m->contains(heads > 1 ? mask_head : 0, qb, kb);
    if (grid_fits) {
      const auto qe = block_extent(mask_ordering, m->block_size, qb);
      const auto ke = block_extent(mask_ordering, m->block_size, kb);
      ImGui::SetTooltip(
          "query block %lld: t %lld-%lld, h %lld-%lld, w %lld-%lld (starts at %lld,%lld,%lld)\n"
          "key block %lld: t %lld-%lld, h %lld-%lld, w %lld-%lld (starts at %lld,%lld,%lld)\n%s",
          static_cast<long long>(qb), static_cast<long long>(qe.t0), static_cast<long long>(qe.t1),
          static_cast<long long>(qe.h0), static_cast<long long>(qe.h1), static_cast<long long>(qe.w0),
          static_cast<long long>(qe.w1), static_cast<long long>(qe.first_t), static_cast<long long>(qe.first_h),
          static_cast<long long>(qe.first_w), static_cast<long long>(kb), static_cast<long long>(ke.t0),
          static_cast<long long>(ke.t1), static_cast<long long>(ke.h0), static_cast<long long>(ke.h1),
          static_cast<long long>(ke.w0), static_cast<long long>(ke.w1), static_cast<long long>(ke.first_t),
          static_cast<long long>(ke.first_h), static_cast<long long>(ke.first_w),
          kept ? (r->mask_from_cache ? "kept (mask reused from cache)" : "kept") : "dropped");
    } else {
      ImGui::SetTooltip("query block %lld, key block %lld: %s", static_cast<long long>(qb), static_cast<long long>(kb),
                        kept ? "kept" : "dropped");
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Sparsity
bool Views::Impl::sparsity(const StudioState& s, ViewSettings&) {
  const RunRecord* r = s.current();
  if (!r || r->steps.empty()) {
    hint(waiting_text(s, "step timing").c_str());
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
  // Heat strip: one row per layer, one column per step; empty columns are steps still to come.
  const int layers = std::max(1, r->num_layers);
  pass.set_colormap(colormap);
  if (r->job_id != strip_job || r->steps.size() != strip_steps || strip_cmap != colormap.name()) {
    std::vector<float> cells(static_cast<size_t>(layers) * x_count, -1.f);
    for (const auto& st : r->steps) {
      if (st.step < 0 || st.step >= x_count) continue;
      for (int l = 0; l < layers; ++l)
        cells[static_cast<size_t>(l) * x_count + st.step] =
            l < static_cast<int>(st.layer_sparsity.size()) ? st.layer_sparsity[l] : static_cast<float>(st.mean_sparsity);
    }
    pass.render(cells, x_count, layers, 1.f, HeatScale::Linear, strip_tex, target_fbo);
    strip_job = r->job_id;
    strip_steps = r->steps.size();
    strip_cmap = colormap.name();
  }
  hint("sparsity per layer (rows, layer 0 on top) and step (columns):");
  // Colourbar of the strip: 0 % .. 100 % of blocks skipped.
  {
    ImDrawList* dl0 = ImGui::GetWindowDrawList();
    const ImVec2 c0 = ImGui::GetCursorScreenPos();
    const float cw = std::min(160.f, std::max(60.f, ImGui::GetContentRegionAvail().x - 90));
    const float lh = ImGui::GetTextLineHeight();
    dl0->AddText(c0, IM_COL32(200, 200, 200, 255), "0%");
    const float x0 = c0.x + ImGui::CalcTextSize("0% ").x;
    dl0->AddImage(tex_id(pass.lut()), {x0, c0.y + 3}, {x0 + cw, c0.y + lh - 2});
    dl0->AddText({x0 + cw + 4, c0.y}, IM_COL32(200, 200, 200, 255), "100% skipped");
    ImGui::Dummy({cw, lh});
  }
  const float w = std::max(40.f, ImGui::GetContentRegionAvail().x);
  const float strip_h = std::clamp(layers * 6.f, 24.f, 90.f);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  ImGui::Image(tex_id(strip_tex), {w, strip_h});
  ImDrawList* dl = ImGui::GetWindowDrawList();
  for (const auto& sw : r->mode_switches) {
    const float x = p0.x + w * sw.step / x_count;
    dl->AddLine({x, p0.y - 2}, {x, p0.y + strip_h + 2}, IM_COL32(250, 220, 90, 255), 2.f);
  }
  const RunRecord* prev = s.previous();
  auto series_of = [](const RunRecord* run, auto field) {
    std::vector<float> out;
    if (!run) return out;
    for (const auto& st : run->steps) out.push_back(static_cast<float>(field(st)));
    return out;
  };
  const auto mean_now = series_of(r, [](const StepRecord& st) { return st.mean_sparsity; });
  const auto mean_prev = series_of(prev, [](const StepRecord& st) { return st.mean_sparsity; });
  const auto step_now = series_of(r, [](const StepRecord& st) { return st.step_ms; });
  const auto attn_now = series_of(r, [](const StepRecord& st) { return st.attention_ms; });
  const auto step_prev = series_of(prev, [](const StepRecord& st) { return st.step_ms; });
  const auto recall_now = series_of(r, [](const StepRecord& st) { return st.recall_estimate; });
  const auto recall_prev = series_of(prev, [](const StepRecord& st) { return st.recall_estimate; });
  const float plot_h = std::max(40.f, (ImGui::GetContentRegionAvail().y - 12) / 3.f);
  const ImU32 now_c = IM_COL32(240, 150, 60, 255), prev_c = IM_COL32(150, 150, 170, 200),
              attn_c = IM_COL32(90, 170, 235, 255);
  const auto markers = switches_of(r);
  step_plot("mean sparsity", {{&mean_now, now_c, 2.f, "this run"}, {&mean_prev, prev_c, 1.f, "previous"}}, x_count, 0.f,
            1.f, markers, plot_h, "%.0f%%", 100.f);
  float tmax = 1.f;
  for (const auto* sv : {&step_now, &step_prev, &attn_now})
    for (float x : *sv) tmax = std::max(tmax, x);
  // Seconds once steps take more than ten of them: "68.1 s", never "6.81e+04".
  const bool secs = tmax > 10000.f;
  step_plot(secs ? "time per step (s)" : "time per step (ms)",
            {{&step_now, now_c, 2.f, "step"}, {&attn_now, attn_c, 2.f, "attention"}, {&step_prev, prev_c, 1.f, "previous"}},
            x_count, 0.f, tmax * 1.1f, markers, plot_h, secs ? "%.1f s" : "%.0f ms", secs ? 1e-3f : 1.f);
  const bool any_recall = std::any_of(recall_now.begin(), recall_now.end(), [](float x) { return x >= 0; });
  if (any_recall) {
    auto clean = [](std::vector<float> v) {
      for (float& x : v)
        if (x < 0) x = std::numeric_limits<float>::quiet_NaN();
      return v;
    };
    const auto rn = clean(recall_now), rp = clean(recall_prev);
    step_plot("recall (dense mass kept)", {{&rn, now_c, 2.f, "this run"}, {&rp, prev_c, 1.f, "previous"}}, x_count, 0.f,
              1.f, markers, plot_h, "%.0f%%", 100.f);
  } else {
    ImGui::TextDisabled("recall not measured by this run");
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Compare
bool Views::Impl::compare(const StudioState& s, ViewSettings& v, PanelActions& act) {
  bool has = false;
  if (ImGui::BeginTabBar("cmp_tabs")) {
    if (ImGui::BeginTabItem("A vs B", nullptr, show_ab_tab ? ImGuiTabItemFlags_SetSelected : 0)) {
      has = compare_ab(s, v, act);
      ImGui::EndTabItem();
    }
    show_ab_tab = false;
    const bool select_sweep = show_sweep_tab;
    show_sweep_tab = false;
    if (ImGui::BeginTabItem("Sweep", nullptr, select_sweep ? ImGuiTabItemFlags_SetSelected : 0)) {
      has = sweep_tab(s, v, act);
      ImGui::EndTabItem();
    }
    ImGui::EndTabBar();
  }
  return has;
}

bool Views::Impl::sweep_tab(const StudioState& s, ViewSettings& v, PanelActions& act) {
  // One parameter of mode B over a range, each point against a dense run of the same seed.
  if (sweep_sync && !sweep.mode.empty()) v.compare_mode_b = sweep.mode;
  const attention::PolicyInfo* info = nullptr;
  for (const auto& p : attention::registered_policies())
    if (p.name == v.compare_mode_b) info = &p;
  if (sweep_sync && info) {
    sweep_param_mode = info->name;
    for (size_t i = 0; i < info->params.size(); ++i)
      if (info->params[i].name == sweep.param) sweep_param = static_cast<int>(i);
    if (!sweep.values.empty()) {
      sweep_from = static_cast<float>(sweep.values.front());
      sweep_to = static_cast<float>(sweep.values.back());
      sweep_points = std::clamp(static_cast<int>(sweep.values.size()), 2, 8);
    }
  }
  sweep_sync = false;
  ImGui::SetNextItemWidth(110);
  if (ImGui::BeginCombo("mode", v.compare_mode_b.c_str())) {
    for (const auto& m : modes)
      if (ImGui::Selectable(m.c_str(), m == v.compare_mode_b)) v.compare_mode_b = m;
    ImGui::EndCombo();
  }
  if (!info || info->params.empty()) {
    hint("This mode has no parameter to sweep: pick a sparse mode (radial-ratio, dfsattn, lvsa, ...).");
  } else {
    if (sweep_param_mode != info->name) {
      // A new mode: its keep_ratio if it has one, else its first parameter, over its range.
      sweep_param = 0;
      for (size_t i = 0; i < info->params.size(); ++i)
        if (info->params[i].name == "keep_ratio") sweep_param = static_cast<int>(i);
      const auto& spec = info->params[sweep_param];
      sweep_from = spec.name == "keep_ratio" ? 0.1f : static_cast<float>(spec.min);
      sweep_to = spec.name == "keep_ratio" ? 0.5f : static_cast<float>(spec.max);
      sweep_param_mode = info->name;
    }
    sweep_param = std::clamp(sweep_param, 0, static_cast<int>(info->params.size()) - 1);
    flow(140);
    ImGui::SetNextItemWidth(std::max(80.f, ImGui::GetContentRegionAvail().x - 60));
    if (ImGui::BeginCombo("param", info->params[sweep_param].name.c_str())) {
      for (size_t i = 0; i < info->params.size(); ++i)
        if (ImGui::Selectable(info->params[i].name.c_str(), static_cast<int>(i) == sweep_param)) {
          sweep_param = static_cast<int>(i);
          sweep_from = static_cast<float>(info->params[i].min);
          sweep_to = static_cast<float>(info->params[i].max);
        }
      ImGui::EndCombo();
    }
    const auto& spec = info->params[sweep_param];
    ImGui::SetNextItemWidth(std::max(120.f, ImGui::GetContentRegionAvail().x * 0.55f));
    ImGui::DragFloatRange2("range", &sweep_from, &sweep_to, (spec.max - spec.min) / 200.f, static_cast<float>(spec.min),
                           static_cast<float>(spec.max), spec.integer ? "%.0f" : "%.2f");
    flow(60 + text_w("points") + 8);
    ImGui::SetNextItemWidth(60);
    ImGui::SliderInt("points", &sweep_points, 2, 8);
    if (ImGui::Button("Run sweep")) {
      act.run_sweep = true;
      act.sweep_mode = info->name;
      act.sweep_param = spec.name;
      act.sweep_values = sweep_values(sweep_from, sweep_to, sweep_points, spec.integer);
      // An open lower bound (keep_ratio in (0, 1]) must not be hit exactly.
      if (!spec.min_inclusive)
        for (double& x : act.sweep_values) x = std::max(x, spec.min + 1e-3 * (spec.max - spec.min));
    }
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("Queues a dense run and one %s run per value, all from the dock's request and seed", info->name.c_str());
  }
  if (sweep.jobs.empty()) {
    hint("The sweep's points appear here as a trade-off curve: quality against the dense run (PSNR) over time per step.");
    return false;
  }
  const RunRecord* ref = s.find(sweep.reference);
  struct Point {
    double value = 0, step_ms = 0, sparsity = 0, psnr = 0, ssim = 0;
    uint64_t job = 0;
    bool done = false;
  };
  auto mean_step = [](const RunRecord* r) {
    double ms = 0;
    for (const auto& st : r->steps) ms += st.step_ms;
    return r->steps.empty() ? 0.0 : ms / r->steps.size();
  };
  std::vector<Point> points;
  const VideoPtr vref = ref && ref->status == RunStatus::Finished ? ref->frames() : nullptr;
  for (size_t i = 0; i < sweep.jobs.size(); ++i) {
    Point p;
    p.value = i < sweep.values.size() ? sweep.values[i] : 0;
    p.job = sweep.jobs[i];
    const RunRecord* r = s.find(p.job);
    if (r && r->status == RunStatus::Finished && vref && r->frames()) {
      const VideoPtr vr = r->frames();
      if (vr->width == vref->width && vr->height == vref->height && vr->frames == vref->frames) {
        double ps = 0, ss = 0;
        const auto pf = per_frame_psnr(*vref, *vr);
        const auto sf = per_frame_ssim(*vref, *vr);
        for (double x : pf) ps += std::min(x, 99.0);
        for (double x : sf) ss += x;
        p.psnr = ps / std::max<size_t>(1, pf.size());
        p.ssim = ss / std::max<size_t>(1, sf.size());
        p.step_ms = mean_step(r);
        p.sparsity = r->mean_sparsity;
        p.done = true;
      }
    }
    points.push_back(p);
  }
  const size_t done = static_cast<size_t>(std::count_if(points.begin(), points.end(), [](const Point& p) { return p.done; }));
  const double ref_ms = ref ? mean_step(ref) : 0;
  ImGui::TextWrapped("%s over %s: %zu of %zu points, dense reference %s", sweep.param.c_str(), sweep.mode.c_str(), done,
              points.size(), vref ? "done" : "running");
  // Plot: x = time per step, y = PSNR against dense; one dot per point, joined in value order.
  const float plot_h = std::max(60.f, ImGui::GetContentRegionAvail().y - (points.size() + 1.5f) * ImGui::GetTextLineHeightWithSpacing() - 8);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const float w = std::max(60.f, ImGui::GetContentRegionAvail().x);
  const ImVec2 p1(p0.x + w, p0.y + plot_h);
  dl->AddRectFilled(p0, p1, IM_COL32(22, 22, 28, 255));
  dl->AddRect(p0, p1, IM_COL32(70, 70, 80, 255));
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
    const ImU32 line_c = IM_COL32(120, 220, 140, 255), text_c = IM_COL32(200, 200, 210, 255), axis_c = IM_COL32(150, 150, 160, 255);
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
                          sweep.param.c_str(), p.value, p.psnr, p.ssim, p.step_ms, ref_ms, 100 * p.sparsity);
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
  if (ImGui::BeginTable("sweep", 5, ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_BordersInnerH)) {
    ImGui::TableSetupColumn(sweep.param.c_str());
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
  }
  if (clicked >= 0) {
    compare_a = sweep.reference;
    compare_b = points[static_cast<size_t>(clicked)].job;
    show_ab_tab = true;
  }
  return done > 0;
}

bool Views::Impl::compare_ab(const StudioState& s, ViewSettings& v, PanelActions& act) {
  // Controls flow onto the next line when the panel is narrow (1280x800: a third of the width).
  auto mode_combo = [&](const char* label, std::string& value) {
    ImGui::SetNextItemWidth(110);
    if (ImGui::BeginCombo(label, value.c_str())) {
      for (const auto& m : modes)
        if (ImGui::Selectable(m.c_str(), m == value)) value = m;
      ImGui::EndCombo();
    }
  };
  mode_combo("A", v.compare_mode_a);
  flow(130);
  mode_combo("B", v.compare_mode_b);
  const char* run_label = "Run A vs B";
  flow(text_w(run_label) + 2 * ImGui::GetStyle().FramePadding.x);
  if (ImGui::Button(run_label)) act.run_compare = true;
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("Generates the dock's request twice with one seed, under modes A and B.\n"
                      "The side whose mode is the dock's uses the dock's sliders; the other its defaults.");

  const RunRecord *a = s.find(compare_a), *b = s.find(compare_b);
  const bool waiting = compare_a && compare_b && ((!a && s.queued() > 0) || (!b && s.queued() > 0));
  if (waiting) {
    hint(("Comparing jobs " + std::to_string(compare_a) + " and " + std::to_string(compare_b) +
          ": waiting for both to finish.").c_str());
    return false;
  }
  bool pinned = a && b;
  if (!pinned) {
    // Fallback: the last two finished runs, but only a pair made from one recipe.
    a = b = nullptr;
    for (auto it = s.runs().rbegin(); it != s.runs().rend(); ++it) {
      if (it->status != RunStatus::Finished || !it->frames()) continue;
      if (!b) b = &*it;
      else if (request_differences(it->request, b->request).empty()) {
        a = &*it;
        break;
      }
    }
  }
  if (pinned && (a->status == RunStatus::Running || b->status == RunStatus::Running)) {
    hint(("Comparing jobs " + std::to_string(a->job_id) + " and " + std::to_string(b->job_id) +
          ": waiting for both to finish.").c_str());
    return false;
  }
  const VideoPtr va = a ? a->frames() : nullptr, vb = b ? b->frames() : nullptr;
  if (!va || !vb) {
    hint("Needs two finished runs of one recipe (same prompt, seed, model, frames, size, steps): press "
         "'Run A vs B', or right-click a job in the Jobs list.");
    return false;
  }
  const auto diffs = request_differences(a->request, b->request);
  if (!diffs.empty() || va->width != vb->width || va->height != vb->height || va->frames != vb->frames) {
    std::string why = "Jobs " + std::to_string(a->job_id) + " and " + std::to_string(b->job_id) +
                      " are not one recipe under two modes, so PSNR would mean nothing:";
    for (const auto& d : diffs) why += "\n  " + d;
    if (diffs.empty()) why += "\n  their frames differ (" + std::to_string(va->frames) + " vs " + std::to_string(vb->frames) + ")";
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1, 0.55f, 0.45f, 1));
    ImGui::TextWrapped("%s", why.c_str());
    ImGui::PopStyleColor();
    return false;
  }
  const int frames = std::min(va->frames, vb->frames);
  if (va.get() != cmp_a_src || vb.get() != cmp_b_src) {
    const auto p = per_frame_psnr(*va, *vb);
    cmp_psnr.assign(p.begin(), p.end());
    for (float& x : cmp_psnr) x = std::min(x, 99.f);  // identical frames: infinite PSNR, drawn as 99 dB
    const auto q = per_frame_ssim(*va, *vb);
    cmp_ssim.assign(q.begin(), q.end());
    cmp_a_src = va.get();
    cmp_b_src = vb.get();
    cmp_frame_drawn = -1;
  }
  cmp_frame = std::clamp(cmp_frame, 0, frames - 1);
  double mean = 0, mean_ssim = 0;
  for (float x : cmp_psnr) mean += x;
  for (float x : cmp_ssim) mean_ssim += x;
  mean /= std::max<size_t>(1, cmp_psnr.size());
  mean_ssim /= std::max<size_t>(1, cmp_ssim.size());

  // Quality / speed side by side: each side's mode and parameters as the run used them.
  auto side_text = [](const RunRecord* r) {
    const std::string mode = r->steps.empty() ? r->request.attention.mode : r->steps.back().mode;
    const auto& params = r->steps.empty() ? r->request.attention.params : r->steps.back().mode_params;
    std::string t = mode;
    for (const auto& [k, val] : params) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s %s=%.3g", t == mode ? ":" : ",", k.c_str(), val);
      t += buf;
    }
    return t;
  };
  auto mean_step = [](const RunRecord* r) {
    double ms = 0;
    for (const auto& st : r->steps) ms += st.step_ms;
    return r->steps.empty() ? 0.0 : ms / r->steps.size();
  };
  const double sa = mean_step(a), sb = mean_step(b);
  if (ImGui::BeginTable("cmp", 4, ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_BordersInnerH)) {
    ImGui::TableSetupColumn("");
    ImGui::TableSetupColumn("mode and parameters");
    ImGui::TableSetupColumn("step");
    ImGui::TableSetupColumn("sparsity");
    ImGui::TableHeadersRow();
    for (const auto* r : {a, b}) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::Text("%s #%llu", r == a ? "A" : "B", static_cast<unsigned long long>(r->job_id));
      ImGui::TableNextColumn();
      ImGui::TextWrapped("%s", side_text(r).c_str());
      ImGui::TableNextColumn();
      ImGui::Text("%.0f ms", mean_step(r));
      ImGui::TableNextColumn();
      ImGui::Text("%.0f%%", 100.0 * r->mean_sparsity);
    }
    ImGui::EndTable();
  }
  ImGui::TextWrapped("PSNR %.2f dB (frame %d: %.2f)  SSIM %.3f  speed-up B/A x%.2f", mean, cmp_frame,
                     cmp_psnr.empty() ? 0.0 : cmp_psnr[cmp_frame], mean_ssim, sb > 0 ? sa / sb : 0.0);
  ImGui::SetNextItemWidth(std::max(60.f, ImGui::GetContentRegionAvail().x));
  ImGui::SliderInt("##cmpframe", &cmp_frame, 0, frames - 1, "frame %d");
  if (cmp_frame != cmp_frame_drawn) {
    gl::upload_texture(cmp_a_tex, va->width, va->height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, va->frame(cmp_frame), GL_LINEAR);
    gl::upload_texture(cmp_b_tex, vb->width, vb->height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, vb->frame(cmp_frame), GL_LINEAR);
    const auto diff = difference_image(*va, *vb, cmp_frame, 4.f);
    gl::upload_texture(cmp_diff_tex, va->width, va->height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, diff.data(), GL_NEAREST);
    cmp_frame_drawn = cmp_frame;
  }
  const float plot_h = 54;
  ImVec2 avail = ImGui::GetContentRegionAvail();
  avail.y -= plot_h + ImGui::GetTextLineHeightWithSpacing() + 4;
  const ImVec2 tile = fit({(avail.x - 16) / 3, avail.y}, static_cast<float>(va->width), static_cast<float>(va->height));
  const char* labels[3] = {"A", "B", "|A - B| x4"};
  const gl::Texture* texs[3] = {&cmp_a_tex, &cmp_b_tex, &cmp_diff_tex};
  for (int i = 0; i < 3; ++i) {
    if (i) ImGui::SameLine();
    ImGui::BeginGroup();
    ImGui::TextUnformatted(labels[i]);
    ImGui::Image(tex_id(*texs[i]), tile);
    ImGui::EndGroup();
  }
  float pmin = 99, pmax = 0;
  for (float x : cmp_psnr) pmin = std::min(pmin, x), pmax = std::max(pmax, x);
  step_plot("PSNR per frame", {{&cmp_psnr, IM_COL32(120, 220, 140, 255), 2.f, "A vs B"}}, frames,
            std::floor(pmin - 1), std::ceil(pmax + 1), {}, plot_h, "%.0f dB", 1.f, "frame");
  return true;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Views
Views::Views() : impl_(std::make_unique<Impl>()) {}
Views::~Views() = default;

const std::vector<std::string>& Views::panel_names() {
  static const std::vector<std::string> names = {"Preview",     "Attention heatmap", "Hilbert ordering",
                                                 "Block mask",  "Sparsity & speed",  "Compare"};
  return names;
}

void Views::set_modes(std::vector<std::string> modes) { impl_->modes = std::move(modes); }
void Views::set_compare_jobs(uint64_t job_a, uint64_t job_b) {
  impl_->compare_a = job_a;
  impl_->compare_b = job_b;
  impl_->show_ab_tab = true;
}
const std::vector<PanelRect>& Views::last_rects() const { return impl_->rects; }
bool Views::animating() const { return impl_->playback.playing(); }
void Views::set_sweep_jobs(uint64_t reference, std::vector<uint64_t> jobs, std::string mode, std::string param,
                           std::vector<double> values) {
  impl_->sweep = {reference, std::move(jobs), std::move(mode), std::move(param), std::move(values)};
  impl_->show_sweep_tab = true;
  impl_->sweep_sync = true;
}

PanelActions Views::draw(const StudioState& state, ViewSettings& view, double dt_seconds, unsigned target_fbo, float width,
                         float height) {
  Impl& m = *impl_;
  m.target_fbo = target_fbo;
  if (view.colormap != m.colormap.name()) {
    try {
      m.colormap = Colormap::builtin(view.colormap);
    } catch (const Error&) {
      view.colormap = m.colormap.name();
    }
  }
  PanelActions act;
  m.rects.clear();
  std::vector<std::string> visible;
  for (const auto& n : panel_names()) {
    const auto it = view.panels.find(n);
    if (it == view.panels.end() || it->second) visible.push_back(n);
  }
  if (visible.empty()) return act;
  // Tiling: 3 columns × 2 rows for six panels, fewer columns when fewer are visible.
  const int cols = visible.size() <= 2 ? static_cast<int>(visible.size()) : visible.size() <= 4 ? 2 : 3;
  const int rows = static_cast<int>((visible.size() + cols - 1) / cols);
  const float pw = width / cols, ph = height / rows;
  const ImGuiWindowFlags flags = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                                 ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoScrollbar |
                                 ImGuiWindowFlags_NoScrollWithMouse;
  for (size_t i = 0; i < visible.size(); ++i) {
    const int c = static_cast<int>(i) % cols, r = static_cast<int>(i) / cols;
    ImGui::SetNextWindowPos({c * pw, r * ph});
    ImGui::SetNextWindowSize({pw, ph});
    const std::string& name = visible[i];
    bool has = false;
    if (ImGui::Begin(name.c_str(), nullptr, flags)) {
      try {
        if (name == "Preview") has = m.preview(state, view, dt_seconds, act);
        else if (name == "Attention heatmap") has = m.heatmap(state, view);
        else if (name == "Hilbert ordering") has = m.ordering_view(state, view);
        else if (name == "Block mask") has = m.mask(state, view);
        else if (name == "Sparsity & speed") has = m.sparsity(state, view);
        else if (name == "Compare") has = m.compare(state, view, act);
      } catch (const std::exception& e) {
        // A view never takes the window down: it shows what went wrong in its own panel.
        ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s", e.what());
        has = false;
      }
    }
    const ImVec2 wp = ImGui::GetWindowPos();
    const ImVec2 cmin = ImGui::GetWindowContentRegionMin(), cmax = ImGui::GetWindowContentRegionMax();
    m.rects.push_back({name, wp.x + cmin.x, wp.y + cmin.y, cmax.x - cmin.x, cmax.y - cmin.y, has});
    ImGui::End();
  }
  return act;
}

}  // namespace longshot::ui

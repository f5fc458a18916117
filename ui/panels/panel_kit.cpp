// [SECTION] index
//   ColormapPass   scalar texture → colormap → RGBA texture, offscreen (the shader does the map)
//   keys           the job / step a run's payloads came from
//   kit            fitting, a small line plot with an overlay series and step markers, toolbars
#include "ui/panels/panel_kit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/common/error.h"
#include "ui/panels/panel.h"
#include "ui/resources.h"

namespace longshot::ui {

// ---------------------------------------------------------------------------------------------
// [SECTION] ColormapPass
ColormapPass::ColormapPass()
    : program_(gl::link_program("fullscreen.vert.glsl", embedded_resource("fullscreen.vert.glsl"),
                                "colormap.frag.glsl", embedded_resource("colormap.frag.glsl"))) {
  GLuint vao = 0;
  glGenVertexArrays(1, &vao);
  vao_ = gl::VertexArray(vao);
  GLuint fbo = 0;
  glGenFramebuffers(1, &fbo);
  fbo_ = gl::Framebuffer(fbo);
}

void ColormapPass::set_colormap(const Colormap& map) {
  if (map.name() == lut_name_) return;
  gl::upload_texture(lut_, Colormap::kSize, 1, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, map.table().data(), GL_LINEAR);
  lut_name_ = map.name();
}

void ColormapPass::render(const std::vector<float>& values, int width, int height, float vmax, HeatScale scale,
                          gl::Texture& out, GLuint target_fbo) {
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

// ---------------------------------------------------------------------------------------------
// [SECTION] keys
PayloadKey frames_key(const RunRecord* r) {
  if (!r) return {};
  if (r->video) return {r->job_id, PayloadKey::kFinalFrames};
  return r->preview ? PayloadKey{r->job_id, r->preview_step} : PayloadKey{};
}
PayloadKey heatmap_key(const RunRecord* r) { return r && r->heatmap ? PayloadKey{r->job_id, r->heatmap_step} : PayloadKey{}; }
PayloadKey mask_key(const RunRecord* r) { return r && r->mask ? PayloadKey{r->job_id, r->mask_step} : PayloadKey{}; }

// ---------------------------------------------------------------------------------------------
// [SECTION] kit
namespace kit {

ImTextureID tex_id(const gl::Texture& t) { return reinterpret_cast<ImTextureID>(static_cast<intptr_t>(t.get())); }

ImVec2 fit(ImVec2 avail, float w, float h) {
  if (w <= 0 || h <= 0 || avail.x <= 1 || avail.y <= 1) return {std::max(avail.x, 1.f), std::max(avail.y, 1.f)};
  const float s = std::min(avail.x / w, avail.y / h);
  return {w * s, h * s};
}

PlotFrame plot_frame(float height, float min_width) {
  PlotFrame f;
  f.dl = ImGui::GetWindowDrawList();
  f.p0 = ImGui::GetCursorScreenPos();
  f.w = std::max(min_width, ImGui::GetContentRegionAvail().x);
  f.p1 = ImVec2(f.p0.x + f.w, f.p0.y + height);
  f.dl->AddRectFilled(f.p0, f.p1, IM_COL32(22, 22, 28, 255));
  f.dl->AddRect(f.p0, f.p1, IM_COL32(70, 70, 80, 255));
  return f;
}

void step_plot(const char* title, const std::vector<Series>& series, int x_count, float y_min, float y_max,
               const std::vector<ModeSwitch>& markers, float height, const char* fmt, float scale, const char* x_label) {
  const PlotFrame frame = plot_frame(height, 40.f);
  ImDrawList* dl = frame.dl;
  const ImVec2 p0 = frame.p0, p1 = frame.p1;
  const float w = frame.w;
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

void flow(float need) {
  ImGui::SameLine();
  if (ImGui::GetContentRegionAvail().x < need) ImGui::NewLine();
}
float text_w(const char* s) { return ImGui::CalcTextSize(s).x; }
float toggle_w(const char* s) { return ImGui::GetFrameHeight() + ImGui::GetStyle().ItemInnerSpacing.x + text_w(s); }

void hint(const char* text) {
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
  ImGui::TextWrapped("%s", text);
  ImGui::PopStyleColor();
}

std::string waiting_text(const StudioState& s, const char* what) {
  const RunRecord* r = s.current();
  if (r && r->status == RunStatus::Running)
    return r->steps.empty() ? "Step 1 of " + std::to_string(r->num_steps) + " is running (job " + std::to_string(r->job_id) +
                                  "): the " + what + " appears when it ends."
                            : std::string("This run publishes no ") + what + " (previews off, or a dense layer).";
  if (s.queued() > 0) return "A job is queued: it starts once the model is loaded.";
  return std::string("No ") + what + " yet: press Generate.";
}

void resolve_colormap(Colormap& current, std::string& wanted) {
  if (wanted == current.name()) return;
  try {
    current = Colormap::builtin(wanted);
  } catch (const Error&) {
    wanted = current.name();
  }
}

double mean_step_ms(const RunRecord* r) {
  double ms = 0;
  for (const auto& st : r->steps) ms += st.step_ms;
  return r->steps.empty() ? 0.0 : ms / r->steps.size();
}

void mode_combo(const char* label, std::string& value, const std::vector<std::string>& modes, float width) {
  ImGui::SetNextItemWidth(width);
  if (ImGui::BeginCombo(label, value.c_str())) {
    for (const auto& m : modes)
      if (ImGui::Selectable(m.c_str(), m == value)) value = m;
    ImGui::EndCombo();
  }
}

}  // namespace kit
}  // namespace longshot::ui

// What the panels share: the offscreen colormap pass (a scalar texture through the colormap
// shader into an RGBA texture), a small step plot, toolbar flow, hints and "waiting" texts.
// Needs a current GL 3.3 context and an ImGui frame; knows nothing of Qt or the engine.
#pragma once
#include <string>
#include <vector>

#include <imgui.h>

#include "ui/colormap.h"
#include "ui/gl.h"
#include "ui/heatmap.h"
#include "ui/mask_view.h"
#include "ui/studio_state.h"

namespace longshot::ui {

class ColormapPass {
 public:
  ColormapPass();  // compiles the shaders: the GL context must be current
  void set_colormap(const Colormap& map);
  const gl::Texture& lut() const { return lut_; }
  // values: width × height floats, top row first; negative = background. Rebinds target_fbo after.
  void render(const std::vector<float>& values, int width, int height, float vmax, HeatScale scale, gl::Texture& out,
              GLuint target_fbo);

 private:
  gl::Program program_;
  gl::VertexArray vao_;
  gl::Framebuffer fbo_;
  gl::Texture data_, lut_;
  std::string lut_name_;
};

namespace kit {

ImTextureID tex_id(const gl::Texture& t);
inline ImU32 rgb(const Rgb8& c, uint8_t a = 255) { return IM_COL32(c.r, c.g, c.b, a); }
inline ImU32 rgba(const Rgba8& c) { return IM_COL32(c.r, c.g, c.b, c.a); }
// The largest size of aspect w:h inside `avail`.
ImVec2 fit(ImVec2 avail, float w, float h);

// The frame every plot draws first, at the cursor: `height` tall, the available width (at least
// `min_width`), the dark background and its border. The plot draws into `dl` between p0 and p1.
struct PlotFrame {
  ImDrawList* dl;
  ImVec2 p0, p1;
  float w;
};
PlotFrame plot_frame(float height, float min_width);

struct Series {
  const std::vector<float>* values;
  ImU32 color;
  float thickness;
  const char* label;
};
// A line plot over steps 0..x_count-1: series (the first drawn on top), vertical markers at mode
// switches, y range [y_min, y_max]. `fmt` prints one y value with its unit ("%.0f ms", "%.0f%%"
// of value*scale).
void step_plot(const char* title, const std::vector<Series>& series, int x_count, float y_min, float y_max,
               const std::vector<ModeSwitch>& markers, float height, const char* fmt = "%.3g", float scale = 1.f,
               const char* x_label = "step");

// The next item on this line if `need` pixels are left, else on the next line: toolbars wrap in
// narrow panels (1280x800) instead of running off the edge.
void flow(float need);
float text_w(const char* s);
// A checkbox / radio button: box + spacing + label.
float toggle_w(const char* s);
// Grey text that wraps at the panel's edge instead of running off it.
void hint(const char* text);
// What an empty panel says: the truth about the newest job, not "press Generate" while it runs.
std::string waiting_text(const StudioState& s, const char* what);
// `current` becomes the builtin map named `wanted`; an unknown name reverts `wanted` instead.
void resolve_colormap(Colormap& current, std::string& wanted);
// Mean step time of a run in ms (0 before its first step).
double mean_step_ms(const RunRecord* r);
// A combo over `modes` editing `value`.
void mode_combo(const char* label, std::string& value, const std::vector<std::string>& modes, float width = 110);

}  // namespace kit
}  // namespace longshot::ui

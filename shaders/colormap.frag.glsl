#version 330 core
// Scalar data (R32F, one texel per token or per layer×step cell) → color through a 256×1 colormap.
// Linear: v / vmax. Log: `decades` decades below vmax map onto [0, 1]. Negative texels are gaps
// between frame tiles and take the background color.
in vec2 v_uv;
out vec4 frag_color;
uniform sampler2D u_values;
uniform sampler2D u_colormap;
uniform float u_vmax;
uniform int u_log;
uniform float u_decades;
uniform vec4 u_background;
void main() {
  float v = texture(u_values, v_uv).r;
  if (v < 0.0) {
    frag_color = u_background;
    return;
  }
  float x = 0.0;
  if (u_vmax > 0.0 && v > 0.0) {
    x = (u_log != 0) ? 1.0 + log(v / u_vmax) / (u_decades * log(10.0)) : v / u_vmax;
  }
  x = clamp(x, 0.0, 1.0);
  frag_color = vec4(texture(u_colormap, vec2((x * 255.0 + 0.5) / 256.0, 0.5)).rgb, 1.0);
}

#version 330 core
// A quad covering the render target, from gl_VertexID alone (no vertex buffer): the heatmap and
// sparsity views render their data textures through a colormap into an offscreen texture.
out vec2 v_uv;
void main() {
  vec2 corner = vec2(float((gl_VertexID & 1) != 0), float((gl_VertexID & 2) != 0));
  v_uv = vec2(corner.x, 1.0 - corner.y);  // texture row 0 is the top row of the data
  gl_Position = vec4(corner * 2.0 - 1.0, 0.0, 1.0);
}

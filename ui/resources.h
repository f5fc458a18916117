// Resources compiled into the studio (GLSL from shaders/, colormaps from assets/colormaps/), so the
// installed binary draws without a data path. Pure: no Qt, no GL.
#pragma once
#include <string>
#include <vector>

namespace longshot::ui {

// Contents of an embedded file by its name ("heatmap.frag.glsl"); throws IoError naming it when absent.
const std::string& embedded_resource(const std::string& name);
// Names of every embedded file, sorted.
std::vector<std::string> embedded_resource_names();

}  // namespace longshot::ui

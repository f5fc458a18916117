#include "ui/colormap.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "engine/common/error.h"
#include "ui/resources.h"

namespace longshot::ui {

Colormap Colormap::parse(const std::string& name, const std::string& text) {
  struct Stop { float pos, r, g, b; };
  std::vector<Stop> stops;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream fields(line);
    Stop s{};
    if (!(fields >> s.pos >> s.r >> s.g >> s.b))
      throw ParameterError("colormap", name + " line " + std::to_string(line_no) + ": expected 'position r g b'");
    for (float v : {s.pos, s.r, s.g, s.b})
      if (!(v >= 0.f && v <= 1.f))
        throw ParameterError("colormap", name + " line " + std::to_string(line_no) + ": values must lie in [0, 1]");
    if (!stops.empty() && s.pos <= stops.back().pos)
      throw ParameterError("colormap", name + " line " + std::to_string(line_no) + ": positions must ascend");
    stops.push_back(s);
  }
  if (stops.size() < 2 || stops.front().pos != 0.f || stops.back().pos != 1.f)
    throw ParameterError("colormap", name + ": needs at least two stops, the first at 0 and the last at 1");

  Colormap map;
  map.name_ = name;
  map.table_.resize(kSize * 3);
  size_t seg = 0;
  for (int i = 0; i < kSize; ++i) {
    const float x = static_cast<float>(i) / (kSize - 1);
    while (seg + 2 < stops.size() && x > stops[seg + 1].pos) ++seg;
    const Stop& a = stops[seg];
    const Stop& b = stops[seg + 1];
    const float u = std::clamp((x - a.pos) / (b.pos - a.pos), 0.f, 1.f);
    const float rgb[3] = {a.r + u * (b.r - a.r), a.g + u * (b.g - a.g), a.b + u * (b.b - a.b)};
    for (int c = 0; c < 3; ++c) map.table_[i * 3 + c] = static_cast<uint8_t>(std::lround(rgb[c] * 255.f));
  }
  return map;
}

std::vector<std::string> Colormap::names() {
  std::vector<std::string> out;
  for (const auto& file : embedded_resource_names()) {
    const auto dot = file.rfind(".txt");
    if (dot != std::string::npos && dot + 4 == file.size()) out.push_back(file.substr(0, dot));
  }
  return out;
}

Colormap Colormap::builtin(const std::string& name) {
  const auto all = names();
  if (std::find(all.begin(), all.end(), name) == all.end()) {
    std::string known;
    for (const auto& n : all) known += (known.empty() ? "" : ", ") + n;
    throw ParameterError("colormap", "unknown colormap '" + name + "' (known: " + known + ")");
  }
  return parse(name, embedded_resource(name + ".txt"));
}

Colormap Colormap::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw IoError("cannot read colormap file '" + path + "'");
  std::stringstream text;
  text << f.rdbuf();
  auto stem = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".txt") == 0) stem.resize(stem.size() - 4);
  return parse(stem, text.str());
}

Rgb8 Colormap::at(float x) const {
  if (!(x >= 0.f)) x = 0.f;  // NaN too
  const int i = std::min(kSize - 1, static_cast<int>(std::lround(std::min(x, 1.f) * (kSize - 1))));
  return {table_[i * 3], table_[i * 3 + 1], table_[i * 3 + 2]};
}

}  // namespace longshot::ui

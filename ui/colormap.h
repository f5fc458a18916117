// Colormaps for scalar views (attention heatmaps, sparsity strips): a 256-entry RGB table built
// from control points (assets/colormaps/*.txt, compiled in). Pure: no Qt, no GL.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace longshot::ui {

struct Rgb8 {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb8& o) const { return r == o.r && g == o.g && b == o.b; }
};

class Colormap {
 public:
  static constexpr int kSize = 256;
  // Parses "position r g b" lines ('#' comments); positions ascending from 0 to 1.
  // Throws ParameterError("colormap", ...) on malformed text.
  static Colormap parse(const std::string& name, const std::string& text);
  // A compiled-in map by name (see names()); throws ParameterError("colormap", ...) listing them.
  static Colormap builtin(const std::string& name);
  static std::vector<std::string> names();
  // Reads a control-point file; throws IoError naming the file.
  static Colormap load(const std::string& path);

  const std::string& name() const { return name_; }
  // x is clamped to [0, 1].
  Rgb8 at(float x) const;
  // kSize * 3 bytes, for a 256×1 RGB texture.
  const std::vector<uint8_t>& table() const { return table_; }

 private:
  std::string name_;
  std::vector<uint8_t> table_;
};

}  // namespace longshot::ui

// Decoded video frames as the engine hands them to export and to the studio: 8-bit RGB,
// frame-major, tightly packed. Immutable once published (shared as shared_ptr<const Video>).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace longshot {

struct Video {
  int frames = 0;
  int height = 0;
  int width = 0;
  double fps = 16.0;
  std::vector<uint8_t> rgb;  // frames * height * width * 3

  size_t frame_bytes() const { return static_cast<size_t>(height) * width * 3; }
  const uint8_t* frame(int i) const { return rgb.data() + frame_bytes() * i; }
  uint8_t* frame(int i) { return rgb.data() + frame_bytes() * i; }
};

using VideoPtr = std::shared_ptr<const Video>;

}  // namespace longshot

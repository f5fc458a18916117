// PNG frame dumps through libpng (8-bit RGB). IO room: frames in, files out; knows no model and
// no window.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/video.h"

namespace longshot::io {

// False in a build made without libpng (LONGSHOT_WITH_PNG off, e.g. the GPU machine's): the
// writers below then refuse with an IoError that says so.
bool png_supported();
// One RGB image (temporary file + rename); throws IoError naming the path.
void write_png(const std::string& path, int width, int height, const uint8_t* rgb);
// Every frame as DIR/frame_00000.png ...; creates DIR when missing. Returns the paths written.
std::vector<std::string> write_png_frames(const Video& video, const std::string& dir);

}  // namespace longshot::io

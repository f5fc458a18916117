// PNG frame dumps, written by our own encoder (8-bit RGB, stored deflate blocks: no zlib
// dependency, larger files). IO room: frames in, files out.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/video.h"

namespace longshot::io {

// One RGB image (temporary file + rename); throws IoError naming the path.
void write_png(const std::string& path, int width, int height, const uint8_t* rgb);
// Every frame as DIR/frame_00000.png ...; creates DIR when missing. Returns the paths written.
std::vector<std::string> write_png_frames(const Video& video, const std::string& dir);

// CRC-32 (PNG chunks) and Adler-32 (zlib stream), exposed for tests.
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);
uint32_t adler32(const uint8_t* data, size_t size, uint32_t adler = 1);

}  // namespace longshot::io

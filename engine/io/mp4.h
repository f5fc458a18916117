// MP4 export and probing through FFmpeg's libavformat/libavcodec (only when LONGSHOT_WITH_FFMPEG;
// the implementations live in mp4_*.cpp, which CMake drops without FFmpeg). IO room: frames in,
// files out; no model, no pipeline.
#pragma once
#include <map>
#include <string>

#include "engine/io/video.h"

namespace longshot::io {

struct Mp4Options {
  double fps = 0;           // 0: the video's own fps
  int crf = 18;             // H.264 constant rate factor (quality; lower is better)
  std::string encoder;      // libav encoder name; "" = H.264, else MPEG-4 Part 2 with a warning
  // Container tags (e.g. longshot_recipe = a JSON recipe). Written as QuickTime "mdta" keys
  // (movflags use_metadata_tags) so any key survives and ffprobe shows it under format.tags.
  std::map<std::string, std::string> metadata;
};

// Encodes yuv420p frames into `path` (written to a temporary file, renamed on success). Returns the
// encoder used ("libx264", "mpeg4", ...). Throws ShapeError for an empty video or odd width/height
// (yuv420p), IoError naming the path when it cannot be written or no encoder exists.
std::string write_mp4(const Video& video, const std::string& path, const Mp4Options& options = {});

struct Mp4Info {
  int frames = 0;
  int width = 0;
  int height = 0;
  double fps = 0;
  std::string codec;
  std::map<std::string, std::string> metadata;  // the container's tags
};

// Reads only the container's tags (no decoding); IoError naming the file when it cannot be opened.
std::map<std::string, std::string> read_mp4_metadata(const std::string& path);

// Decodes every frame of the first video stream (counting them); fills `frames` with RGB when
// given. Throws IoError naming the file when it cannot be opened or decoded.
Mp4Info read_mp4(const std::string& path, Video* frames = nullptr);

}  // namespace longshot::io

#include "engine/io/png.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include <spdlog/spdlog.h>

#include "engine/common/error.h"
#include "engine/io/atomic_file.h"

#ifdef LONGSHOT_WITH_PNG
#include <png.h>
#endif

namespace longshot::io {

#ifdef LONGSHOT_WITH_PNG
namespace {

constexpr size_t kMessageSize = 256;

// libpng reports a failure through its error callback and then longjmps back to setjmp; the
// message is copied out first (the callback must not return, and no C++ exception may cross
// libpng's C frames).
[[noreturn]] void on_png_error(png_structp png, png_const_charp message) {
  auto* out = static_cast<char*>(png_get_error_ptr(png));
  std::snprintf(out, kMessageSize, "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp message) { spdlog::warn("libpng: {}", message); }

// libpng's default writer reports a failed fwrite as "Write Error"; ours says why (errno: "No space
// left on device", "File too large").
void write_to_file(png_structp png, png_bytep data, size_t length) {
  auto* file = static_cast<std::FILE*>(png_get_io_ptr(png));
  if (std::fwrite(data, 1, length, file) != length) png_error(png, errno ? std::strerror(errno) : "write failed");
}

void flush_file(png_structp png) { std::fflush(static_cast<std::FILE*>(png_get_io_ptr(png))); }

// The encode proper, free of C++ objects with destructors between setjmp and a longjmp (those
// would be skipped). Returns false with `message` filled when libpng fails.
bool encode(std::FILE* file, int width, int height, const uint8_t* rgb, char* message) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, message, on_png_error, on_png_warning);
  if (!png) {
    std::snprintf(message, kMessageSize, "libpng could not start (out of memory)");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(message, kMessageSize, "libpng could not start (out of memory)");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, file, write_to_file, flush_file);
  // Frame dumps favour speed: zlib's fastest level is still far smaller than raw scanlines.
  png_set_compression_level(png, 1);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t row_bytes = static_cast<size_t>(width) * 3;
  for (int y = 0; y < height; ++y) png_write_row(png, rgb + static_cast<size_t>(y) * row_bytes);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace
#endif

bool png_supported() {
#ifdef LONGSHOT_WITH_PNG
  return true;
#else
  return false;
#endif
}

void write_png(const std::string& path, int width, int height, const uint8_t* rgb) {
  if (width < 1 || height < 1 || !rgb) throw ShapeError("png: empty image for '" + path + "'");
#ifdef LONGSHOT_WITH_PNG
  TempFile tmp(path);
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(tmp.path().c_str(), "wb"));
  if (!file) throw IoError("cannot write '" + path + "': " + std::strerror(errno));
  char message[kMessageSize] = {0};
  if (!encode(file.get(), width, height, rgb, message)) throw IoError("cannot write '" + path + "': " + message);
  if (std::fclose(file.release()) != 0) throw IoError("cannot write '" + path + "': " + std::strerror(errno));
  tmp.commit();
#else
  throw IoError("cannot write '" + path + "': this build has no libpng (install libpng-dev and reconfigure)");
#endif
}

std::vector<std::string> write_png_frames(const Video& video, const std::string& dir) {
  if (!png_supported())
    throw IoError("cannot write PNG frames to '" + dir + "': this build has no libpng (install libpng-dev and reconfigure)");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!std::filesystem::is_directory(dir)) throw IoError("cannot create folder '" + dir + "' for PNG frames");
  std::vector<std::string> paths;
  for (int i = 0; i < video.frames; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "frame_%05d.png", i);
    paths.push_back((std::filesystem::path(dir) / name).string());
    write_png(paths.back(), video.width, video.height, video.frame(i));
  }
  return paths;
}

}  // namespace longshot::io

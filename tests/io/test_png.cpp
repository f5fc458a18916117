// PNG writer (libpng): file structure, the pixels read back through libpng, unwritable paths.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#if __has_include(<png.h>)
#include <png.h>
#define LONGSHOT_TEST_HAS_LIBPNG 1
#endif

#include "engine/common/error.h"
#include "engine/io/png.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const char* tag) {
  return fs::temp_directory_path() / ("longshot_png_" + std::string(tag) + "_" + std::to_string(::getpid()));
}

// Pixels no filter or compression can make trivial: a hash of (x, y, channel).
std::vector<uint8_t> noise_rgb(int width, int height) {
  std::vector<uint8_t> rgb(size_t(width) * height * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t((i * 2654435761u) >> 13);
  return rgb;
}

}  // namespace

TEST(Png, WritesFramesWithSignatureAndChunks) {
  if (!io::png_supported()) GTEST_SKIP() << "built without libpng";
  const fs::path dir = temp_dir("frames");
  Video v;
  v.frames = 3;
  v.width = 300;
  v.height = 80;
  v.rgb.resize(v.frame_bytes() * 3);
  for (size_t i = 0; i < v.rgb.size(); ++i) v.rgb[i] = uint8_t(i * 7);
  const auto paths = io::write_png_frames(v, dir.string());
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(fs::path(paths[2]).filename(), "frame_00002.png");
  std::ifstream in(paths[1], std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(std::memcmp(bytes.data(), "\x89PNG\r\n\x1a\n", 8), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 12, "IHDR", 4), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + bytes.size() - 8, "IEND", 4), 0);
  longshot::remove_tree(dir);
  EXPECT_THROW(io::write_png("/nonexistent-dir/a.png", 2, 2, v.rgb.data()), IoError);
  EXPECT_THROW(io::write_png((dir / "empty.png").string(), 0, 2, v.rgb.data()), ShapeError);
}

#ifdef LONGSHOT_TEST_HAS_LIBPNG
// An odd-sized image written by us and decoded by libpng's own reader gives back every pixel.
TEST(Png, ReadsBackThroughLibpngPixelForPixel) {
  if (!io::png_supported()) GTEST_SKIP() << "built without libpng";
  const fs::path dir = temp_dir("readback");
  fs::create_directories(dir);
  const int width = 37, height = 23;
  const auto rgb = noise_rgb(width, height);
  const std::string path = (dir / "noise.png").string();
  io::write_png(path, width, height, rgb.data());

  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&image, path.c_str())) << image.message;
  EXPECT_EQ(image.width, png_uint_32(width));
  EXPECT_EQ(image.height, png_uint_32(height));
  EXPECT_EQ(image.format, png_uint_32(PNG_FORMAT_RGB));  // stored as 8-bit RGB, no alpha
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> back(PNG_IMAGE_SIZE(image));
  ASSERT_TRUE(png_image_finish_read(&image, nullptr, back.data(), 0, nullptr)) << image.message;
  ASSERT_EQ(back.size(), rgb.size());
  size_t differing = 0;
  for (size_t i = 0; i < rgb.size(); ++i) differing += back[i] != rgb[i];
  EXPECT_EQ(differing, 0u);
  longshot::remove_tree(dir);
}
#endif

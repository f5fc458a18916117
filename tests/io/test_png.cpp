// PNG writer: checksums against their published check values, file structure, unwritable paths.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/common/error.h"
#include "engine/io/png.h"

using namespace longshot;
namespace fs = std::filesystem;

TEST(Png, Checksums) {
  const char* s = "123456789";
  EXPECT_EQ(io::crc32(reinterpret_cast<const uint8_t*>(s), 9), 0xCBF43926u);
  const char* w = "Wikipedia";
  EXPECT_EQ(io::adler32(reinterpret_cast<const uint8_t*>(w), 9), 0x11E60398u);
}

TEST(Png, WritesFramesWithSignatureAndChunks) {
  const fs::path dir = fs::temp_directory_path() / ("longshot_png_" + std::to_string(::getpid()));
  Video v;
  v.frames = 3;
  v.width = 300;  // > 65535 bytes of scanlines: several stored blocks
  v.height = 80;
  v.rgb.resize(v.frame_bytes() * 3);
  for (size_t i = 0; i < v.rgb.size(); ++i) v.rgb[i] = uint8_t(i * 7);
  const auto paths = io::write_png_frames(v, dir.string());
  ASSERT_EQ(paths.size(), 3u);
  std::ifstream in(paths[1], std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), v.frame_bytes());
  EXPECT_EQ(std::memcmp(bytes.data(), "\x89PNG\r\n\x1a\n", 8), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 12, "IHDR", 4), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + bytes.size() - 8, "IEND", 4), 0);
  fs::remove_all(dir);
  EXPECT_THROW(io::write_png("/nonexistent-dir/a.png", 2, 2, v.rgb.data()), IoError);
}

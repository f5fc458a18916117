// MP4 export through libav, decoded back with libav: frame count, size, pixels; temporary-file
// discipline; errors naming the path. Also reads a PNG we wrote through libav's PNG decoder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/common/temp_dir.h"
#include "engine/common/error.h"
#include "engine/io/mp4.h"
#include "engine/io/png.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

Video gradient(int frames, int w, int h) {
  Video v;
  v.frames = frames;
  v.width = w;
  v.height = h;
  v.fps = 12;
  v.rgb.resize(v.frame_bytes() * frames);
  for (int f = 0; f < frames; ++f)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        uint8_t* p = v.frame(f) + (size_t(y) * w + x) * 3;
        p[0] = uint8_t(x * 255 / w);
        p[1] = uint8_t(y * 255 / h);
        p[2] = uint8_t(f * 40);
      }
  return v;
}

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_mp4") {}
};

}  // namespace

TEST(Mp4, RoundTripFramesSizeAndPixels) {
  TempDir d;
  const auto v = gradient(6, 48, 32);
  const std::string path = (d.path / "clip.mp4").string();
  const std::string codec = io::write_mp4(v, path);
  EXPECT_FALSE(codec.empty());
  Video back;
  const auto info = io::read_mp4(path, &back);
  EXPECT_EQ(info.frames, 6);
  EXPECT_EQ(info.width, 48);
  EXPECT_EQ(info.height, 32);
  EXPECT_NEAR(info.fps, 12.0, 0.01);
  ASSERT_EQ(back.rgb.size(), v.rgb.size());
  double err = 0;
  for (size_t i = 0; i < v.rgb.size(); ++i) err += std::abs(int(v.rgb[i]) - int(back.rgb[i]));
  EXPECT_LT(err / v.rgb.size(), 8.0);  // lossy codec + 4:2:0 chroma
  size_t files = 0;
  for (auto& e : fs::directory_iterator(d.path)) (void)e, ++files;
  EXPECT_EQ(files, 1u);  // no temporary left behind
}

TEST(Mp4, FallbackEncoderByName) {
  TempDir d;
  const std::string path = (d.path / "mpeg4.mp4").string();
  EXPECT_EQ(io::write_mp4(gradient(3, 32, 32), path, io::Mp4Options{8.0, 18, "mpeg4"}), "mpeg4");
  EXPECT_EQ(io::read_mp4(path).frames, 3);
  EXPECT_THROW(io::write_mp4(gradient(3, 32, 32), path, io::Mp4Options{8.0, 18, "no-such-encoder"}), IoError);
}

TEST(Mp4, ErrorsNameThePath) {
  const auto v = gradient(2, 32, 32);
  try {
    io::write_mp4(v, "/nonexistent-dir/clip.mp4");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/clip.mp4"), std::string::npos);
  }
  EXPECT_THROW(io::write_mp4(gradient(2, 33, 32), "/tmp/odd.mp4"), ShapeError);
  EXPECT_THROW(io::write_mp4(Video{}, "/tmp/empty.mp4"), ShapeError);
  EXPECT_THROW(io::read_mp4("/nonexistent-dir/clip.mp4"), IoError);
}

TEST(Mp4, PngDecodesBackThroughLibav) {
  TempDir d;
  const auto v = gradient(1, 20, 10);
  const std::string path = (d.path / "f.png").string();
  io::write_png(path, v.width, v.height, v.frame(0));
  Video back;
  const auto info = io::read_mp4(path, &back);
  EXPECT_EQ(info.frames, 1);
  EXPECT_EQ(info.width, 20);
  EXPECT_EQ(info.height, 10);
  EXPECT_EQ(back.rgb, v.rgb);  // lossless
}

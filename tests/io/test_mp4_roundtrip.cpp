// MP4 export through libav, decoded back with libav: frame count, size, pixels; temporary-file
// discipline; errors naming the path; the reader refuses what is not MP4. Also reads a PNG we
// wrote through libav's PNG decoder (the ffmpeg tool).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

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

// read_mp4 reads MP4 only (below), so the PNG goes through the ffmpeg tool: same libav decoder.
TEST(Mp4, PngDecodesBackThroughLibav) {
  if (std::system("command -v ffmpeg >/dev/null 2>&1") != 0) GTEST_SKIP() << "ffmpeg not installed (packaging/setup.sh installs it)";
  TempDir d;
  const auto v = gradient(1, 20, 10);
  const std::string path = (d.path / "f.png").string();
  io::write_png(path, v.width, v.height, v.frame(0));
  FILE* pipe = ::popen(("ffmpeg -v error -i '" + path + "' -f rawvideo -pix_fmt rgb24 -").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::vector<uint8_t> back;
  uint8_t buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) back.insert(back.end(), buf, buf + n);
  EXPECT_EQ(::pclose(pipe), 0);
  EXPECT_EQ(back, v.rgb);  // lossless
}

// Found while writing fuzz_mp4 (docs/hardening.md, finding 6): the reader let libav probe every
// demuxer it has, so a text playlist named .mp4 (HLS here; ffconcat alike) made `vae-encode
// --video` decode the frames of another file the playlist named. Only the MP4 demuxer is used now.
TEST(Mp4, ReaderRefusesAPlaylistPosingAsMp4) {
  TempDir d;
  const std::string other = (d.path / "other.mp4").string(), playlist = (d.path / "playlist.mp4").string();
  io::write_mp4(gradient(3, 32, 32), other);
  ASSERT_EQ(io::read_mp4(other).frames, 3);
  std::ofstream(playlist) << "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nother.mp4\n#EXT-X-ENDLIST\n";
  for (const auto& path : {playlist, std::string(LONGSHOT_SOURCE_DIR "/tests/fixtures/hardening/mp4_hls_playlist.mp4")}) {
    try {
      io::read_mp4(path);
      FAIL() << path << " was read";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + path + "': not a readable MP4 file"), std::string::npos) << e.what();
    }
    EXPECT_THROW(io::read_mp4_metadata(path), IoError);
  }
  const std::string png = (d.path / "f.png").string();
  io::write_png(png, 20, 10, gradient(1, 20, 10).frame(0));
  EXPECT_THROW(io::read_mp4(png), IoError);
}

// Found by fuzz_mp4's long run (docs/hardening.md, finding 7): a 4 KB MP4 whose sample tables
// declare huge counts made libav grow three buffers to ~950 MB each (2.8 GB resident) before it
// failed. libav's allocations are capped at 256 MiB now: the file fails or reads quickly, small.
TEST(Mp4, ReaderCapsLibavAllocations) {
  const std::string path = LONGSHOT_SOURCE_DIR "/tests/fixtures/hardening/mp4_alloc_2gb.mp4";
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  Video frames;
  try {
    io::read_mp4(path, &frames);
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  ::getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 512L * 1024) << "peak resident set grew by " << (after.ru_maxrss - before.ru_maxrss) << " KB";
}

// MP4 container tags: what write_mp4 is given comes back from read_mp4_metadata / read_mp4
// unchanged (any key name, quotes, newlines, UTF-8, a long JSON value); without tags the file has
// none of ours.
#include <gtest/gtest.h>

#include "engine/common/error.h"
#include "engine/io/mp4.h"
#include "tests/common/temp_dir.h"

using namespace longshot;

namespace {

Video grey(int frames) {
  Video v;
  v.frames = frames;
  v.width = 16;
  v.height = 16;
  v.rgb.assign(v.frame_bytes() * frames, 128);
  return v;
}

}  // namespace

TEST(Mp4Metadata, TagsRoundTrip) {
  longshot::testing::TempDir d("longshot_mp4meta");
  io::Mp4Options o;
  std::string long_json = "{\"prompt\": \"a \\\"quoted\\\" cat\\nsecond line, café, 東京\", \"x\": [";
  for (int i = 0; i < 2000; ++i) long_json += std::to_string(i) + ",";
  long_json += "0]}";
  o.metadata = {{"longshot_recipe", long_json}, {"title", "un chat — 猫"}, {"comment", "line one\nline two"}};
  io::write_mp4(grey(3), d.file("a.mp4"), o);
  const auto tags = io::read_mp4_metadata(d.file("a.mp4"));
  EXPECT_EQ(tags.at("longshot_recipe"), long_json);
  EXPECT_EQ(tags.at("title"), "un chat — 猫");
  EXPECT_EQ(tags.at("comment"), "line one\nline two");
  const auto info = io::read_mp4(d.file("a.mp4"));
  EXPECT_EQ(info.frames, 3);
  EXPECT_EQ(info.metadata.at("longshot_recipe"), long_json);

  io::write_mp4(grey(2), d.file("b.mp4"));
  const auto plain = io::read_mp4_metadata(d.file("b.mp4"));
  EXPECT_EQ(plain.count("longshot_recipe"), 0u);
  EXPECT_EQ(plain.count("title"), 0u);

  o.metadata = {{"", "nameless"}};
  EXPECT_THROW(io::write_mp4(grey(2), d.file("c.mp4"), o), ParameterError);
  EXPECT_FALSE(std::filesystem::exists(d.file("c.mp4")));
  EXPECT_THROW(io::read_mp4_metadata(d.file("missing.mp4")), IoError);
}

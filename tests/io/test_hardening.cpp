// Hostile input and hostile destinations for the IO room (issue 27's probe, F1 F4 F7 and the span
// check): deep JSON, wrapping shapes, FIFOs and device nodes are refused with a message naming the
// file; staged outputs appear together or not at all; strict integers; the asset search path.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "engine/attention/mask_trace.h"
#include "engine/common/assets.h"
#include "engine/common/error.h"
#include "engine/common/parse.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_checks.h"
#include "engine/io/safetensors.h"
#include "engine/io/staged_outputs.h"
#include "tests/common/temp_dir.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_hardening") {}
};

// A safetensors file with the header text as given and `data` zero bytes after it.
void write_raw(const std::string& path, const std::string& header, size_t data = 0) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i)));
  out << header << std::string(data, '\0');
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// F1: a shape nested 100,000 levels deep crashed in a recursive dump() of the error message.
TEST(Hardening, DeepShapeIsRefusedWithoutRecursion) {
  TempDir d;
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  write_raw(d.file("deep.safetensors"), "{\"w\":{\"dtype\":\"F32\",\"shape\":" + deep + ",\"data_offsets\":[0,0]}}");
  const auto msg = error_of([&] { io::SafetensorsFile f(d.file("deep.safetensors")); });
  EXPECT_NE(msg.find("deep.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nests deeper than"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 400u);
}

// The probe's own file (tests/fixtures/hardening/): the same through its exact bytes.
TEST(Hardening, ProbeCrasherIsRefused) {
  const std::string path = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/hardening/deep_shape_min.safetensors";
  if (!fs::exists(path)) GTEST_SKIP() << "no " << path;
  const auto msg = error_of([&] { io::SafetensorsFile f(path); });
  EXPECT_NE(msg.find("nests deeper"), std::string::npos) << msg;
  const std::string wrap = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/hardening/accepted_wrap_min.safetensors";
  const auto msg2 = error_of([&] { io::SafetensorsFile f(wrap); });
  EXPECT_NE(msg2.find("absurd shape"), std::string::npos) << msg2;
}

// A malformed shape a few levels deep still gets a short, bounded rendering in the message.
TEST(Hardening, MalformedShapeMessageIsBounded) {
  TempDir d;
  std::string shape = "[1,[2,[3,[4,[5,[6]]]]],\"" + std::string(5000, 'x') + "\"]";
  write_raw(d.file("bad.safetensors"), "{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,0]}}");
  const auto msg = error_of([&] { io::SafetensorsFile f(d.file("bad.safetensors")); });
  EXPECT_NE(msg.find("malformed shape"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 400u) << msg;
}

// Span check: [2^62] F32 needs 2^64 bytes, which wrapped to 0 and matched a 0-byte span.
TEST(Hardening, ShapeWhoseByteSizeWrapsIsRefused) {
  TempDir d;
  write_raw(d.file("wrap.safetensors"),
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}");
  const auto msg = error_of([&] { io::SafetensorsFile f(d.file("wrap.safetensors")); });
  EXPECT_NE(msg.find("absurd shape"), std::string::npos) << msg;
  // Spread over two dims, and for F16 too.
  write_raw(d.file("wrap2.safetensors"),
            "{\"w\":{\"dtype\":\"F16\",\"shape\":[2147483648,4294967296],\"data_offsets\":[0,0]}}");
  EXPECT_NE(error_of([&] { io::SafetensorsFile f(d.file("wrap2.safetensors")); }).find("absurd shape"), std::string::npos);
}

// F4: a FIFO as a weights file blocked in open() forever.
TEST(Hardening, FifoIsRefusedWithoutBlocking) {
  TempDir d;
  ASSERT_EQ(::mkfifo(d.file("w.safetensors").c_str(), 0600), 0);
  const auto msg = error_of([&] { io::SafetensorsFile f(d.file("w.safetensors")); });
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
  const auto msg2 = error_of([&] { io::require_regular_file(d.file("w.safetensors"), "weights file"); });
  EXPECT_NE(msg2.find("FIFO"), std::string::npos) << msg2;
  EXPECT_NE(error_of([&] { io::require_regular_file(d.file("none"), "weights file"); }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(error_of([&] { io::require_regular_file(d.path.string(), "weights file"); }).find("is a folder"),
            std::string::npos);
}

// F7: rename() over a device node or FIFO replaced it with a regular file.
TEST(Hardening, TempFileRefusesNonRegularDestinations) {
  TempDir d;
  ASSERT_EQ(::mkfifo(d.file("pipe").c_str(), 0600), 0);
  const auto msg = error_of([&] { io::TempFile t(d.file("pipe")); });
  EXPECT_NE(msg.find("FIFO"), std::string::npos) << msg;
  const auto dev = error_of([&] { io::TempFile t("/dev/null"); });
  EXPECT_NE(dev.find("character device"), std::string::npos) << dev;
  struct stat st {};
  ASSERT_EQ(::stat(d.file("pipe").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(entries(d.path), std::vector<std::string>{"pipe"});
  // A regular file is still replaced.
  std::ofstream(d.file("x")) << "old";
  io::TempFile t(d.file("x"));
  std::ofstream(t.path()) << "new";
  t.commit();
  std::ifstream in(d.file("x"));
  std::string text;
  in >> text;
  EXPECT_EQ(text, "new");
}

TEST(Hardening, SameFileAndDistinctPaths) {
  TempDir d;
  std::ofstream(d.file("m.safetensors")) << "x";
  fs::create_symlink(d.file("m.safetensors"), d.file("link"));
  EXPECT_TRUE(io::same_file(d.file("m.safetensors"), d.file("link")));
  EXPECT_TRUE(io::same_file(d.file("new.mp4"), (d.path / "." / "new.mp4").string()));
  EXPECT_FALSE(io::same_file(d.file("a"), d.file("b")));
  const auto out_is_model = error_of([&] {
    io::require_distinct_paths({{"out", d.file("link")}}, {{"model", d.file("m.safetensors")}});
  });
  EXPECT_NE(out_is_model.find("--out"), std::string::npos) << out_is_model;
  EXPECT_NE(out_is_model.find("model"), std::string::npos) << out_is_model;
  const auto out_is_trace = error_of([&] {
    io::require_distinct_paths({{"out", d.file("x")}, {"trace", d.file("x")}}, {});
  });
  EXPECT_NE(out_is_trace.find("--out and --trace"), std::string::npos) << out_is_trace;
  EXPECT_EQ(error_of([&] { io::require_distinct_paths({{"out", d.file("a")}, {"trace", ""}}, {{"model", ""}}); }), "");
}

TEST(Hardening, JsonDepthAndBriefAreBounded) {
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_EQ(io::json_nesting_depth(deep.data(), deep.data() + deep.size(), 16), 17u);
  const std::string flat = R"({"a":[1,2,{"b":"[[[[[[\"]]"}]})";
  EXPECT_EQ(io::json_nesting_depth(flat.data(), flat.data() + flat.size(), 16), 3u);  // brackets in strings don't count
  const auto parsed = nlohmann::json::parse(std::string(5000, '[') + std::string(5000, ']'));
  const auto brief = io::json_brief(parsed);
  EXPECT_LE(brief.size(), 90u);
  EXPECT_NE(brief.find("[…]"), std::string::npos) << brief;
  EXPECT_EQ(io::json_brief(nlohmann::json::parse("[1,2,3]")), "[1, 2, 3]");
}

TEST(Hardening, StagedOutputsAppearTogetherOrNotAtAll) {
  TempDir d;
  {
    io::StagedOutputs s;
    std::ofstream(s.add_file(d.file("clip.mp4"))) << "mp4";
    const auto dir = s.add_folder(d.file("png"));
    std::ofstream(dir + "/frame_00000.png") << "png";
    // Abandoned (a signal, an error): nothing at the destinations, no temporary left.
  }
  EXPECT_TRUE(entries(d.path).empty());
  {
    io::StagedOutputs s;
    std::ofstream(s.add_file(d.file("clip.mp4"))) << "mp4";
    std::ofstream(s.add_file(d.file("run.lstrace"))) << "trace";
    const auto dir = s.add_folder(d.file("png"));
    std::ofstream(dir + "/frame_00000.png") << "png";
    s.commit();
  }
  EXPECT_EQ(entries(d.path), (std::vector<std::string>{"clip.mp4", "png", "run.lstrace"}));
  EXPECT_EQ(entries(d.path / "png"), std::vector<std::string>{"frame_00000.png"});
  // Into an existing folder: its other files stay, same names are replaced.
  std::ofstream(d.file("png/mine.txt")) << "keep";
  {
    io::StagedOutputs s;
    const auto dir = s.add_folder(d.file("png"));
    std::ofstream(dir + "/frame_00000.png") << "png2";
    std::ofstream(dir + "/frame_00001.png") << "png2";
    s.commit();
  }
  EXPECT_EQ(entries(d.path / "png"), (std::vector<std::string>{"frame_00000.png", "frame_00001.png", "mine.txt"}));
  EXPECT_EQ(entries(d.path), (std::vector<std::string>{"clip.mp4", "png", "run.lstrace"}));
  std::ofstream(d.file("file")) << "x";
  EXPECT_NE(error_of([&] { io::StagedOutputs s; s.add_folder(d.file("file")); }).find("not a folder"), std::string::npos);
}

TEST(Hardening, StrictIntegers) {
  int64_t v = 7;
  uint64_t u = 7;
  EXPECT_TRUE(parse_int64("-9223372036854775808", v));
  EXPECT_EQ(v, INT64_MIN);
  EXPECT_TRUE(parse_int64("9223372036854775807", v));
  EXPECT_EQ(v, INT64_MAX);
  v = 7;
  for (const char* bad : {"9223372036854775808", "", "-", "1e3", " 5", "5 ", "+5", "0x10", "1.0", "12abc"}) {
    EXPECT_FALSE(parse_int64(bad, v)) << bad;
    EXPECT_EQ(v, 7) << bad;
  }
  EXPECT_FALSE(parse_int64("-5", v, 0));
  EXPECT_FALSE(parse_int64("4294967301", v, INT32_MIN, INT32_MAX));
  EXPECT_TRUE(parse_uint64("18446744073709551615", u));
  EXPECT_EQ(u, UINT64_MAX);
  EXPECT_FALSE(parse_uint64("18446744073709551616", u));
  EXPECT_FALSE(parse_uint64("-1", u));
}

TEST(Hardening, AssetSearchPath) {
  TempDir d;
  std::ofstream(d.file("probe-asset.bin")) << "x";
  ::setenv("LONGSHOT_ASSETS", d.path.c_str(), 1);
  ::setenv("LONGSHOT_NO_SOURCE_ASSETS", "1", 1);
  const auto dirs = asset_dirs();
  ASSERT_FALSE(dirs.empty());
  EXPECT_EQ(dirs.front(), d.path.lexically_normal().string());
  for (const auto& dir : dirs) EXPECT_EQ(dir.find(LONGSHOT_SOURCE_DIR "/assets"), std::string::npos) << dir;
  EXPECT_EQ(find_asset("probe-asset.bin"), d.file("probe-asset.bin"));
  EXPECT_EQ(find_asset("no-such-asset.bin"), "");
  const auto text = asset_search_text("no-such-asset.bin");
  for (const auto& dir : dirs) EXPECT_NE(text.find(dir), std::string::npos) << text;
  ::unsetenv("LONGSHOT_NO_SOURCE_ASSETS");
  EXPECT_EQ(asset_dirs().back(), fs::path(LONGSHOT_SOURCE_DIR "/assets").lexically_normal().string());
  ::unsetenv("LONGSHOT_ASSETS");
}

// Found by fuzz_json: nlohmann throws out_of_range (not parse_error) for a number that overflows a
// double; the mask-trace reader caught parse_error alone, so "1e999" escaped as a foreign exception.
TEST(Hardening, JsonNumberOverflowIsAReaderError) {
  const auto msg = error_of([] { attention::mask_trace_from_json(R"({"format": 1e999})", "t.lstrace"); });
  EXPECT_NE(msg.find("t.lstrace"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
  EXPECT_THROW(attention::mask_trace_from_json(R"({"format": 1e999})", "t.lstrace"), IoError);
  TempDir d;
  write_raw(d.file("num.safetensors"), R"({"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", 4);
  EXPECT_THROW(io::SafetensorsFile(d.file("num.safetensors")), IoError);
}

// Found by fuzz_json: a shard index naming a file longer than NAME_MAX made std::filesystem throw
// filesystem_error (ENAMETOOLONG) instead of the reader's IoError.
TEST(Hardening, ShardIndexWithAnOverlongFileNameIsAReaderError) {
  TempDir d;
  std::ofstream(d.file("m.safetensors.index.json"))
      << "{\"weight_map\": {\"w\": \"" << std::string(5000, 'x') << ".safetensors\"}}";
  const auto msg = error_of([&] { io::SafetensorsSet s(d.file("m.safetensors.index.json")); });
  EXPECT_NE(msg.find("not a file name next to the index"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 600u);
  EXPECT_THROW(io::SafetensorsSet(d.file("m.safetensors.index.json")), IoError);
  const std::string probe = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/hardening/shard_index_long_name.json";
  std::filesystem::copy_file(probe, d.file("p.safetensors.index.json"));
  EXPECT_THROW(io::SafetensorsSet(d.file("p.safetensors.index.json")), IoError);
}

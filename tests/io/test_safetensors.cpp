// Safetensors reader/writer: round trip of every supported dtype, and a corpus of broken files
// (made here) each rejected with an IoError that names the file and, where one is at fault, the tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/common/temp_dir.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_st") {}
};

// A safetensors file from a raw header text and `data_bytes` zero bytes of data.
std::string write_raw(const TempDir& d, const std::string& name, const std::string& header, size_t data_bytes,
                      int64_t header_len_override = -1) {
  const std::string p = d.file(name);
  std::ofstream out(p, std::ios::binary);
  uint64_t n = header_len_override >= 0 ? uint64_t(header_len_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i)));
  out << header;
  out << std::string(data_bytes, '\0');
  return p;
}

std::string open_error(const std::string& path) {
  try {
    io::SafetensorsFile f(path);
  } catch (const IoError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("WRONG TYPE: ") + e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripAllDtypesAndMetadata) {
  TempDir d;
  std::map<std::string, torch::Tensor> t = {{"a.f32", torch::randn({3, 4})},
                                            {"b.f16", torch::randn({5}).to(torch::kHalf)},
                                            {"c.bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
                                            {"d.empty", torch::zeros({0, 7})}};
  io::write_safetensors(d.file("rt.safetensors"), t, {{"note", "hello"}});
  io::SafetensorsFile f(d.file("rt.safetensors"));
  EXPECT_EQ(f.names().size(), 4u);
  EXPECT_EQ(f.metadata().at("note"), "hello");
  for (const auto& [k, v] : t) {
    auto r = f.load(k);
    EXPECT_EQ(r.scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(r, v)) << k;
  }
  EXPECT_EQ(f.info("c.bf16").dtype, io::StDtype::BF16);
  EXPECT_EQ(f.load("b.f16", torch::kFloat).scalar_type(), torch::kFloat);
  EXPECT_THROW(f.info("nope"), IoError);
  // Data section starts 8-byte aligned.
  std::ifstream in(d.file("rt.safetensors"), std::ios::binary);
  uint8_t len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  EXPECT_EQ(len[0] % 8, 0);
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir d;
  EXPECT_THROW(io::write_safetensors(d.file("x.safetensors"), {{"i", torch::zeros({2}, torch::kLong)}}), ShapeError);
  try {
    io::write_safetensors("/nonexistent-dir/x.safetensors", {{"a", torch::zeros({2})}});
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.safetensors"), std::string::npos);
  }
  EXPECT_TRUE(fs::is_empty(d.path));  // nothing half-written
}

TEST(Safetensors, MalformedCorpus) {
  TempDir d;
  struct Case {
    const char* what;
    std::string path;
    const char* expect;  // substring of the message
  };
  const std::string good = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  std::vector<Case> cases = {
      {"empty file", write_raw(d, "empty", "", 0, 0).substr(0), "header"},
      {"header length beyond file", write_raw(d, "long", good, 16, 1 << 20), "exceeds the file size"},
      {"not json", write_raw(d, "json", "{\"w\": [1, 2", 0), "not valid JSON"},
      {"not an object", write_raw(d, "array", "[1,2,3]", 0), "not a JSON object"},
      {"unsupported dtype", write_raw(d, "dtype", R"({"w":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})", 2), "'w' has unsupported dtype I8"},
      {"negative shape", write_raw(d, "shape", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "'w' has a malformed shape"},
      {"no offsets", write_raw(d, "nooff", R"({"w":{"dtype":"F32","shape":[2]}})", 8), "'w' has malformed data_offsets"},
      {"offsets beyond data", write_raw(d, "oob", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 8), "'w' has data_offsets [0, 16] outside"},
      {"reversed offsets", write_raw(d, "rev", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8), "'w' has data_offsets"},
      {"size mismatch", write_raw(d, "size", R"({"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}})", 8), "'w' holds 8 bytes"},
      {"overlap", write_raw(d, "overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12), "overlaps"},
      {"missing file", d.file("does-not-exist"), "cannot open"},
  };
  // A 3-byte file: too short for the length field.
  {
    std::ofstream(d.file("short"), std::ios::binary) << "abc";
    cases.push_back({"3-byte file", d.file("short"), "too short"});
  }
  for (const auto& c : cases) {
    const auto msg = open_error(c.path);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.what << ": got '" << msg << "'";
    EXPECT_NE(msg.find(c.path), std::string::npos) << c.what << ": message does not name the file: " << msg;
  }
  // The good header itself opens.
  EXPECT_EQ(open_error(write_raw(d, "good", good, 16)), "");
}

// Sharded checkpoints (io::SafetensorsSet): one logical tensor set over the shards an index JSON
// names, or over files given directly; every way the index and the shards can disagree is an
// IoError naming the index, the shard or the tensor.
#include <gtest/gtest.h>

#include <fstream>

#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "tests/common/temp_dir.h"

using namespace longshot;

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "(no IoError)";
}

struct Shards : longshot::testing::TempDir {
  Shards() : TempDir("longshot_shards") {
    io::write_safetensors(file("s1.safetensors"), {{"a", torch::arange(4, torch::kFloat)}, {"b", torch::ones({2, 2})}});
    io::write_safetensors(file("s2.safetensors"), {{"c", torch::full({3}, 7.0)}}, {{"format", "pt"}});
  }
  std::string index(const std::string& body) {
    const auto p = file("model.safetensors.index.json");
    std::ofstream(p) << body;
    return p;
  }
};

}  // namespace

TEST(SafetensorsSet, IndexSpansShards) {
  Shards s;
  const auto idx = s.index(R"({"metadata": {"total_size": 40}, "weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})");
  io::SafetensorsSet set(idx);
  EXPECT_EQ(set.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(set.files().size(), 2u);
  EXPECT_TRUE(torch::equal(set.load("a"), torch::arange(4, torch::kFloat)));
  EXPECT_TRUE(torch::equal(set.load("c"), torch::full({3}, 7.0)));
  EXPECT_EQ(set.info("b").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_GT(set.file_bytes(), 0u);
  EXPECT_NE(message_of([&] { set.load("zzz"); }).find("has no tensor 'zzz'"), std::string::npos);
  // One file is a set of one shard; shards given directly need no index.
  EXPECT_EQ(io::SafetensorsSet(s.file("s2.safetensors")).names(), std::vector<std::string>{"c"});
  EXPECT_EQ(io::SafetensorsSet(std::vector<std::string>{s.file("s1.safetensors"), s.file("s2.safetensors")}).names().size(), 3u);
}

TEST(SafetensorsSet, DisagreementsAreNamed) {
  Shards s;
  auto msg = message_of([&] { io::SafetensorsSet set(s.index(R"({"weight_map": {"a": "s1.safetensors", "d": "s2.safetensors"}})")); });
  EXPECT_NE(msg.find("tensor 'd' is not in its shard 's2.safetensors'"), std::string::npos) << msg;
  msg = message_of([&] { io::SafetensorsSet set(s.index(R"({"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})")); });
  EXPECT_NE(msg.find("the index says 's2.safetensors'"), std::string::npos) << msg;
  msg = message_of([&] { io::SafetensorsSet set(s.index(R"({"weight_map": {"a": "gone.safetensors"}})")); });
  EXPECT_NE(msg.find("names shard 'gone.safetensors', which does not exist"), std::string::npos) << msg;
  msg = message_of([&] { io::SafetensorsSet set(s.index(R"({"weight_map": {"a": "/etc/passwd"}})")); });
  EXPECT_NE(msg.find("not a file name next to the index"), std::string::npos) << msg;
  msg = message_of([&] { io::SafetensorsSet set(s.index(R"({"no_map": 1})")); });
  EXPECT_NE(msg.find("has no \"weight_map\" object"), std::string::npos) << msg;
  msg = message_of([&] { io::SafetensorsSet set(s.index("{broken")); });
  EXPECT_NE(msg.find("is not valid JSON"), std::string::npos) << msg;
  io::write_safetensors(s.file("dup.safetensors"), {{"a", torch::zeros({1})}});
  msg = message_of([&] {
    io::SafetensorsSet set(std::vector<std::string>{s.file("s1.safetensors"), s.file("dup.safetensors")});
  });
  EXPECT_NE(msg.find("tensor 'a' is in both"), std::string::npos) << msg;
}

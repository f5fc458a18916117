// Text encoders and latent decoders: the hash encoder is deterministic, the embeddings file is
// validated (naming file and tensor), decoders give the video size the strides promise.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/conditioning_impl.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
using namespace longshot::model;

TEST(Conditioning, HashEncoderIsDeterministicPerWord) {
  HashTextEncoder enc(32, 4);
  auto a = enc.encode("a red ball"), b = enc.encode("a red ball"), c = enc.encode("a blue ball");
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{1, 3, 32}));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_TRUE(torch::equal(a[0][0], c[0][0]));  // "a" is "a" wherever it appears
  EXPECT_FALSE(torch::equal(a[0][1], c[0][1]));
  EXPECT_EQ(enc.encode("one two three four five six").size(1), 4);
  EXPECT_EQ(enc.encode("").sizes(), (std::vector<int64_t>{1, 1, 32}));
}

TEST(Conditioning, EmbeddingFileValidated) {
  const auto dir = std::filesystem::temp_directory_path() / ("longshot_cond_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto good = (dir / "ctx.safetensors").string(), bad = (dir / "bad.safetensors").string();
  io::write_safetensors(good, {{"context", torch::randn({7, 32})}, {"negative", torch::randn({2, 32})}});
  io::write_safetensors(bad, {{"context", torch::randn({7, 31})}});
  EmbeddingFileTextEncoder enc(good, 32);
  EXPECT_EQ(enc.encode("anything").sizes(), (std::vector<int64_t>{1, 7, 32}));
  EXPECT_EQ(enc.encode("").sizes(), (std::vector<int64_t>{1, 2, 32}));
  try {
    EmbeddingFileTextEncoder b(bad, 32);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'context'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  // Wan configs without a file: a ParameterError naming the flag.
  try {
    make_text_encoder(find_config("wan2.1-t2v-1.3b"));
    FAIL();
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "text-embeddings");
  }
  longshot::remove_tree(dir);
}

TEST(Conditioning, DecodersHonourStrides) {
  const auto px = PixelDecoder().decode(torch::tensor({-1.0f, 0.0f, 1.0f}).view({3, 1, 1, 1}), 16);
  EXPECT_EQ(px.frames, 1);
  EXPECT_EQ(px.rgb, (std::vector<uint8_t>{0, 128, 255}));
  const auto v = LatentPreviewDecoder(4, 8).decode(torch::randn({16, 3, 2, 2}), 16);
  EXPECT_EQ(v.frames, 9);  // 1 + (3 − 1)·4
  EXPECT_EQ(v.height, 16);
  EXPECT_EQ(v.width, 16);
  EXPECT_EQ(v.rgb.size(), 9u * 16 * 16 * 3);
  EXPECT_THROW(PixelDecoder().decode(torch::zeros({2, 1, 4, 4}), 16), ShapeError);
}

// Prompt encoder: tokenizer + tiny umT5 end to end, the [1, max_len, d] zero-padded contract, and
// the on-disk cache (hit on a re-run, miss on another prompt or changed weights, survives junk).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/common/error.h"
#include "engine/text/checkpoint.h"
#include "engine/text/prompt_encoder.h"
#include "engine/text/tokenizer.h"
#include "text_test_util.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
using namespace longshot::text;
using namespace longshot::text::testing;
namespace fs = std::filesystem;

TEST(PromptEncoder, EncodesCachesAndReleases) {
  if (!Tokenizer::available()) GTEST_SKIP() << "built without SentencePiece (LONGSHOT_WITH_SENTENCEPIECE)";
  if (!have_spm_tools()) GTEST_SKIP() << "spm_train not installed: apt-get install sentencepiece (packaging/setup.sh does)";
  const auto dir = scratch("prompt");
  const auto model = train_spm(dir);
  ASSERT_FALSE(model.empty()) << "spm_train failed; see " << dir << "/spm_train.log";
  // The diffusers folder shape: text_encoder/ beside tokenizer/spiece.model.
  fs::create_directories(dir + "/text_encoder");
  fs::create_directories(dir + "/tokenizer");
  fs::copy_file(model, dir + "/tokenizer/spiece.model");
  const auto cfg = tiny_config();
  write_checkpoint_safetensors(dir + "/text_encoder/model.safetensors", tiny_weights(cfg));

  PromptEncoderOptions o;
  o.weights = dir + "/text_encoder";
  o.cache_dir = dir + "/cache";
  o.max_len = 64;
  o.dtype = torch::kFloat;  // compared with a direct fp32 encode below
  PromptEncoder pe(o);
  const std::string prompt = "a cat walks along the beach at sunset";
  auto first = pe.encode(prompt);
  EXPECT_FALSE(pe.last_stats().cache_hit);
  EXPECT_TRUE(pe.loaded());
  const int64_t n = pe.last_stats().tokens;
  ASSERT_GT(n, 3);
  EXPECT_EQ(first.sizes(), (std::vector<int64_t>{1, 64, cfg.d_model}));
  EXPECT_EQ(first.scalar_type(), torch::kFloat);
  EXPECT_EQ(first[0].narrow(0, n, 64 - n).abs().max().item<float>(), 0.f);
  EXPECT_GT(first[0].narrow(0, 0, n).abs().min().item<float>(), 0.f);

  // Same as tokenizer + encoder by hand.
  Tokenizer tok(dir + "/tokenizer", 64);
  const auto t = tok.encode(prompt);
  auto direct = UMT5Encoder::load(dir + "/text_encoder/model.safetensors")
                    .encode(torch::tensor(t.ids, torch::kLong).unsqueeze(0), torch::tensor(t.mask, torch::kLong).unsqueeze(0));
  EXPECT_LT(rel_l2(first, direct), 1e-6);

  // Re-run after release: from the cache, without loading the weights.
  pe.release();
  EXPECT_FALSE(pe.loaded());
  auto again = pe.encode(prompt);
  EXPECT_TRUE(pe.last_stats().cache_hit);
  EXPECT_FALSE(pe.loaded());
  EXPECT_EQ(rel_l2(again, first), 0.0);
  // The cache file doubles as a --text-embeddings file: 'context' [1, n, d].
  {
    Checkpoint c(pe.cache_path(prompt));
    EXPECT_EQ(c.info("context").shape, (std::vector<int64_t>{1, n, cfg.d_model}));
  }
  // Another prompt misses.
  pe.encode("two astronauts play chess on the moon");
  EXPECT_FALSE(pe.last_stats().cache_hit);
  // A junk cache file is replaced, not trusted.
  std::ofstream(pe.cache_path("junk prompt")) << "junk";
  auto j = pe.encode("junk prompt");
  EXPECT_FALSE(pe.last_stats().cache_hit);
  EXPECT_EQ(j.size(1), 64);
  pe.encode("junk prompt");
  EXPECT_TRUE(pe.last_stats().cache_hit);

  // Changed weights (other values, new mtime): a new key, so a miss and other numbers.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_checkpoint_safetensors(dir + "/text_encoder/model.safetensors", tiny_weights(cfg, 99));
  PromptEncoder pe2(o);
  auto changed = pe2.encode(prompt);
  EXPECT_FALSE(pe2.last_stats().cache_hit);
  EXPECT_GT(rel_l2(changed, first), 1e-2);

  // No cache: nothing written.
  o.cache_dir = "none";
  PromptEncoder pe3(o);
  EXPECT_EQ(pe3.cache_path(prompt), "");
  pe3.encode(prompt);
  EXPECT_FALSE(pe3.last_stats().cache_hit);

  // A tokenizer bigger than the embedding table is refused (not a pair).
  auto small = tiny_config();
  small.vocab = 50;
  write_checkpoint_safetensors(dir + "/small.safetensors", tiny_weights(small));
  o.weights = dir + "/small.safetensors";
  o.tokenizer = dir + "/tokenizer/spiece.model";
  PromptEncoder pe4(o);
  try {
    pe4.encode(prompt);
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("not a pair"), std::string::npos) << e.what();
  }
  // No tokenizer beside the weights: the error lists where it looked.
  o.tokenizer.clear();
  try {
    PromptEncoder pe5(o);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("spiece.model"), std::string::npos) << e.what();
  }
  longshot::remove_tree(dir);
}

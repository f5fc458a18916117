// umT5 encoder: every weight layout loads to the same numbers; fp8 decoding; the encode contract
// (padding zeroed, padding-independent); every malformed-file error names file and tensor; and
// parity with transformers' UMT5EncoderModel on tests/fixtures/umt5_tiny when it is present.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/common/threads.h"
#include "engine/text/checkpoint.h"
#include "engine/text/umt5.h"
#include "text_test_util.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
using namespace longshot::text;
using namespace longshot::text::testing;
namespace fs = std::filesystem;

namespace {

std::pair<torch::Tensor, torch::Tensor> sample_ids(int64_t B, int64_t L, int64_t vocab, std::vector<int64_t> lengths) {
  auto gen = at::detail::createCPUGenerator(11);
  auto ids = torch::randint(2, vocab, {B, L}, gen, torch::TensorOptions().dtype(torch::kLong));
  auto mask = torch::zeros({B, L}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    mask[b].narrow(0, 0, lengths[size_t(b)]).fill_(1);
    ids[b][lengths[size_t(b)] - 1] = 1;
    if (lengths[size_t(b)] < L) ids[b].narrow(0, lengths[size_t(b)], L - lengths[size_t(b)]).fill_(0);
  }
  return {ids, mask};
}

// e4m3fn by the OCP FP8 formula, written independently of the library's table.
float e4m3_ref(int b) {
  const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return NAN;
  const float mag = e == 0 ? float(m) * std::pow(2.f, -9.f) : (8.f + float(m)) * std::pow(2.f, float(e) - 10.f);
  return s ? -mag : mag;
}

template <class E>
std::string expect_throw_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception";
  return "";
}

class UMT5Layouts : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = scratch("umt5");
    cfg = tiny_config();
    weights = tiny_weights(cfg);
    reference_file = dir + "/model.safetensors";
    write_checkpoint_safetensors(reference_file, weights);
    auto [i, m] = sample_ids(2, 12, cfg.vocab, {12, 7});
    ids = i, mask = m;
    reference = UMT5Encoder::load(reference_file).encode(ids, mask);
  }
  void TearDown() override { longshot::remove_tree(dir); }

  std::string dir, reference_file;
  UMT5Config cfg;
  std::map<std::string, torch::Tensor> weights;
  torch::Tensor ids, mask, reference;
};

}  // namespace

TEST(UMT5, Fp8DecodeKnownValues) {
  // OCP FP8: e4m3fn max 448, min subnormal 2^-9, 0x7f NaN; e5m2 max 57344, 0x7c infinity.
  auto e4 = decode_fp8(torch::tensor({0x38, 0x40, 0x7e, 0xfe, 0x01, 0x08, 0x00, 0x80}, torch::kByte), false, torch::kFloat);
  std::vector<float> want = {1.f, 2.f, 448.f, -448.f, std::ldexp(1.f, -9), std::ldexp(1.f, -6), 0.f, -0.f};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(e4[int64_t(i)].item<float>(), want[i]) << i;
  EXPECT_TRUE(std::isnan(decode_fp8(torch::tensor({0x7f}, torch::kByte), false, torch::kFloat)[0].item<float>()));
  auto e5 = decode_fp8(torch::tensor({0x3c, 0x7b, 0x7c, 0x01}, torch::kByte), true, torch::kFloat);
  EXPECT_EQ(e5[0].item<float>(), 1.f);
  EXPECT_EQ(e5[1].item<float>(), 57344.f);
  EXPECT_TRUE(std::isinf(e5[2].item<float>()));
  EXPECT_EQ(e5[3].item<float>(), std::ldexp(1.f, -16));
  // Every e4m3 byte against the formula.
  auto all = decode_fp8(torch::arange(256, torch::kLong).to(torch::kByte), false, torch::kFloat);
  for (int b = 0; b < 256; ++b) {
    const float r = e4m3_ref(b), v = all[b].item<float>();
    if (std::isnan(r)) EXPECT_TRUE(std::isnan(v)) << b;
    else EXPECT_EQ(v, r) << b;
  }
}

TEST_F(UMT5Layouts, ConfigReadFromShapes) {
  auto enc = UMT5Encoder::load(reference_file);
  EXPECT_TRUE(enc.config() == cfg) << enc.config().describe();
  EXPECT_EQ(enc.layout(), UMT5Layout::Transformers);
  EXPECT_EQ(reference.sizes(), (std::vector<int64_t>{2, 12, cfg.d_model}));
  EXPECT_GT(reference.abs().max().item<float>(), 0.1f);
}

TEST_F(UMT5Layouts, ShardedBf16WanPthAndPrefixedAgree) {
  // Sharded: two shards + index (the diffusers text_encoder/ layout), in a folder.
  const auto sharded = dir + "/sharded";
  fs::create_directories(sharded);
  std::map<std::string, torch::Tensor> s1, s2;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  int n = 0;
  for (const auto& [k, v] : weights) {
    const bool first = (n++ % 2) == 0;
    (first ? s1 : s2)[k] = v;
    index["weight_map"][k] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_checkpoint_safetensors(sharded + "/model-00001-of-00002.safetensors", s1);
  write_checkpoint_safetensors(sharded + "/model-00002-of-00002.safetensors", s2);
  std::ofstream(sharded + "/model.safetensors.index.json") << index.dump(2);
  // bf16 single file with the tied embedding under its other name (transformers may save either).
  std::map<std::string, torch::Tensor> bf16;
  for (const auto& [k, v] : weights) bf16[k == "shared.weight" ? "encoder.embed_tokens.weight" : k] = v.to(torch::kBFloat16);
  write_checkpoint_safetensors(dir + "/bf16.safetensors", bf16);
  // Wan's .pth names, written by torch::pickle_save (the torch.save zip format).
  c10::Dict<std::string, torch::Tensor> wan;
  for (const auto& [k, v] : weights) wan.insert(wan_name(k), v.to(torch::kBFloat16));
  const auto bytes = torch::pickle_save(c10::IValue(wan));
  std::ofstream(dir + "/wan.pth", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  // A bundle prefix, as in checkpoints that carry several models.
  std::map<std::string, torch::Tensor> prefixed;
  for (const auto& [k, v] : weights) prefixed["text_encoders.umt5xxl.transformer." + k] = v.to(torch::kHalf);
  write_checkpoint_safetensors(dir + "/prefixed.safetensors", prefixed);

  for (const auto& [path, layout] : std::vector<std::pair<std::string, UMT5Layout>>{
           {sharded, UMT5Layout::Transformers},
           {sharded + "/model.safetensors.index.json", UMT5Layout::Transformers},
           {dir + "/bf16.safetensors", UMT5Layout::Transformers},
           {dir + "/wan.pth", UMT5Layout::Wan},
           {dir + "/prefixed.safetensors", UMT5Layout::Transformers}}) {
    SCOPED_TRACE(path);
    auto enc = UMT5Encoder::load(path);
    EXPECT_EQ(enc.layout(), layout);
    EXPECT_TRUE(enc.config() == cfg);
    EXPECT_LT(rel_l2(enc.encode(ids, mask), reference), 1e-6);
  }
}

TEST_F(UMT5Layouts, ComfyScaledFp8MatchesDequantisedWeights) {
  // ComfyUI's scaled files: fp8 e4m3fn bits + `<name>.scale_weight` (per tensor here, per row for
  // wo), a `scaled_fp8` marker and `scale_input` tensors the encoder does not need.
  auto gen = at::detail::createCPUGenerator(5);
  std::map<std::string, torch::Tensor> fp8, dequant;
  std::map<std::string, WeightDtype> tags;
  for (const auto& [k, v] : weights) {
    const bool linear = k.find("SelfAttention.") != std::string::npos || k.find("DenseReluDense.") != std::string::npos ||
                        k == "shared.weight";
    if (!linear || k.find("relative_attention_bias") != std::string::npos) {
      fp8[k] = dequant[k] = v;
      continue;
    }
    // Bits with exponent field ≤ 7 (|x| < 2): a spread like real quantised weights.
    auto sign = torch::randint(0, 2, v.sizes(), gen, torch::TensorOptions().dtype(torch::kLong)) * 128;
    auto expo = torch::randint(0, 8, v.sizes(), gen, torch::TensorOptions().dtype(torch::kLong)) * 8;
    auto mant = torch::randint(0, 8, v.sizes(), gen, torch::TensorOptions().dtype(torch::kLong));
    auto bits = (sign + expo + mant).to(torch::kByte);
    const bool per_row = k.find("wo.weight") != std::string::npos;
    auto scale = per_row ? torch::rand({v.size(0)}, gen, torch::TensorOptions().dtype(torch::kFloat)) * 0.2 + 0.05
                         : torch::full({}, float(v.std().item<float>() / 1.5));
    auto values = torch::empty(v.sizes(), torch::kFloat);
    auto bp = bits.contiguous();
    for (int64_t i = 0; i < bits.numel(); ++i) values.data_ptr<float>()[i] = e4m3_ref(bp.data_ptr<uint8_t>()[i]);
    const std::string base = k.substr(0, k.size() - 6);
    fp8[k] = bits;
    tags[k] = WeightDtype::F8_E4M3;
    fp8[base + "scale_weight"] = scale;
    if (k != "shared.weight") fp8[base + "scale_input"] = torch::ones({});
    dequant[k] = values * (per_row ? scale.unsqueeze(1) : scale);
  }
  fp8["scaled_fp8"] = torch::zeros({0}, torch::kByte);
  tags["scaled_fp8"] = WeightDtype::F8_E4M3;
  write_checkpoint_safetensors(dir + "/fp8.safetensors", fp8, tags);
  write_checkpoint_safetensors(dir + "/dequant.safetensors", dequant);

  auto enc = UMT5Encoder::load(dir + "/fp8.safetensors");
  EXPECT_TRUE(enc.has_fp8());
  // Held as bytes: about a quarter of the fp32 checkpoint's bytes for the linear layers.
  auto full = UMT5Encoder::load(dir + "/dequant.safetensors");
  EXPECT_LT(enc.weight_bytes(), full.weight_bytes() / 2);
  const auto want = full.encode(ids, mask);
  EXPECT_LT(rel_l2(enc.encode(ids, mask), want), 1e-6);
  EXPECT_GT(rel_l2(want, reference), 1e-2);  // the fp8 weights really are other weights
  // bf16 compute from fp8 bits: close to the fp32 result.
  UMT5LoadOptions bf;
  bf.dtype = torch::kBFloat16;
  EXPECT_LT(rel_l2(UMT5Encoder::load(dir + "/fp8.safetensors", bf).encode(ids, mask), want), 3e-2);
}

TEST_F(UMT5Layouts, PaddingIsZeroedAndDoesNotLeak) {
  // Row 1 has 7 tokens: its padded rows are zero, and its valid rows equal the same tokens
  // encoded alone, with other padding ids, and with more padding.
  auto enc = UMT5Encoder::load(reference_file);
  EXPECT_EQ(reference[1].narrow(0, 7, 5).abs().max().item<float>(), 0.f);
  EXPECT_GT(reference[1].narrow(0, 0, 7).abs().min().item<float>(), 0.f);
  auto alone = enc.encode(ids[1].narrow(0, 0, 7).unsqueeze(0), mask[1].narrow(0, 0, 7).unsqueeze(0));
  EXPECT_LT(rel_l2(alone[0], reference[1].narrow(0, 0, 7)), 1e-6);
  auto other_pad = ids.clone();
  other_pad[1].narrow(0, 7, 5).fill_(77);
  EXPECT_LT(rel_l2(enc.encode(other_pad, mask), reference), 1e-6);
  auto longer = torch::cat({ids, torch::zeros({2, 20}, torch::kLong)}, 1);
  auto longer_mask = torch::cat({mask, torch::zeros({2, 20}, torch::kLong)}, 1);
  auto out = enc.encode(longer, longer_mask);
  EXPECT_LT(rel_l2(out.narrow(1, 0, 12), reference), 1e-6);
  EXPECT_EQ(out.narrow(1, 12, 20).abs().max().item<float>(), 0.f);
  // A mask that is not a right-padded prefix is computed at full length; masked rows still zero.
  auto holes = mask.clone();
  holes[0][3] = 0;
  auto h = enc.encode(ids, holes);
  EXPECT_EQ(h[0][3].abs().max().item<float>(), 0.f);
  EXPECT_GT(rel_l2(h[0], reference[0]), 1e-4);
  // Row 1 (a prefix mask) is unaffected by row 0's hole.
  EXPECT_LT(rel_l2(h[1], reference[1]), 1e-6);
}

TEST_F(UMT5Layouts, EncodeRejectsBadInput) {
  auto enc = UMT5Encoder::load(reference_file);
  auto bad = ids.clone();
  bad[0][0] = cfg.vocab;
  EXPECT_NE(expect_throw_text<ShapeError>([&] { enc.encode(bad, mask); }).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(expect_throw_text<ShapeError>([&] { enc.encode(ids, mask.narrow(1, 0, 5)); }).find("does not match"), std::string::npos);
  EXPECT_NE(expect_throw_text<ShapeError>([&] { enc.encode(ids.to(torch::kFloat), mask); }).find("int64"), std::string::npos);
  enc.release();
  EXPECT_FALSE(enc.loaded());
  EXPECT_NE(expect_throw_text<Error>([&] { enc.encode(ids, mask); }).find("no weights"), std::string::npos);
}

TEST_F(UMT5Layouts, MovesBetweenDtypes) {
  auto enc = UMT5Encoder::load(reference_file);
  enc.to(torch::kCPU, torch::kBFloat16);
  EXPECT_EQ(enc.dtype(), torch::kBFloat16);
  auto out = enc.encode(ids, mask);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_l2(out, reference), 3e-2);
  EXPECT_EQ(out[1].narrow(0, 7, 5).abs().max().item<float>(), 0.f);
}

TEST_F(UMT5Layouts, MalformedFilesNameFileAndTensor) {
  const std::string wo = "encoder.block.1.layer.1.DenseReluDense.wo.weight";
  {  // missing tensor
    auto w = weights;
    w.erase(wo);
    write_checkpoint_safetensors(dir + "/missing.safetensors", w);
    const auto msg = expect_throw_text<IoError>([&] { UMT5Encoder::load(dir + "/missing.safetensors"); });
    EXPECT_NE(msg.find(wo), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing.safetensors"), std::string::npos) << msg;
  }
  {  // wrong shape
    auto w = weights;
    w[wo] = torch::zeros({cfg.d_model, cfg.d_ff + 1});
    write_checkpoint_safetensors(dir + "/shape.safetensors", w);
    const auto msg = expect_throw_text<ShapeError>([&] { UMT5Encoder::load(dir + "/shape.safetensors"); });
    EXPECT_NE(msg.find(wo), std::string::npos) << msg;
    EXPECT_NE(msg.find("shape.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[16, 25]"), std::string::npos) << msg;
  }
  {  // wrong dtype
    auto w = weights;
    w["encoder.final_layer_norm.weight"] = torch::ones({cfg.d_model}, torch::kLong);
    write_checkpoint_safetensors(dir + "/dtype.safetensors", w);
    const auto msg = expect_throw_text<ShapeError>([&] { UMT5Encoder::load(dir + "/dtype.safetensors"); });
    EXPECT_NE(msg.find("encoder.final_layer_norm.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("I64"), std::string::npos) << msg;
  }
  {  // truncated file: the last tensor's data is cut off
    const auto size = fs::file_size(reference_file);
    fs::copy_file(reference_file, dir + "/cut.safetensors");
    fs::resize_file(dir + "/cut.safetensors", size - 100);
    const auto msg = expect_throw_text<IoError>([&] { UMT5Encoder::load(dir + "/cut.safetensors"); });
    EXPECT_NE(msg.find("cut.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    fs::resize_file(dir + "/cut.safetensors", 5);
    EXPECT_NE(expect_throw_text<IoError>([&] { UMT5Encoder::load(dir + "/cut.safetensors"); }).find("truncated"), std::string::npos);
  }
  {  // missing shard, and an index naming a tensor its shard lacks
    const auto sh = dir + "/shards";
    fs::create_directories(sh);
    std::map<std::string, torch::Tensor> a, b;
    nlohmann::json index = {{"weight_map", nlohmann::json::object()}};
    for (const auto& [k, v] : weights) {
      (k == wo ? b : a)[k] = v;
      index["weight_map"][k] = k == wo ? "b.safetensors" : "a.safetensors";
    }
    write_checkpoint_safetensors(sh + "/a.safetensors", a);
    std::ofstream(sh + "/model.safetensors.index.json") << index.dump();
    auto msg = expect_throw_text<IoError>([&] { UMT5Encoder::load(sh); });
    EXPECT_NE(msg.find("b.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
    write_checkpoint_safetensors(sh + "/b.safetensors", {{"unrelated", torch::zeros({1})}});
    msg = expect_throw_text<IoError>([&] { UMT5Encoder::load(sh); });
    EXPECT_NE(msg.find(wo), std::string::npos) << msg;
  }
  {  // a bad scale tensor
    auto w = weights;
    w["encoder.block.0.layer.0.SelfAttention.q.scale_weight"] = torch::ones({3});
    write_checkpoint_safetensors(dir + "/scale.safetensors", w);
    const auto msg = expect_throw_text<ShapeError>([&] { UMT5Encoder::load(dir + "/scale.safetensors"); });
    EXPECT_NE(msg.find("q.scale_weight"), std::string::npos) << msg;
  }
  {  // more blocks than the expected config; the wrong model altogether
    UMT5LoadOptions o;
    auto one = tiny_config();
    one.num_layers = 1;
    o.expect = std::make_shared<UMT5Config>(one);
    auto msg = expect_throw_text<ShapeError>([&] { UMT5Encoder::load(reference_file, o); });
    EXPECT_NE(msg.find("encoder.block.1."), std::string::npos) << msg;
    o.expect = std::make_shared<UMT5Config>(UMT5Config::xxl());
    msg = expect_throw_text<ShapeError>([&] { UMT5Encoder::load(reference_file, o); });
    EXPECT_NE(msg.find("shared.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[256384, 4096]"), std::string::npos) << msg;
    write_checkpoint_safetensors(dir + "/other.safetensors", {{"blocks.0.self_attn.q.weight", torch::zeros({4, 4})}});
    msg = expect_throw_text<IoError>([&] { UMT5Encoder::load(dir + "/other.safetensors"); });
    EXPECT_NE(msg.find("no umT5 encoder tensors"), std::string::npos) << msg;
  }
  {  // missing file; a legacy pickle; garbage JSON header
    EXPECT_NE(expect_throw_text<IoError>([&] { UMT5Encoder::load(dir + "/nope.safetensors"); }).find("nope.safetensors"),
              std::string::npos);
    std::ofstream(dir + "/legacy.pth", std::ios::binary) << std::string("\x80\x02\x8a\x0alegacy pickle", 18);
    const auto msg = expect_throw_text<IoError>([&] { UMT5Encoder::load(dir + "/legacy.pth"); });
    EXPECT_NE(msg.find("legacy.pth"), std::string::npos) << msg;
    EXPECT_NE(msg.find("st.save_file"), std::string::npos) << msg;
    std::string junk(8, '\0');
    junk[0] = 4;
    junk += "{no}";
    std::ofstream(dir + "/junk.safetensors", std::ios::binary) << junk;
    EXPECT_NE(expect_throw_text<IoError>([&] { UMT5Encoder::load(dir + "/junk.safetensors"); }).find("JSON"), std::string::npos);
  }
}

// Parity with transformers' UMT5EncoderModel (tools/oracle_fixtures.py → tests/fixtures/umt5_tiny).
TEST(UMT5, MatchesTransformersFixture) {
  const fs::path fx = fs::path(LONGSHOT_SOURCE_DIR) / "tests/fixtures/umt5_tiny";
  if (!fs::exists(fx / "io.safetensors")) GTEST_SKIP() << "fixture " << fx << " not present (tools/oracle_fixtures.py makes it)";
  auto enc = UMT5Encoder::load((fx / "model.safetensors").string());
  EXPECT_EQ(enc.config().num_layers, 3);
  Checkpoint io((fx / "io.safetensors").string());
  const auto ids = io.load("input_ids"), mask = io.load("attention_mask");
  const auto want = io.load("last_hidden_state");
  const auto out = enc.encode(ids, mask);
  // transformers leaves padded rows as computed: compare the valid rows, row by row.
  for (int64_t b = 0; b < ids.size(0); ++b) {
    const int64_t n = mask[b].sum().item<int64_t>();
    EXPECT_LT(rel_l2(out[b].narrow(0, 0, n), want[b].narrow(0, 0, n)), 1e-4) << "row " << b;
  }
  EXPECT_LT(rel_l2(out, io.load("zeroed_hidden_state")), 1e-4);
  const auto long_ids = io.load("long_input_ids");
  EXPECT_LT(rel_l2(enc.encode(long_ids, torch::ones_like(long_ids)), io.load("long_last_hidden_state")), 1e-4);
}

// Timing at the real width (not run by CI; --gtest_also_run_disabled_tests): umT5-XXL's d_model,
// heads and d_ff with 2 of its 24 layers and a small vocabulary (the embedding is a lookup), one
// prompt of 77 tokens, fp32 and bf16, on the threads LibTorch has. Prints seconds per layer.
TEST(UMT5, DISABLED_XxlWidthCpuTiming) {
  init_cpu_threads();  // LONGSHOT_THREADS, as the CLI
  auto c = UMT5Config::xxl();
  c.num_layers = 2;
  c.vocab = 1000;
  const auto dir = scratch("xxlwidth");
  write_checkpoint_safetensors(dir + "/w.safetensors", tiny_weights(c));
  auto [ids, mask] = sample_ids(1, 512, c.vocab, {77});
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    UMT5LoadOptions o;
    o.dtype = dtype;
    auto t0 = std::chrono::steady_clock::now();
    auto enc = UMT5Encoder::load(dir + "/w.safetensors", o);
    const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    enc.encode(ids, mask);  // warm-up
    t0 = std::chrono::steady_clock::now();
    auto out = enc.encode(ids, mask);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("umT5-XXL width, %s, %d threads: load %.2f s (2 layers), encode 77 tokens %.3f s per layer -> %.1f s for 24 layers\n",
                dtype == torch::kFloat ? "fp32" : "bf16", torch::get_num_threads(), load, s / 2, s / 2 * 24);
    EXPECT_EQ(out.size(1), 512);
  }
  longshot::remove_tree(dir);
}

// A state dict pickled as python's torch.save(module.state_dict()) pickles it (an OrderedDict with a
// _metadata attribute; tests/text/data/make_state_dict_pth.py writes it without torch). LibTorch
// 1.13's unpickler refuses it; Checkpoint then reads it with its own small pickle machine.
TEST(UMT5, PythonStateDictPth) {
  const auto path = (fs::path(LONGSHOT_SOURCE_DIR) / "tests/text/data/state_dict.pth").string();
  Checkpoint c(path);
  const auto e = c.load("token_embedding.weight");
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{8, 4}));
  EXPECT_FLOAT_EQ(e[0][1].item<float>(), 0.01f);
  EXPECT_FLOAT_EQ(e[7][3].item<float>(), 0.31f);
  EXPECT_FLOAT_EQ(c.load("norm.weight")[3].item<float>(), 11.03f);
  EXPECT_EQ(c.names().size(), 12u);
  auto enc = UMT5Encoder::load(path);
  EXPECT_EQ(enc.layout(), UMT5Layout::Wan);
  EXPECT_EQ(enc.config().num_heads, 2);
  EXPECT_EQ(enc.config().d_ff, 6);
  auto ids = torch::tensor({3, 5, 1}, torch::kLong).unsqueeze(0);
  EXPECT_TRUE(torch::isfinite(enc.encode(ids, torch::ones_like(ids))).all().item<bool>());
}

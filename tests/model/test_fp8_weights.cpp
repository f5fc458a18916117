// fp8 DiT checkpoints used directly (issue 20's memory plan): ComfyUI-style scaled F8_E4M3 / F8_E5M2
// block weights load as bits (1 byte a weight), up-cast per block on use, and the forward equals
// the same model loaded from the dequantised fp32 weights; bad scales and dtypes are named.
#include <gtest/gtest.h>

#include <functional>

#include "engine/common/error.h"
#include "engine/model/block_store.h"
#include "engine/model/weights.h"
#include "tests/common/fp8_checkpoint.h"
#include "tests/common/temp_dir.h"
#include "tests/common/tiny_dit.h"

using namespace longshot;
using namespace longshot::model;
using longshot::testing::fp8_checkpoint;

namespace {

struct Dir : longshot::testing::TempDir {
  Dir() : longshot::testing::TempDir("longshot_fp8") {}
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// One set of inputs for every forward: the text K/V cache keys on the text tensor itself.
const longshot::testing::TinyInputs& inputs() {
  static const auto in = longshot::testing::tiny_inputs();
  return in;
}

torch::Tensor run(WanDiT& m) {
  torch::NoGradGuard no_grad;
  const auto& in = inputs();
  return m->forward(in.x, in.t, in.text, AttentionPlan{});
}

// A fresh tiny model (weights overwritten by the load).
WanDiT fresh() { return longshot::testing::tiny_dit(99); }

// Writes `ck` to `path` and loads it into a fresh model: the error's message, or "(no error)".
std::string load_error(const longshot::testing::Fp8Checkpoint& ck, const std::string& path) {
  ck.write(path);
  return error_of([&] { load_weights(*fresh(), path); });
}

}  // namespace

TEST(Fp8Weights, ForwardEqualsDequantisedModel) {
  Dir d;
  auto ref = longshot::testing::tiny_dit(5);
  const auto ck = fp8_checkpoint(*ref, 7, /*e5m2_in_odd_blocks=*/true);  // ref now holds the dequantised values
  ck.write(d.file("fp8.safetensors"));
  auto m = fresh();
  load_weights(*m, d.file("fp8.safetensors"));
  ASSERT_TRUE(m->has_stored_blocks());
  const auto want = run(ref);
  // fp32 on the CPU: the same values through the same ops, so exactly equal.
  EXPECT_TRUE(torch::equal(run(m), want));
  // Again: the text K/V come from the cache, the blocks are up-cast again.
  const int64_t hits = m->text_kv_cache().hits();
  EXPECT_TRUE(torch::equal(run(m), want));
  EXPECT_GT(m->text_kv_cache().hits(), hits);
  EXPECT_GE(m->stored_blocks()->built(), 2 * m->config().num_layers);
}

TEST(Fp8Weights, OneBytePerWeightBetweenUses) {
  Dir d;
  auto ref = longshot::testing::tiny_dit(5);
  const auto ck = fp8_checkpoint(*ref, 8);
  ck.write(d.file("fp8.safetensors"));
  auto m = fresh();
  load_weights(*m, d.file("fp8.safetensors"));
  run(m);  // after a forward the weights are bits again
  int64_t fp8_bytes = 0, fp8_elements = 0, linears = 0;
  for (const auto& item : m->named_parameters()) {
    const auto& p = item.value();
    if (item.key().rfind("blocks.", 0) != 0 || p.dim() != 2) continue;
    EXPECT_EQ(p.scalar_type(), torch::kByte) << item.key();
    fp8_bytes += int64_t(p.nbytes());
    fp8_elements += p.numel();
    ++linears;
  }
  EXPECT_EQ(linears, 10 * m->config().num_layers);  // self q k v o, cross q k v o, ffn up and down
  EXPECT_EQ(fp8_elements, ck.fp8_weights);
  EXPECT_EQ(fp8_bytes, fp8_elements);
  EXPECT_EQ(m->stored_blocks()->stored_bytes(), fp8_elements);
  EXPECT_EQ(m->stored_blocks()->fp8_tensors(), linears);
  // Training and saving need real weights: both refuse, saying why.
  EXPECT_THROW(save_weights(*m, d.file("out.safetensors")), ParameterError);
  const auto in = longshot::testing::tiny_inputs();
  const auto msg = error_of([&] { m->forward(in.x, in.t, in.text); });
  EXPECT_NE(msg.find("inference only"), std::string::npos) << msg;
}

TEST(Fp8Weights, ScaleOfWrongShapeIsNamed) {
  Dir d;
  auto ref = longshot::testing::tiny_dit(5);
  auto ck = fp8_checkpoint(*ref, 9);
  const std::string scale = "blocks.1.self_attn.k.scale_weight";
  ck.tensors[scale] = torch::full({4}, 0.5f);  // per-channel-ish: not ComfyUI's per-tensor scale
  const auto msg = load_error(ck, d.file("bad_scale.safetensors"));
  EXPECT_NE(msg.find(scale), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4]"), std::string::npos) << msg;
  EXPECT_THROW(load_weights(*fresh(), d.file("bad_scale.safetensors")), ShapeError);
  // A scale that is not a float.
  ck.tensors[scale] = torch::tensor(2, torch::kInt);
  const auto msg2 = load_error(ck, d.file("int_scale.safetensors"));
  EXPECT_NE(msg2.find(scale), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("I32"), std::string::npos) << msg2;
}

TEST(Fp8Weights, NonFloatWeightIsNamed) {
  Dir d;
  auto ref = longshot::testing::tiny_dit(5);
  auto ck = fp8_checkpoint(*ref, 10);
  const std::string key = "blocks.0.ffn.2.weight";
  ck.fp8.erase(key);
  ck.tensors[key] = ck.tensors[key].to(torch::kInt);  // same shape, integer dtype
  const auto msg = load_error(ck, d.file("int_weight.safetensors"));
  EXPECT_NE(msg.find("'" + key + "'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("I32"), std::string::npos) << msg;
  // NaN bits (e4m3fn 0x7f) are refused by name too.
  auto nan = fp8_checkpoint(*ref, 11);
  nan.tensors["blocks.2.cross_attn.o.weight"].view({-1})[3] = 0x7f;
  const auto msg2 = load_error(nan, d.file("nan.safetensors"));
  EXPECT_NE(msg2.find("blocks.2.cross_attn.o.weight"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("NaN"), std::string::npos) << msg2;
}

TEST(Fp8Weights, Bf16ComputeRoundsOnce) {
  // In bf16 each up-cast weight is the fp32 product decode × scale rounded once to bf16.
  Dir d;
  auto ref = longshot::testing::tiny_dit(5);
  const auto ck = fp8_checkpoint(*ref, 12);
  ck.write(d.file("fp8.safetensors"));
  auto m = fresh();
  load_weights(*m, d.file("fp8.safetensors"));
  m->place(torch::kCPU, torch::kBFloat16, /*offload=*/false);
  ref->to(torch::kBFloat16);
  torch::NoGradGuard no_grad;
  const auto in = longshot::testing::tiny_inputs();
  EXPECT_TRUE(torch::equal(m->forward(in.x, in.t, in.text, AttentionPlan{}), ref->forward(in.x, in.t, in.text, AttentionPlan{})));
  EXPECT_EQ(m->blocks[0]->as<WanBlockImpl>()->ffn->named_parameters()["0.weight"].scalar_type(), torch::kByte);
}

// The mask-aware adapter: a fresh one changes nothing, a trained one changes only sparse layers,
// its file round-trips and bad files are refused with the reason; attend()'s masked backend (the
// differentiable sparse path the adapter is trained through) equals the attention core's
// block-sparse result and passes gradients to the adapter.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/attention/attention.h"
#include "engine/attention/mask_policy.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/dit.h"
#include "engine/model/mask_adapter.h"

using namespace longshot;
using namespace longshot::model;

namespace {

WanDiT tiny_model() {
  WanDiT m(find_config("tiny"));
  m->init_random(1);
  m->eval();
  return m;
}

struct Inputs {
  torch::Tensor x, t, text;
};

Inputs inputs() {
  auto gen = at::detail::createCPUGenerator(3);
  return {torch::randn({1, 3, 4, 8, 8}, gen, torch::kFloat), torch::full({1}, 700.0),
          torch::randn({1, 5, 32}, gen, torch::kFloat)};
}

// A fresh adapter with B filled too, so its delta is not zero.
std::shared_ptr<MaskAdapter> busy_adapter(const DiTConfig& c) {
  auto ad = std::make_shared<MaskAdapter>(MaskAdapter::fresh(c, 4, 9));
  ad->mode = "radial";
  auto gen = at::detail::createCPUGenerator(11);
  for (auto& layer : ad->b)
    for (auto& t : layer) t = torch::randn(t.sizes(), gen, torch::kFloat) * 0.5;
  return ad;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("longshot_adapter_" + name)).string();
}

AttentionPlan sparse_control(attention::MaskPolicy& policy, bool use_adapter) {
  AttentionPlan ctl;
  ctl.policy = &policy;
  ctl.block_size = 16;  // the tiny input has 64 tokens: 4 blocks
  ctl.use_adapter = use_adapter;
  ctl.measure_time = false;
  return ctl;
}

TEST(MaskAdapter, FreshIsTheIdentityTrainedActsOnlyOnSparseLayers) {
  auto m = tiny_model();
  auto in = inputs();
  auto policy = attention::create_policy("radial", {{"keep_ratio", 0.5}});
  torch::NoGradGuard ng;
  auto run = [&](bool use_adapter, bool dense_step, int dense_first) {
    AttentionPlan ctl = sparse_control(*policy, use_adapter);
    ctl.dense_step = dense_step;
    ctl.dense_first_layers = dense_first;
    return m->forward(in.x, in.t, in.text, ctl);
  };
  const auto bare = run(false, false, 0);
  m->adapter = std::make_shared<MaskAdapter>(MaskAdapter::fresh(m->config(), 4, 9));
  EXPECT_TRUE(torch::allclose(run(true, false, 0), bare, 1e-6, 1e-6)) << "B = 0: a fresh adapter must change nothing";

  m->adapter = busy_adapter(m->config());
  const auto adapted = run(true, false, 0);
  EXPECT_GT((adapted - bare).abs().max().item<double>(), 1e-3) << "a non-zero adapter must act on sparse layers";
  EXPECT_TRUE(torch::equal(run(false, false, 0), bare)) << "use_adapter off: the base weights alone";
  // Dense steps and dense layers keep the base weights: with every layer dense nothing changes.
  const auto dense_bare = [&] {
    auto keep = m->adapter;
    m->adapter = nullptr;
    auto out = run(false, true, 0);
    m->adapter = keep;
    return out;
  }();
  EXPECT_TRUE(torch::equal(run(true, true, 0), dense_bare));
  const int layers = static_cast<int>(m->config().num_layers);
  EXPECT_TRUE(torch::equal(run(true, false, layers), run(false, false, layers)));
  // One dense layer first: still adapted in the others, but differently from all-sparse.
  const auto first_dense = run(true, false, 1);
  EXPECT_GT((first_dense - run(false, false, 1)).abs().max().item<double>(), 1e-3);
}

TEST(MaskAdapter, FileRoundTripAndRefusals) {
  const DiTConfig c = find_config("tiny");
  auto ad = busy_adapter(c);
  ad->params = "keep_ratio=0.2";
  ad->block_size = 64;
  ad->scale = 0.5;
  const std::string path = temp_path("roundtrip.safetensors");
  save_adapter(*ad, path, torch::kFloat);
  const MaskAdapter back = load_adapter(path, c);
  EXPECT_EQ(back.mode, "radial");
  EXPECT_EQ(back.params, "keep_ratio=0.2");
  EXPECT_EQ(back.block_size, 64);
  EXPECT_EQ(back.rank, 4);
  EXPECT_DOUBLE_EQ(back.scale, 0.5);
  ASSERT_EQ(back.a.size(), size_t(c.num_layers));
  for (size_t l = 0; l < back.a.size(); ++l) {
    for (int p = 0; p < 4; ++p) {
      EXPECT_TRUE(torch::equal(back.a[l][p], ad->a[l][p]));
      EXPECT_TRUE(torch::equal(back.b[l][p], ad->b[l][p]));
    }
  }
  const auto x = torch::randn({2, 5, c.dim});
  EXPECT_TRUE(torch::allclose(back.delta(1, MaskAdapter::V, x), ad->delta(1, MaskAdapter::V, x)));

  // Another config's name, a missing file, a plain weights file, a wrong shape, a missing tensor.
  DiTConfig other = c;
  other.name = "not-tiny";
  EXPECT_THROW(load_adapter(path, other), ParameterError);
  EXPECT_THROW(load_adapter(temp_path("missing.safetensors"), c), IoError);
  const std::string plain = temp_path("plain.safetensors");
  io::write_safetensors(plain, {{"w", torch::zeros({2, 2})}});
  EXPECT_THROW(load_adapter(plain, c), IoError);
  auto tensors = ad->named(torch::kFloat);
  const std::map<std::string, std::string> meta = {
      {"longshot.adapter.config", "tiny"}, {"longshot.adapter.mode", "radial"}, {"longshot.adapter.params", ""},
      {"longshot.adapter.block_size", "16"}, {"longshot.adapter.rank", "4"}, {"longshot.adapter.scale", "1"}};
  auto wrong = tensors;
  wrong["blocks.0.self_attn.k.lora_b"] = torch::zeros({c.dim + 1, 4});
  const std::string bad_shape = temp_path("bad_shape.safetensors");
  io::write_safetensors(bad_shape, wrong, meta);
  try {
    load_adapter(bad_shape, c);
    FAIL() << "a wrong shape must be refused";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.0.self_attn.k.lora_b"), std::string::npos) << e.what();
  }
  auto missing = tensors;
  missing.erase("blocks.1.self_attn.o.lora_a");
  const std::string bad_missing = temp_path("missing_tensor.safetensors");
  io::write_safetensors(bad_missing, missing, meta);
  EXPECT_THROW(load_adapter(bad_missing, c), IoError);
  EXPECT_THROW(MaskAdapter::fresh(c, 0, 1), ParameterError);
  for (const auto& p : {path, plain, bad_shape, bad_missing}) std::filesystem::remove(p);
}

TEST(MaskAdapter, MaskedAttentionMatchesTheCoreAndTrainsTheAdapter) {
  auto gen = at::detail::createCPUGenerator(5);
  const int64_t B = 1, H = 2, N = 72, D = 16;  // 72 tokens, block 16: a ragged last block
  auto q = torch::randn({B, H, N, D}, gen, torch::kFloat), k = torch::randn({B, H, N, D}, gen, torch::kFloat),
       v = torch::randn({B, H, N, D}, gen, torch::kFloat);
  const int64_t nb = attention::BlockMask::blocks_for(N, 16);
  std::vector<uint8_t> keep(size_t(H * nb * nb), 0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t j = 0; j < nb; ++j) keep[size_t((h * nb + i) * nb + j)] = (i == j || (i + j + h) % 3 == 0) ? 1 : 0;
  const auto mask = attention::BlockMask::from_dense(keep, N, 16, H);
  const auto core = attention::sparse_attention(q, k, v, mask, attention::Backend::Reference);
  attention::AttendOptions masked;
  masked.backend = attention::Backend::Masked;
  const auto mine = attention::attend(q, k, v, {&mask}, masked);
  EXPECT_TRUE(torch::allclose(mine, core, 1e-4, 1e-5)) << (mine - core).abs().max().item<double>();
  EXPECT_THROW(attention::attend(q.narrow(2, 0, 64), k.narrow(2, 0, 64), v.narrow(2, 0, 64), {&mask}, masked), ShapeError);
  // A row that keeps no key block gives zeros (as the core does), not NaN.
  auto sparse_keep = keep;
  for (int64_t j = 0; j < nb; ++j) sparse_keep[size_t((1 * nb + 2) * nb + j)] = 0;  // head 1, query block 2
  const auto holed = attention::BlockMask::from_dense(sparse_keep, N, 16, H);
  const auto holed_out = attention::attend(q, k, v, {&holed}, masked);
  EXPECT_FALSE(holed_out.isnan().any().item<bool>());
  EXPECT_EQ(holed_out[0][1].narrow(0, 32, 16).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::allclose(holed_out, attention::sparse_attention(q, k, v, holed, attention::Backend::Reference), 1e-4,
                              1e-5));

  // Through the model: the adapter's B factors receive gradients on the differentiable sparse path.
  auto m = tiny_model();
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  auto ad = std::make_shared<MaskAdapter>(MaskAdapter::fresh(m->config(), 4, 9));
  for (auto& t : ad->tensors()) t.set_requires_grad(true);
  m->adapter = ad;
  auto policy = attention::create_policy("radial", {{"keep_ratio", 0.5}});
  AttentionPlan ctl = sparse_control(*policy, true);
  ctl.differentiable = true;
  auto in = inputs();
  m->forward(in.x, in.t, in.text, ctl).pow(2).mean().backward();
  const auto& grad = ad->b[0][MaskAdapter::Q].grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
}

}  // namespace

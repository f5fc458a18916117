// Proxy (b): Q/K/V captured from the built-in model's layers per motion regime, on tiny clips —
// shapes and order, determinism, refusals, and a calibration run on the captures.
#include <gtest/gtest.h>

#include <cstdio>

#include <torch/torch.h>

#include "engine/calibrate/calibration.h"
#include "engine/common/error.h"
#include "engine/pipeline/qkv_capture.h"
#include "tests/common/temp_dir.h"
#include "tests/common/tiny_model_folder.h"

using namespace longshot;

namespace {

pipeline::CaptureSpec tiny_spec() {
  pipeline::CaptureSpec s;
  s.frames = 16;  // 8 latent frames of 4 × 4 tokens at 16 px: 128 tokens
  s.width = 16;
  s.height = 16;
  s.steps = 4;
  s.capture_step = 2;
  s.layers = {1, 3};
  s.prompts_per_regime = 1;
  return s;
}

// Mean cosine similarity of a token's key with the same position `lag` latent frames later.
double lag_similarity(const torch::Tensor& x, const attention::TokenGrid& g, int64_t lag) {
  const int64_t P = g.frame_size();
  auto a = x.narrow(2, 0, (g.t - lag) * P), b = x.narrow(2, lag * P, (g.t - lag) * P);
  return torch::cosine_similarity(a, b, -1).mean().item<double>();
}

}  // namespace

TEST(QkvCapture, StacksPromptsAndLayersAsHeadsDeterministically) {
  const std::vector<calibrate::Regime> regimes = {{"static", 0}, {"fast", 0}};
  const auto a = pipeline::capture_regime_proxies(tiny_spec(), regimes);
  ASSERT_EQ(a.size(), 2u);
  for (const auto& c : a) {
    EXPECT_EQ(c.grid.to_string(), "8x4x4");
    EXPECT_EQ(c.qkv.q.sizes(), (std::vector<int64_t>{1, 2 * 3, 128, 64}));  // 1 prompt × 2 layers × 3 heads
    EXPECT_EQ(c.qkv.v.sizes(), c.qkv.q.sizes());
    EXPECT_TRUE(torch::isfinite(c.qkv.k).all().item<bool>());
    EXPECT_NE(c.source.find("layers 1 3"), std::string::npos) << c.source;
    std::printf("%s: key similarity 1 / 4 latent frames apart %.3f / %.3f (%s)\n", c.regime.name.c_str(),
                lag_similarity(c.qkv.k, c.grid, 1), lag_similarity(c.qkv.k, c.grid, 4), c.source.c_str());
  }
  EXPECT_FALSE(torch::equal(a[0].qkv.q, a[1].qkv.q));  // other prompts, other features
  const auto b = pipeline::capture_regime_proxies(tiny_spec(), regimes);
  EXPECT_TRUE(torch::equal(a[0].qkv.q, b[0].qkv.q));
  EXPECT_TRUE(torch::equal(a[1].qkv.v, b[1].qkv.v));
}

TEST(QkvCapture, RefusesBadSpecs) {
  const std::vector<calibrate::Regime> fast = {{"fast", 0}};
  auto s = tiny_spec();
  s.capture_step = 4;
  EXPECT_THROW(pipeline::capture_regime_proxies(s, fast), ParameterError);
  s = tiny_spec();
  s.layers = {4};
  EXPECT_THROW(pipeline::capture_regime_proxies(s, fast), ParameterError);
  s = tiny_spec();
  s.width = 18;
  EXPECT_THROW(pipeline::capture_regime_proxies(s, fast), ParameterError);
  EXPECT_THROW(pipeline::capture_regime_proxies(tiny_spec(), {{"sideways", 0}}), ParameterError);
  EXPECT_THROW(pipeline::capture_regime_proxies(tiny_spec(), {}), ParameterError);
}

TEST(QkvCapture, CalibratesOnTheCaptures) {
  const auto proxies = pipeline::capture_regime_proxies(tiny_spec(), {{"slow", 0}, {"fast", 0}});
  calibrate::ObjectiveSpec o;
  o.mode = "dynamicrad";
  o.target_sparsity = 0.5;  // 8 latent frames: the mode's floor is 1 − 22/64 = 66 %
  calibrate::TpeOptions opts;
  opts.trials = 6;
  opts.startup_trials = 4;
  const auto table = calibrate::calibrate(o, proxies, 16, calibrate::search_box("dynamicrad"), opts);
  ASSERT_EQ(table.regimes.size(), 2u);
  EXPECT_EQ(table.proxy_kind, "model");
  for (const auto& r : table.regimes) {
    double lowest = 1e300;
    for (const auto& t : r.search.trace) lowest = std::min(lowest, t.outcome.loss);
    EXPECT_DOUBLE_EQ(r.best.loss, lowest);  // the table keeps the best trial, rescored the same
    EXPECT_EQ(r.search.trace.size(), 6u);
    EXPECT_GT(r.best.nmse, 0.0);
    EXPECT_LT(r.best.nmse, 1.0);
    std::printf("%s: best loss %.3f (nmse %.4f, sparsity %.3f), defaults %.3f (nmse %.4f, sparsity %.3f)\n",
                r.regime.name.c_str(), r.best.loss, r.best.nmse, r.best.sparsity, r.defaults.loss, r.defaults.nmse,
                r.defaults.sparsity);
  }
}

// Proxy (b) on a Wan folder (issue 25): its umT5 reads the labelled prompts (a Wan model has no
// world captions), the first N of each regime in file order.
TEST(QkvCapture, CapturesAWanFolderOnLabelledPrompts) {
  longshot::testing::TempDir d("longshot_capture_wan");
  const auto files = longshot::testing::write_tiny_model(d.file("wan-tiny"), longshot::testing::TinyLayout::Diffusers);
  if (files.tokenizer.empty()) GTEST_SKIP() << "spm_train is not installed (packaging/setup.sh installs it)";
  pipeline::CaptureSpec s;
  s.model = files.root;
  s.frames = 5;  // 2 latent frames
  s.width = 32;
  s.height = 32;  // 2 x 2 tokens per frame (VAE stride 8, patch 2)
  s.steps = 2;
  s.capture_step = 1;
  s.layers = {1};
  s.prompts_per_regime = 2;
  s.labelled = {{"a still lake at dawn", "static"}, {"a car races past", "fast"}, {"a quiet room", "static"},
                {"a dog sprints", "fast"}, {"a third still one, not used", "static"}};
  std::vector<std::string> seen;
  const auto proxies = pipeline::capture_regime_proxies(s, {{"static", 0}, {"fast", 0}},
                                                        [&](const std::string&, const std::string& p) { seen.push_back(p); });
  ASSERT_EQ(proxies.size(), 2u);
  EXPECT_EQ(seen, (std::vector<std::string>{"a still lake at dawn", "a quiet room", "a car races past", "a dog sprints"}));
  for (const auto& c : proxies) {
    EXPECT_EQ(c.grid.to_string(), "2x2x2");
    EXPECT_EQ(c.qkv.q.sizes(), (std::vector<int64_t>{1, 2 * 1 * 2, 8, 64}));  // 2 prompts x 1 layer x 2 heads
    EXPECT_TRUE(torch::isfinite(c.qkv.q).all().item<bool>());
  }
  EXPECT_FALSE(torch::equal(proxies[0].qkv.q, proxies[1].qkv.q));
  s.labelled = {{"a still lake", "static"}};
  EXPECT_THROW(pipeline::capture_regime_proxies(s, {{"fast", 0}}), ParameterError);
}

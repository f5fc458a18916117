// The semantic motion router on synthetic token embeddings and on the world's captions: pooling,
// training that separates regimes and is deterministic, the exact token explanation, the labels'
// link to ground-truth motion, and the file's round trip and refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <torch/torch.h>

#include "engine/calibrate/router.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::calibrate;

namespace {

// Prompts as bags of "words": each word a fixed random vector; a regime's prompts contain its key
// word among shared filler words, then zero padding rows (as the text encoders pad).
struct Bags {
  std::vector<torch::Tensor> embeddings;
  std::vector<std::string> labels;
};

Bags make_bags(int per_regime, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(1234);
  const auto vocab = torch::randn({8, 16}, gen, torch::kFloat32);  // words 0..2 key words, 3..7 filler
  auto pick = at::detail::createCPUGenerator(seed);
  const std::vector<std::string> regimes = {"static", "slow", "fast"};
  Bags b;
  for (int i = 0; i < per_regime; ++i)
    for (int c = 0; c < 3; ++c) {
      const int64_t n = 4 + torch::randint(5, {1}, pick).item<int64_t>();
      auto rows = torch::zeros({12, 16});
      for (int64_t k = 0; k < n; ++k) rows[k] = vocab[3 + torch::randint(5, {1}, pick).item<int64_t>()];
      rows[torch::randint(n, {1}, pick).item<int64_t>()] = vocab[c];
      b.embeddings.push_back(rows);
      b.labels.push_back(regimes[size_t(c)]);
    }
  return b;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("longshot_router_" + name)).string();
}

}  // namespace

TEST(Router, PoolsOnlyNonZeroRowsAndRefusesEmptyPrompts) {
  auto rows = torch::zeros({5, 3});
  rows[0] = torch::tensor({1.0, 2.0, 3.0});
  rows[1] = torch::tensor({3.0, 0.0, -1.0});
  const auto p = pool_embedding(rows);
  EXPECT_TRUE(torch::allclose(p, torch::tensor({2.0, 1.0, 1.0}, torch::kDouble)));
  EXPECT_THROW(pool_embedding(torch::zeros({4, 3})), ShapeError);
  EXPECT_THROW(pool_embedding(torch::zeros({3})), ShapeError);
}

TEST(Router, LearnsSeparableRegimesDeterministicallyAndGeneralises) {
  const Bags train = make_bags(20, 1), held = make_bags(20, 2);
  const MotionRouter a = train_router(train.embeddings, train.labels, {"static", "slow", "fast"}, "synthetic");
  const MotionRouter b = train_router(train.embeddings, train.labels, {"static", "slow", "fast"}, "synthetic");
  EXPECT_EQ(a.weight, b.weight);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_DOUBLE_EQ(a.train_accuracy, 1.0);
  EXPECT_GE(router_accuracy(a, held.embeddings, held.labels), 0.95);
  // Shuffled labels carry no signal: held-out accuracy falls to chance.
  std::vector<std::string> shuffled = train.labels;
  std::rotate(shuffled.begin(), shuffled.begin() + 1, shuffled.end());
  const MotionRouter noise = train_router(train.embeddings, shuffled, {"static", "slow", "fast"}, "synthetic");
  EXPECT_LT(router_accuracy(noise, held.embeddings, held.labels), 0.6);
}

TEST(Router, ExplanationNamesTheKeyWordAndProbabilitiesSumToOne) {
  const Bags train = make_bags(20, 1);
  const MotionRouter r = train_router(train.embeddings, train.labels, {"static", "slow", "fast"}, "synthetic");
  const Bags one = make_bags(1, 7);
  for (size_t i = 0; i < one.embeddings.size(); ++i) {
    const auto& e = one.embeddings[i];
    std::vector<std::string> names;
    for (int64_t k = 0; k < e.size(0); ++k) names.push_back("w" + std::to_string(k));
    const RouteDecision d = route(r, e, names);
    EXPECT_EQ(d.regime, one.labels[i]);
    ASSERT_FALSE(d.top_tokens.empty());
    // The key word is the token pushing most towards the regime (its row is the one that differs).
    const auto key = torch::nonzero((e - e[d.top_tokens[0].position]).abs().sum(1) == 0).size(0);
    EXPECT_EQ(key, 1) << d.reason;  // a unique row: the key word, not a repeated filler
    EXPECT_NE(d.reason.find("'w" + std::to_string(d.top_tokens[0].position) + "'"), std::string::npos) << d.reason;
    double p_best = 0, p_second = 0, total = 0;
    for (const auto& [name, p] : d.probabilities) {
      total += p;
      if (name == d.regime) p_best = p;
      else p_second = std::max(p_second, p);
    }
    EXPECT_GT(p_best, p_second);
    EXPECT_DOUBLE_EQ(d.confidence, p_best);
    // Shares are per token of the margin log(p_best / p_second); the key word's is positive.
    EXPECT_GT(d.top_tokens[0].logit, 0.0);
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

TEST(Router, RefusesBadTrainingSetsAndWidths) {
  const Bags train = make_bags(3, 1);
  const std::vector<std::string> regimes = {"static", "slow", "fast"};
  EXPECT_THROW(train_router({}, {}, regimes, "m"), ParameterError);
  EXPECT_THROW(train_router(train.embeddings, {"static"}, regimes, "m"), ParameterError);
  auto bad = train.labels;
  bad[0] = "sideways";
  EXPECT_THROW(train_router(train.embeddings, bad, regimes, "m"), ParameterError);
  std::vector<std::string> two = {"static", "slow", "fast", "warp"};
  EXPECT_THROW(train_router(train.embeddings, train.labels, two, "m"), ParameterError);  // 'warp' has no example
  const MotionRouter r = train_router(train.embeddings, train.labels, regimes, "m");
  EXPECT_THROW(route(r, torch::ones({4, 17})), ShapeError);
}

TEST(Router, FileRoundTripsAndRefusesCorruptFiles) {
  const Bags train = make_bags(10, 1);
  const MotionRouter r = train_router(train.embeddings, train.labels, {"static", "slow", "fast"}, "synthetic");
  const std::string path = temp_path("ok.json");
  write_router(r, path);
  const MotionRouter back = read_router(path);
  EXPECT_EQ(back.regimes, r.regimes);
  EXPECT_EQ(back.model, "synthetic");
  for (size_t i = 0; i < train.embeddings.size(); ++i)
    EXPECT_EQ(route(back, train.embeddings[i]).reason, route(r, train.embeddings[i]).reason);

  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto expect_refused = [&](const std::string& name, const std::string& content, const std::string& needle) {
    const std::string p = temp_path(name);
    std::ofstream(p) << content;
    try {
      read_router(p);
      ADD_FAILURE() << name << " was accepted";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_refused("trunc.json", text.substr(0, text.size() / 2), "not valid JSON");
  expect_refused("other.json", R"({"format": "longshot-calibration", "version": 1})", "not a longshot-router");
  std::string v2 = text;
  v2.replace(v2.find("\"version\":1"), 11, "\"version\":2");
  expect_refused("v2.json", v2, "version 2");
  std::string short_bias = text;
  const auto at = short_bias.find("\"bias\":[");
  short_bias.replace(at, 8, "\"bias\":[0.5,");
  expect_refused("bias.json", short_bias, "'bias'");
  EXPECT_THROW(read_router(temp_path("missing.json")), IoError);
}

TEST(Router, WorldLabelsFollowGroundTruthMotion) {
  // The labels come from the captions; ground truth says how much the scene moves per frame: the
  // mean centre speed of the objects (a pan moves them all) must order static < slow < fast.
  const auto prompts = world_prompts(5, 20);
  ASSERT_EQ(prompts.size(), 60u);
  std::map<std::string, double> speed, count;
  for (const auto& p : prompts) {
    const auto info = data::parse_caption(p.prompt);
    ASSERT_TRUE(info) << p.prompt;
    EXPECT_EQ(world_regime(*info), p.regime) << p.prompt;
    const auto spec = data::spec_for_caption(*info, 11);
    auto sp = spec;
    if (info->pan != data::Pan::None) sp.pan_speed = 0.014;
    const auto traj = data::simulate(sp, 24, 64, 64);
    double s = 0;
    for (size_t t = 1; t < traj.size(); ++t)
      for (size_t o = 0; o < traj[t].size(); ++o) {
        double dx = std::abs(traj[t][o].x - traj[t - 1][o].x);
        dx = std::min(dx, 64.0 - dx);  // a panning scene wraps around
        s += std::hypot(dx, traj[t][o].y - traj[t - 1][o].y) / double(traj[t].size() * (traj.size() - 1));
      }
    speed[p.regime] += s;
    count[p.regime] += 1;
  }
  for (auto& [k, v] : speed) v /= count[k];
  EXPECT_LT(speed["static"], 0.05) << "static " << speed["static"];
  EXPECT_GT(speed["slow"], speed["static"] + 0.3);
  EXPECT_GT(speed["fast"], speed["slow"] * 1.3) << "slow " << speed["slow"] << " fast " << speed["fast"];
  std::printf("ground-truth mean object speed (px/frame at 64 px): static %.3f, slow %.3f, fast %.3f\n", speed["static"],
              speed["slow"], speed["fast"]);
}

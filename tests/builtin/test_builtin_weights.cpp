// The shipped built-in weights: they load into the longshot-builtin config (DiT and text encoder,
// every tensor present with the config's shape) and a short generation through the pipeline gives
// a finite video whose background colour matches the prompt. Built by app/train/CMakeLists.txt
// (it needs longshot_engine, which the eval area does not link).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "engine/data/world.h"
#include "engine/eval/metrics.h"
#include "engine/model/builtin_model.h"
#include "engine/model/conditioning_impl.h"
#include "engine/model/weights.h"
#include "engine/pipeline/run_job.h"

namespace longshot {
namespace {

// Runs one job on this thread; a failed job fails the test (and returns null).
VideoPtr generate(const pipeline::GenerationRequest& r) {
  VideoPtr video;
  std::string failure;
  pipeline::ModelCache cache;
  pipeline::JobContext ctx;
  ctx.cache = &cache;
  ctx.publish = [&](pipeline::Event e) {
    if (auto* f = std::get_if<pipeline::JobFinished>(&e)) video = f->video;
    if (auto* f = std::get_if<pipeline::JobFailed>(&e)) failure = f->message;
  };
  pipeline::run_job(r, ctx);
  EXPECT_TRUE(failure.empty()) << failure;
  return video;
}

// Fidelity check of the sparsity-aware variant, short to stay quick on CPU: 4 steps at guidance 1
// (one forward a step) part less than the 20 guided steps of the eval table (there: 29-32 dB), so
// the floor is higher; measured when written: 47.8 dB, and the default weights 27.2 dB.
constexpr int kFidelitySteps = 4;
constexpr double kFidelityFloorDb = 35.0;

// The built-in model on one caption of the training world, without previews or recall estimates.
pipeline::GenerationRequest green_square_request(int frames, int size, int steps, double guidance) {
  pipeline::GenerationRequest r;
  r.prompt = "a large green square grows and shrinks on a black background";
  r.model = model::kBuiltinName;
  r.frames = frames;
  r.width = r.height = size;
  r.steps = steps;
  r.guidance = guidance;
  r.shift = 3.0;
  r.previews = false;
  r.measure_recall = false;
  return r;
}

TEST(BuiltinWeights, LoadIntoTheConfig) {
  const std::string path = model::builtin_weights_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no shipped weights at " << path;
  const auto config = model::find_config(model::kBuiltinName);
  EXPECT_EQ(model::infer_config(path).name, model::kBuiltinName);
  model::WanDiT dit(config);
  ASSERT_NO_THROW(model::load_weights(*dit, path));
  auto encoder = model::make_text_encoder(config);
  const auto emb = encoder->encode("a small red circle bounces left to right on a black background");
  ASSERT_EQ(emb.dim(), 3);
  EXPECT_EQ(emb.size(2), config.text_dim);
  EXPECT_TRUE(torch::isfinite(emb).all().item<bool>());
  EXPECT_LE(std::filesystem::file_size(path) + std::filesystem::file_size(model::builtin_text_path(path)), 15u << 20);
}

TEST(BuiltinWeights, ShortGenerationKeepsThePromptedBackground) {
  if (!std::filesystem::exists(model::builtin_weights_path())) GTEST_SKIP() << "no shipped weights";
  const auto r = green_square_request(8, 32, 4, 1.0);
  const VideoPtr video = generate(r);
  ASSERT_TRUE(video);
  // The mean colour is near black: the model has learned the caption's background.
  double mean = 0;
  for (uint8_t b : video->rgb) mean += b;
  mean /= static_cast<double>(video->rgb.size());
  EXPECT_LT(mean, 60.0);
}


// The acceptance check of the shipped weights: a generation at the training size (fewer steps, to
// stay quick on CPU) shows the prompted object — present in most frames at about the named size.
TEST(BuiltinWeights, GenerationShowsThePromptedObject) {
  if (!std::filesystem::exists(model::builtin_weights_path())) GTEST_SKIP() << "no shipped weights";
  const auto r = green_square_request(model::kBuiltinFrames, model::kBuiltinSize, 8, 3.0);
  const VideoPtr video = generate(r);
  ASSERT_TRUE(video);
  const auto a = eval::prompt_adherence(*video, r.prompt);
  std::printf("adherence %.1f%% (presence %.0f%%, size %.0f%%, motion %.0f%%)\n", 100 * a.accuracy, 100 * a.presence,
              100 * a.size, 100 * a.motion);
  EXPECT_GE(a.presence, 0.8);
  EXPECT_GE(a.size, 0.5);
  EXPECT_GE(a.accuracy, 0.5);
}

// longshot-builtin-sparse, the sparsity-aware fine-tune: under radial at 82 % block sparsity its
// video stays close to its own dense video, and much closer than the default weights' do.
TEST(BuiltinWeights, SparseVariantKeepsRadialNearDense) {
  for (const char* name : {model::kBuiltinName, model::kBuiltinSparseName}) {
    if (!std::filesystem::exists(model::builtin_weights_path(name))) GTEST_SKIP() << "no shipped weights for " << name;
  }
  EXPECT_EQ(model::infer_config(model::builtin_weights_path(model::kBuiltinSparseName)).name, model::kBuiltinSparseName);
  auto fidelity = [](const char* name) {
    auto r = green_square_request(model::kBuiltinFrames, model::kBuiltinSize, kFidelitySteps, 1.0);
    r.prompt = "a small red circle bounces left to right on a dark blue background";
    r.model = name;
    const VideoPtr dense = generate(r);
    r.attention.mode = "radial";
    r.attention.params = {{"keep_ratio", 0.18}};
    r.attention.adapter = "none";
    const VideoPtr radial = generate(r);
    EXPECT_TRUE(dense && radial);
    const double db = dense && radial ? eval::psnr(*radial, *dense) : 0.0;
    std::printf("%s: radial (keep 0.18) vs dense %.2f dB\n", name, db);
    return db;
  };
  const double base = fidelity(model::kBuiltinName), tuned = fidelity(model::kBuiltinSparseName);
  EXPECT_GE(tuned, kFidelityFloorDb);
  EXPECT_GE(tuned, base + 4.0);
}

}  // namespace
}  // namespace longshot

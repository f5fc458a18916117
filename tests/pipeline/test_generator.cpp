// The Generator on the tiny model: the event sequence, determinism, sparse modes with statistics,
// a mode change between steps, cancel within a step, failures as JobFailed, request validation.
#include <gtest/gtest.h>

#include <chrono>

#include <filesystem>

#include "engine/common/error.h"
#include "engine/model/dit_config.h"
#include "engine/model/mask_adapter.h"
#include "engine/pipeline/generator.h"
#include "engine/pipeline/run_job.h"
#include "tests/common/job_events.h"

using namespace longshot;
using namespace longshot::pipeline;

namespace {

GenerationRequest small_request() {
  GenerationRequest r;
  r.prompt = "a red ball bouncing";
  r.model = "tiny";
  r.frames = 4;
  r.width = 16;
  r.height = 16;
  r.steps = 2;
  r.guidance = 3.0;
  r.shift = 3.0;
  r.seed = 7;
  r.device = "cpu";
  r.attention.block_size = 32;  // 4×8×8 = 256 tokens → 8 blocks
  return r;
}

// Collects events of one job until it ends (finished, failed or cancelled) or 60 s pass.
std::vector<Event> run_to_end(Generator& g, const std::function<void(const Event&)>& on_event = {}) {
  return longshot::testing::events_until_job_end(g, std::chrono::seconds(60), on_event);
}

template <class T>
std::vector<T> of(const std::vector<Event>& events) {
  std::vector<T> out;
  for (const auto& e : events)
    if (auto* p = std::get_if<T>(&e)) out.push_back(*p);
  return out;
}

}  // namespace

TEST(Generator, EventSequenceAndOutputs) {
  Generator g;
  const auto id = g.submit(small_request());
  const auto ev = run_to_end(g);
  ASSERT_FALSE(ev.empty());
  ASSERT_TRUE(std::holds_alternative<JobStarted>(ev.front()));
  const auto started = std::get<JobStarted>(ev.front());
  EXPECT_EQ(started.job_id, id);
  EXPECT_EQ(started.grid, (attention::TokenGrid{4, 8, 8}));
  EXPECT_EQ(started.num_layers, 3);
  EXPECT_EQ(started.num_heads, 2);
  const auto steps = of<StepFinished>(ev);
  ASSERT_EQ(steps.size(), 2u);
  for (const auto& s : steps) {
    EXPECT_EQ(s.sparsity.size(), 6u);
    EXPECT_GT(s.step_ms, 0.0);
    EXPECT_GT(s.attention_ms, 0.0);
    EXPECT_LE(s.attention_ms, s.step_ms);
    ASSERT_TRUE(s.preview);
    EXPECT_EQ(s.preview->frames, 4);
    ASSERT_TRUE(s.heatmap);
    double sum = 0;
    for (float v : s.heatmap->values) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-3);
    EXPECT_EQ(s.heatmap->query_token, started.grid.index(2, 4, 4));
    EXPECT_NEAR(s.recall_estimate, 1.0, 1e-5);  // dense mode keeps all mass
  }
  EXPECT_EQ(steps[1].eta_ms, 0.0);
  ASSERT_EQ(of<FramesDecoded>(ev).size(), 1u);
  const auto done = of<JobFinished>(ev);
  ASSERT_EQ(done.size(), 1u);
  ASSERT_TRUE(done[0].video);
  EXPECT_EQ(done[0].video->frames, 4);
  EXPECT_EQ(done[0].video->width, 16);
  EXPECT_EQ(done[0].video->height, 16);
  EXPECT_EQ(done[0].video->rgb.size(), 4u * 16 * 16 * 3);
}

TEST(Generator, SameSeedSameVideo) {
  Generator g;
  auto r = small_request();
  g.submit(r);
  const auto a = of<JobFinished>(run_to_end(g));
  g.submit(r);
  const auto b = of<JobFinished>(run_to_end(g));
  r.seed = 8;
  g.submit(r);
  const auto c = of<JobFinished>(run_to_end(g));
  ASSERT_TRUE(a.size() == 1 && b.size() == 1 && c.size() == 1);
  EXPECT_EQ(a[0].video->rgb, b[0].video->rgb);
  EXPECT_NE(a[0].video->rgb, c[0].video->rgb);
}

TEST(Generator, SparseModeReportsMasksAndChangesBetweenSteps) {
  Generator g;
  auto r = small_request();
  r.steps = 4;
  r.attention.mode = "radial";
  r.attention.params = {{"keep_ratio", 0.4}};
  r.attention.dense_warmup_steps = 1;
  r.record_masks = true;
  g.submit(r);
  bool changed = false;
  const auto ev = run_to_end(g, [&](const Event& e) {
    if (auto* s = std::get_if<StepFinished>(&e); s && s->step == 1 && !changed) {
      AttentionSettings next = r.attention;
      next.mode = "dense";
      next.params.clear();
      g.set_attention(next);
      changed = true;
    }
  });
  const auto steps = of<StepFinished>(ev);
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_TRUE(steps[0].dense_step);
  EXPECT_EQ(steps[0].mean_sparsity, 0.0);
  EXPECT_FALSE(steps[1].dense_step);
  EXPECT_EQ(steps[1].mode, "radial");
  EXPECT_GT(steps[1].mean_sparsity, 0.2);
  ASSERT_TRUE(steps[1].mask);
  EXPECT_EQ(steps[1].layer_masks.size(), 3u);
  EXPECT_GT(steps[1].recall_estimate, 0.0);
  EXPECT_LT(steps[1].recall_estimate, 1.0);
  EXPECT_FALSE(steps[1].mode_changed);
  // The change lands at the next step boundary (step 2 or, if the worker was already past it, 3).
  int first_dense = -1;
  for (const auto& s : steps)
    if (s.step >= 2 && s.mode == "dense" && first_dense < 0) first_dense = s.step;
  ASSERT_GE(first_dense, 2);
  EXPECT_TRUE(steps[size_t(first_dense)].mode_changed);
  EXPECT_EQ(steps[size_t(first_dense)].mean_sparsity, 0.0);
  EXPECT_EQ(of<JobFinished>(ev).size(), 1u);
  EXPECT_THROW(g.set_attention(AttentionSettings{"no-such-mode"}), ParameterError);
}

TEST(Generator, InspectTargetFollowsTheRunningJob) {
  Generator g;
  auto r = small_request();
  r.steps = 4;
  r.inspect_query = 0;  // token (0, 0, 0)
  g.submit(r);
  const int64_t picked = 4 * 8 * 8 - 1;  // the last token of the 4x8x8 grid
  bool sent = false;
  const auto ev = run_to_end(g, [&](const Event& e) {
    if (auto* s = std::get_if<StepFinished>(&e); s && s->step == 0 && !sent) {
      g.set_inspect({0, 1, picked});
      sent = true;
    }
  });
  const auto steps = of<StepFinished>(ev);
  ASSERT_EQ(steps.size(), 4u);
  ASSERT_TRUE(steps[0].heatmap);
  EXPECT_EQ(steps[0].heatmap->query_token, 0);
  EXPECT_EQ(steps[0].heatmap->head, 0);
  // Applied at a step boundary after the request: the last step surely has it.
  ASSERT_TRUE(steps[3].heatmap);
  EXPECT_EQ(steps[3].heatmap->query_token, picked);
  EXPECT_EQ(steps[3].heatmap->head, 1);
  EXPECT_EQ(steps[3].mask_head, 1);
}

TEST(Generator, CancelStopsWithinAStep) {
  Generator g;
  auto r = small_request();
  r.steps = 200;
  g.submit(r);
  int seen_steps = 0;
  const auto ev = run_to_end(g, [&](const Event& e) {
    if (std::holds_alternative<StepFinished>(e) && ++seen_steps == 1) g.cancel();
  });
  const auto cancelled = of<JobCancelled>(ev);
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_GE(cancelled[0].completed_steps, 1);
  EXPECT_LE(cancelled[0].completed_steps, 3);
  EXPECT_TRUE(of<JobFinished>(ev).empty());
  EXPECT_TRUE(of<FramesDecoded>(ev).empty());
}

TEST(Generator, FailuresBecomeJobFailed) {
  Generator g;
  auto r = small_request();
  r.model = "no-such-model";
  g.submit(r);
  auto failed = of<JobFailed>(run_to_end(g));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].message.find("no-such-model"), std::string::npos) << failed[0].message;
  r = small_request();
  r.width = 15;  // not a multiple of the patch
  g.submit(r);
  failed = of<JobFailed>(run_to_end(g));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].message.find("width"), std::string::npos) << failed[0].message;
}

// A mask adapter given by file: the job names it, sparse modes change, dense does not (the adapter
// acts only in sparse layers); --adapter none and a missing file.
TEST(Generator, MaskAdapterFileAppliesToSparseLayersOnly) {
  auto ad = model::MaskAdapter::fresh(model::find_config("tiny"), 4, 2);
  ad.mode = "radial";
  ad.block_size = 32;
  for (auto& layer : ad.b)
    for (auto& t : layer) t = torch::full(t.sizes(), 0.2);
  const std::string path = (std::filesystem::temp_directory_path() / "longshot_test_adapter.safetensors").string();
  model::save_adapter(ad, path, torch::kFloat);

  Generator g;
  auto run = [&](const std::string& mode, const std::string& adapter, int dense_steps = 0) {
    auto r = small_request();
    r.attention.mode = mode;
    r.attention.params = mode == "radial" ? attention::ParamValues{{"keep_ratio", 0.4}} : attention::ParamValues{};
    r.attention.adapter = adapter;
    r.attention.dense_warmup_steps = dense_steps;
    g.submit(r);
    return run_to_end(g);
  };
  const auto with = run("radial", path), without = run("radial", "none");
  ASSERT_EQ(of<JobStarted>(with).size(), 1u);
  EXPECT_EQ(of<JobStarted>(with)[0].adapter, path);
  EXPECT_EQ(of<JobStarted>(without)[0].adapter, "");
  ASSERT_EQ(of<JobFinished>(with).size(), 1u);
  ASSERT_EQ(of<JobFinished>(without).size(), 1u);
  EXPECT_NE(of<JobFinished>(with)[0].video->rgb, of<JobFinished>(without)[0].video->rgb);
  // Every step a dense warm-up step: the adapter is loaded but no layer runs the mask.
  const int all = small_request().steps;
  const auto warm_with = of<JobFinished>(run("radial", path, all)), warm_without = of<JobFinished>(run("radial", "none", all));
  ASSERT_TRUE(warm_with.size() == 1 && warm_without.size() == 1);
  EXPECT_EQ(warm_with[0].video->rgb, warm_without[0].video->rgb);
  // One dense step, then the mask: the adapter acts again.
  EXPECT_NE(of<JobFinished>(run("radial", path, 1))[0].video->rgb, of<JobFinished>(run("radial", "none", 1))[0].video->rgb);

  const auto failed = of<JobFailed>(run("radial", path + ".missing"));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].message.find("adapter"), std::string::npos) << failed[0].message;
  std::filesystem::remove(path);
}

TEST(Generator, SubmitValidates) {
  Generator g;
  auto r = small_request();
  r.frames = 0;
  EXPECT_THROW(g.submit(r), ParameterError);
  r = small_request();
  r.attention.mode = "bogus";
  EXPECT_THROW(g.submit(r), ParameterError);
  r = small_request();
  r.attention.params = {{"no_such_param", 1.0}};
  EXPECT_THROW(g.submit(r), ParameterError);
  // CUDA graphs asked for on the CPU: refused up front, naming the option (not a silent no-op).
  r = small_request();
  r.cuda_graphs = true;
  try {
    g.submit(r);
    ADD_FAILURE() << "cuda_graphs on the CPU was accepted";
  } catch (const ParameterError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda-graphs"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(g.busy());
}

TEST(Generator, DestructorCancelsARunningJob) {
  const auto t0 = std::chrono::steady_clock::now();
  {
    Generator g;
    auto r = small_request();
    r.steps = 500;
    g.submit(r);
    g.events().wait_pop(30000);  // JobStarted
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

TEST(Heatmap, PoolsAndKeepsMass) {
  attention::TokenGrid grid{3, 70, 40};
  auto probs = torch::softmax(torch::randn({grid.size()}), 0);
  const auto hm = make_heatmap(probs, grid, 1, 0, 5, 32);
  EXPECT_EQ(hm.grid, (attention::TokenGrid{3, 24, 20}));
  double sum = 0;
  for (float v : hm.values) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-4);
}

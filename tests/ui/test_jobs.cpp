// The studio's job list (statuses from events, seeds), its history file, the dock's request checks
// and the Compare panel's recipe match and SSIM. Pure: no display.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "engine/common/error.h"
#include "ui/compare.h"
#include "ui/jobs.h"
#include "ui/studio_state.h"
#include "engine/common/remove_tree.h"

namespace lu = longshot::ui;
namespace lp = longshot::pipeline;

namespace {
lp::GenerationRequest request(uint64_t seed = 42) {
  lp::GenerationRequest r;
  r.prompt = "a small red circle bounces left to right on a dark blue background";
  r.seed = seed;
  return r;
}
std::filesystem::path temp_dir(const char* name) {
  const auto dir = std::filesystem::temp_directory_path() / (std::string("longshot_ui_") + name + "_" +
                                                             std::to_string(::getpid()));
  longshot::remove_tree(dir);
  return dir;
}
}  // namespace

TEST(JobList, QueuedJobsGetDistinctSeeds) {
  lu::JobList jobs;
  for (uint64_t id = 1; id <= 3; ++id) {
    auto r = request(42);
    r.seed = jobs.free_seed(r.seed);
    jobs.add(id, r);
  }
  ASSERT_EQ(jobs.entries().size(), 3u);
  EXPECT_EQ(jobs.entries()[0].request.seed, 42u);
  EXPECT_EQ(jobs.entries()[1].request.seed, 43u);
  EXPECT_EQ(jobs.entries()[2].request.seed, 44u);
  // Once the jobs have ended, the seed asked for is free again.
  for (uint64_t id = 1; id <= 3; ++id) jobs.apply(lp::JobFinished{id});
  EXPECT_EQ(jobs.free_seed(42), 42u);
}

TEST(JobList, CancelledAndFailedJobsLeaveTheQueue) {
  lu::JobList jobs;
  jobs.add(1, request());
  jobs.add(2, request(7));
  jobs.add(3, request(8));
  EXPECT_EQ(jobs.queued(), 3u);
  lp::JobStarted started;
  started.job_id = 1;
  jobs.apply(started);
  EXPECT_EQ(jobs.entries()[0].status, lu::JobStatus::Running);
  // Generator::cancel: the running job and the queued ones each report JobCancelled.
  jobs.apply(lp::JobCancelled{1, 3});
  jobs.apply(lp::JobCancelled{2, 0});
  // A job that fails before it starts (a model that does not resolve) never sends JobStarted.
  jobs.apply(lp::JobFailed{3, "invalid parameter 'model': no model 'nope'"}, "2026-12-06T14:00:00Z");
  EXPECT_EQ(jobs.queued(), 0u);
  EXPECT_EQ(jobs.active(), 0u);
  EXPECT_EQ(jobs.entries()[0].status, lu::JobStatus::Cancelled);
  EXPECT_EQ(jobs.entries()[1].status, lu::JobStatus::Cancelled);
  EXPECT_EQ(jobs.entries()[2].status, lu::JobStatus::Failed);
  EXPECT_NE(jobs.entries()[2].error.find("no model"), std::string::npos);
  EXPECT_EQ(jobs.entries()[2].finished_at, "2026-12-06T14:00:00Z");
  // Ended jobs can be removed; events of unknown ids change nothing.
  jobs.apply(lp::JobFinished{99});
  EXPECT_TRUE(jobs.remove(0));
  EXPECT_EQ(jobs.entries().size(), 2u);
}

TEST(JobList, ActiveJobsCannotBeRemoved) {
  lu::JobList jobs;
  jobs.add(1, request());
  EXPECT_FALSE(jobs.remove(0));
  EXPECT_FALSE(jobs.remove(5));
}

TEST(History, RoundTripsThroughTheFile) {
  const auto dir = temp_dir("history");
  const std::string path = (dir / "sub" / "studio-history.json").string();
  lu::JobList jobs;
  auto r = request(5);
  r.attention.mode = "radial";
  r.attention.params["keep_ratio"] = 0.25;
  r.frames = 8;
  jobs.add(1, r);
  lp::StepFinished st;
  st.job_id = 1;
  st.step = 0;
  st.num_steps = 1;
  st.step_ms = 120;
  jobs.apply(st);
  lp::JobFinished fin;
  fin.job_id = 1;
  fin.total_ms = 1500;
  fin.mean_sparsity = 0.6;
  jobs.apply(fin, "2026-12-06T14:01:00Z");
  jobs.add(2, request(6));  // still queued: not history
  jobs.set_output(1, "/tmp/clip.mp4");
  lu::save_history(path, jobs.history());

  std::vector<std::string> warnings;
  const auto back = lu::load_history(path, &warnings);
  EXPECT_TRUE(warnings.empty());
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].status, lu::JobStatus::Finished);
  EXPECT_EQ(back[0].request.seed, 5u);
  EXPECT_EQ(back[0].request.frames, 8);
  EXPECT_EQ(back[0].request.attention.mode, "radial");
  EXPECT_DOUBLE_EQ(back[0].request.attention.params.at("keep_ratio"), 0.25);
  EXPECT_EQ(back[0].request.prompt, r.prompt);
  EXPECT_DOUBLE_EQ(back[0].total_ms, 1500);
  EXPECT_DOUBLE_EQ(back[0].mean_step_ms, 120);
  EXPECT_EQ(back[0].output, "/tmp/clip.mp4");
  EXPECT_EQ(back[0].finished_at, "2026-12-06T14:01:00Z");

  // Restored into a new session: before this session's jobs, with no live id.
  lu::JobList next;
  next.add(1, request());
  next.restore(back);
  ASSERT_EQ(next.entries().size(), 2u);
  EXPECT_EQ(next.entries()[0].id, 0u);
  EXPECT_EQ(next.entries()[0].request.attention.mode, "radial");
  EXPECT_EQ(next.entries()[1].id, 1u);
  longshot::remove_tree(dir);
}

TEST(History, BadFilesAndEntriesAreSkippedWithAWarning) {
  const auto dir = temp_dir("history_bad");
  std::filesystem::create_directories(dir);
  std::vector<std::string> warnings;
  EXPECT_TRUE(lu::load_history((dir / "absent.json").string(), &warnings).empty());
  EXPECT_TRUE(warnings.empty());  // no file yet: a first launch
  {
    std::ofstream((dir / "junk.json").string()) << "{not json";
  }
  EXPECT_TRUE(lu::load_history((dir / "junk.json").string(), &warnings).empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("junk.json"), std::string::npos);
  warnings.clear();
  const std::string one_bad = R"({"version":1,"jobs":[{"status":"finished","request":{"frames":"many"}},
      {"status":"failed","error":"boom","request":{"prompt":"ok","seed":3}}]})";
  const auto jobs = lu::history_from_json(one_bad, &warnings);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].status, lu::JobStatus::Failed);
  EXPECT_EQ(jobs[0].request.seed, 3u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("entry 0"), std::string::npos);
  EXPECT_THROW(lu::history_from_json("[1,2]"), longshot::ParameterError);
  longshot::remove_tree(dir);
}

TEST(History, PathFollowsXdgDataHome) {
  const char* old = std::getenv("XDG_DATA_HOME");
  const std::string saved = old ? old : "";
  setenv("XDG_DATA_HOME", "/tmp/xdg-test", 1);
  EXPECT_EQ(lu::default_history_path(), "/tmp/xdg-test/longshot/studio-history.json");
  if (old) setenv("XDG_DATA_HOME", saved.c_str(), 1);
  else unsetenv("XDG_DATA_HOME");
}

TEST(RequestChecks, EmptyPromptAndModelRulesAreCaughtBeforeGenerate) {
  lu::ModelLimits wan;
  wan.name = "wan2.1-t2v-1.3b";
  wan.known = true;
  wan.temporal_stride = 4;
  wan.unit_w = wan.unit_h = 16;
  wan.missing = {"VAE (Wan2.1_VAE.pth)"};
  auto r = request();
  r.frames = 81;
  r.width = 832;
  r.height = 480;
  auto problems = lu::check_request(r, wan);
  ASSERT_EQ(problems.size(), 1u);  // only the missing VAE, and it does not block
  EXPECT_FALSE(problems[0].blocking);

  r.prompt = "  \n";
  r.width = 63;
  r.frames = 5000;
  problems = lu::check_request(r, wan);
  auto has = [&](const std::string& field, const std::string& text) {
    for (const auto& p : problems)
      if (p.field == field && p.blocking && p.message.find(text) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("prompt", "empty"));
  EXPECT_TRUE(has("width", "multiple of 16 (nearest 64)"));
  EXPECT_TRUE(has("frames", "5000 is outside 1-4096"));
  r.frames = 80;
  problems = lu::check_request(r, wan);
  EXPECT_TRUE(has("frames", "4n+1 frames (nearest 81)"));
  EXPECT_EQ(lu::snap_frames(80, wan), 81);
  // The built-in model: one video frame per latent frame, patched in pairs: even counts.
  lu::ModelLimits builtin;
  builtin.name = "longshot-builtin";
  builtin.temporal_patch = 2;
  EXPECT_TRUE(lu::frames_fit(32, builtin));
  EXPECT_FALSE(lu::frames_fit(33, builtin));
  EXPECT_EQ(lu::frames_rule(builtin), "2n");
  EXPECT_EQ(lu::frames_rule(wan), "4n+1");
  EXPECT_EQ(lu::snap_side(63, 16), 64);
  EXPECT_EQ(lu::snap_side(3, 16), 16);
  // An uninspected path: the generic limits only.
  EXPECT_TRUE(lu::check_request(request(), lu::ModelLimits{}).empty());
}

TEST(Compare, RequestDifferencesNameWhatDiffers) {
  auto a = request(), b = request();
  b.attention.mode = "radial";  // the one thing a comparison is for
  b.attention.params["keep_ratio"] = 0.3;
  EXPECT_TRUE(lu::request_differences(a, b).empty());
  b.frames = 8;
  b.seed = 43;
  const auto d = lu::request_differences(a, b);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0], "seed: 42 vs 43");
  EXPECT_EQ(d[1], "frames: 32 vs 8");
}

TEST(Compare, SsimIsOneForIdenticalFramesAndFallsWithNoise) {
  longshot::Video a;
  a.frames = 1;
  a.width = 16;
  a.height = 16;
  a.rgb.resize(16 * 16 * 3);
  for (size_t i = 0; i < a.rgb.size(); ++i) a.rgb[i] = static_cast<uint8_t>((i * 37) % 251);
  longshot::Video b = a;
  EXPECT_NEAR(lu::ssim(a, b, 0), 1.0, 1e-12);
  for (size_t i = 0; i < b.rgb.size(); i += 5) b.rgb[i] = static_cast<uint8_t>(255 - b.rgb[i]);
  const double noisy = lu::ssim(a, b, 0);
  EXPECT_LT(noisy, 0.9);
  EXPECT_GT(noisy, -1.0);
  EXPECT_EQ(lu::per_frame_ssim(a, b).size(), 1u);
  EXPECT_THROW(lu::ssim(a, b, 1), longshot::ParameterError);
}

TEST(Compare, SweepValuesSpanTheRange) {
  const auto v = lu::sweep_values(0.1, 0.5, 5);
  ASSERT_EQ(v.size(), 5u);
  EXPECT_DOUBLE_EQ(v.front(), 0.1);
  EXPECT_DOUBLE_EQ(v.back(), 0.5);
  EXPECT_NEAR(v[2], 0.3, 1e-12);
  // Integers: rounded, duplicates dropped.
  EXPECT_EQ(lu::sweep_values(1, 3, 5, true), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(lu::sweep_values(0.25, 0.9, 1), (std::vector<double>{0.25}));
  EXPECT_THROW(lu::sweep_values(0, 1, 0), longshot::ParameterError);
}

// File > Export mask trace writes what the run kept: with request.record_masks every layer's mask
// of each step (as the CLI's --trace), not only the inspected layer's.
TEST(StudioState, KeepsEveryLayersMaskForTheTrace) {
  lu::StudioState state;
  lp::JobStarted started;
  started.job_id = 1;
  started.request.steps = 2;
  started.num_layers = 3;
  started.num_heads = 1;
  state.apply(started);
  auto mask = std::make_shared<longshot::attention::BlockMask>(longshot::attention::BlockMask::full(32, 8));
  lp::StepFinished step;
  step.job_id = 1;
  step.step = 0;
  step.num_steps = 2;
  step.mask = mask;
  step.mask_layer = 1;
  step.layer_masks = {mask, nullptr, mask};  // layer 1 ran dense
  state.apply(step);
  ASSERT_NE(state.current(), nullptr);
  const auto& masks = state.current()->masks;
  ASSERT_EQ(masks.size(), 2u);
  EXPECT_EQ(masks[0].layer, 0);
  EXPECT_EQ(masks[1].layer, 2);
  // Without recorded layers, the inspected layer's mask alone.
  step.step = 1;
  step.layer_masks.clear();
  state.apply(step);
  ASSERT_EQ(state.current()->masks.size(), 3u);
  EXPECT_EQ(state.current()->masks[2].layer, 1);
}

// Link-time test double for the engine calls generator.cpp makes (run_job, validate_request,
// find_policy, resolve_params, init_cpu_threads). Only longshot_tsan_threads links it, in place
// of the engine's libraries: the Generator's own code runs unchanged, the job is a few sleeps that
// publish events shaped like the real ones (shared heatmap, cached mask, preview frames).
#include <chrono>
#include <thread>

#include "engine/attention/mask_policy.h"
#include "engine/common/error.h"
#include "engine/common/threads.h"
#include "engine/pipeline/run_job.h"
#include "tests/tsan/fake_job.h"

namespace longshot {

namespace tsan_test {
std::atomic<int> step_sleep_us{200};
std::atomic<int> jobs_returned{0};
std::atomic<int> column_fetches{0};
}  // namespace tsan_test

int init_cpu_threads() { return 1; }

namespace attention {

const PolicyInfo& find_policy(const std::string& name) {
  static const std::vector<PolicyInfo> policies = [] {
    std::vector<PolicyInfo> p(2);
    p[0].name = "dense";
    p[1].name = "fake-sparse";
    return p;
  }();
  for (const auto& p : policies)
    if (p.name == name) return p;
  throw ParameterError("mode", "unknown mode '" + name + "' (the fake knows dense, fake-sparse)");
}

ParamValues resolve_params(const PolicyInfo&, const ParamValues& overrides) { return overrides; }

}  // namespace attention

namespace pipeline {

void validate_request(const GenerationRequest& request) {
  if (request.steps < 1) throw ParameterError("steps", "must be at least 1, got " + std::to_string(request.steps));
}

namespace {

using attention::BlockMask;

// A mask as a GPU-built one arrives: columns deferred, fetched by whichever thread reads first.
std::shared_ptr<BlockMask> deferred_mask() {
  auto mask = std::make_shared<BlockMask>(BlockMask::full(tsan_test::kSeqLen, tsan_test::kBlock, tsan_test::kHeads));
  std::vector<int32_t> cols = std::move(mask->col_indices);
  mask->col_indices.clear();
  const auto count = static_cast<int64_t>(cols.size());
  mask->deferred_cols = std::make_shared<attention::DeferredColumns>(
      [cols = std::move(cols)] {
        ++tsan_test::column_fetches;
        return cols;
      },
      count);
  return mask;
}

StepFinished make_step(uint64_t job_id, int step, int num_steps, const AttentionSettings& settings,
                       const InspectTarget& inspect, const attention::BlockMaskPtr& mask) {
  StepFinished e;
  e.job_id = job_id;
  e.step = step;
  e.num_steps = num_steps;
  e.mode = settings.mode;
  e.mode_params = settings.params;
  e.sparsity.assign(tsan_test::kLayers * tsan_test::kHeads, 0.25f * static_cast<float>(step % 4));
  e.mean_sparsity = 0.25 * (step % 4);
  auto heatmap = std::make_shared<AttentionHeatmap>();
  heatmap->layer = inspect.layer;
  heatmap->head = inspect.head;
  heatmap->grid = heatmap->source_grid = attention::TokenGrid{1, 4, 32};
  heatmap->values.assign(static_cast<size_t>(heatmap->grid.size()), static_cast<float>(step));
  e.heatmap = std::move(heatmap);
  e.mask = mask;  // the same cached mask every step, as the model's mask cache hands it out
  e.mask_from_cache = step > 0;
  e.mask_layer = inspect.layer;
  e.mask_head = inspect.head;
  auto preview = std::make_shared<Video>();
  preview->frames = 1;
  preview->height = preview->width = 4;
  preview->rgb.assign(preview->frame_bytes(), static_cast<uint8_t>(step));
  e.preview = std::move(preview);
  return e;
}

}  // namespace

void run_job(const GenerationRequest& request, JobContext& ctx) {
  struct Returned {
    ~Returned() { ++tsan_test::jobs_returned; }
  } returned;
  if (request.prompt == "fail") {
    ctx.publish(JobFailed{ctx.job_id, "fake failure"});
    return;
  }
  JobStarted started;
  started.job_id = ctx.job_id;
  started.request = request;
  started.grid = attention::TokenGrid{1, 4, 32};
  started.num_layers = tsan_test::kLayers;
  started.num_heads = tsan_test::kHeads;
  ctx.publish(std::move(started));
  AttentionSettings settings = request.attention;
  InspectTarget inspect{request.inspect_layer, request.inspect_head, request.inspect_query};
  const std::shared_ptr<BlockMask> mask = deferred_mask();
  for (int step = 0; step < request.steps; ++step) {
    if (ctx.cancel->load()) {
      ctx.publish(JobCancelled{ctx.job_id, step});
      return;
    }
    if (auto s = ctx.take_settings()) settings = std::move(*s);
    if (auto t = ctx.take_inspect()) inspect = *t;
    std::this_thread::sleep_for(std::chrono::microseconds(tsan_test::step_sleep_us.load()));
    ctx.publish(make_step(ctx.job_id, step, request.steps, settings, inspect, mask));
    // The engine keeps using the published mask: the CUDA adapter attaches its device copy to the
    // cached mask, a trace reads its columns, while the UI thread may read both.
    mask->attach_device_copy(std::make_shared<int>(step), 0, tsan_test::kHeads);
    if (mask->cols().size() != static_cast<size_t>(mask->kept_blocks())) {
      ctx.publish(JobFailed{ctx.job_id, "fake: mask columns lost"});
      return;
    }
  }
  auto video = std::make_shared<Video>();
  video->frames = request.frames;
  video->height = video->width = 2;
  video->rgb.assign(video->frame_bytes() * static_cast<size_t>(request.frames), 7);
  ctx.publish(FramesDecoded{ctx.job_id, video});
  JobFinished done;
  done.job_id = ctx.job_id;
  done.video = std::move(video);
  ctx.publish(std::move(done));
}

}  // namespace pipeline
}  // namespace longshot

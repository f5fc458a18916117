// The memory plan through the pipeline: fp8 DiT files through model resolution (a Wan2.1 release
// folder and ComfyUI split files, `--dit FILE`, whose DiT is a scaled F8_E4M3 checkpoint resolve,
// load with the block weights kept as fp8, and compute what the dequantised model computes), and
// GenerationRequest::offload / max_gpu_memory through run_job on the CPU.
#include <gtest/gtest.h>

#include "engine/model/block_store.h"
#include "engine/model/model_source.h"
#include "engine/pipeline/run_job.h"
#include "tests/common/fp8_checkpoint.h"
#include "tests/common/temp_dir.h"
#include "tests/common/tiny_model_folder.h"

using namespace longshot;
using namespace longshot::testing;

namespace {

struct Dir : TempDir {
  Dir() : TempDir("longshot_fp8_models") {}
};

// The folder's DiT file replaced by an fp8 checkpoint of a model with `heads`; returns the
// dequantised reference model.
model::WanDiT write_fp8_dit(const std::string& path, int64_t heads) {
  model::WanDiT ref(tiny_wan_config(heads));
  ref->init_random(21);
  fp8_checkpoint(*ref, 22).write(path);
  ref->eval();
  return ref;
}

// `ref`'s weights under the resolved config (split files carry no config.json: text_len and
// the like are Wan's defaults there, not the tiny config's).
model::WanDiT with_config(const model::WanDiT& ref, const model::DiTConfig& config) {
  model::WanDiT m(config);
  torch::NoGradGuard no_grad;
  auto src = ref->named_parameters();
  for (auto& item : m->named_parameters()) item.value().copy_(src[item.key()]);
  m->eval();
  return m;
}

void expect_same_forward(model::WanDiT& a, model::WanDiT& b) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(4);
  const auto& c = a->config();
  const auto x = torch::randn({1, c.in_channels, 2, 4, 4}, gen, torch::kFloat);
  const auto text = torch::randn({1, 6, c.text_dim}, gen, torch::kFloat);
  const auto t = torch::full({1}, 500.0);
  EXPECT_TRUE(torch::equal(a->forward(x, t, text, model::AttentionPlan{}), b->forward(x, t, text, model::AttentionPlan{})));
}

}  // namespace

TEST(Fp8ModelFiles, WanReleaseFolder) {
  Dir d;
  const auto files = write_tiny_model(d.file("Wan2.1-fp8"), TinyLayout::WanRelease, 12);
  auto ref = write_fp8_dit(files.dit, 2);
  model::ModelSpec spec;
  spec.model = files.root;
  const auto m = model::resolve_model(spec, {model::kComponentTokenizer});
  EXPECT_EQ(m.layout, model::ModelLayout::WanRelease);
  auto dit = model::load_dit(m, 0);
  ASSERT_NE(dit->stored_blocks(), nullptr);
  EXPECT_EQ(dit->stored_blocks()->fp8_tensors(), 10 * dit->config().num_layers);
  expect_same_forward(dit, ref);
}

TEST(Fp8ModelFiles, SplitDiTFile) {
  Dir d;
  const auto files = write_tiny_model(d.file("comfy"), TinyLayout::Split, 13);
  auto ref = write_fp8_dit(files.dit, 1);  // no config.json: Wan's head dim 128, one head
  model::ModelSpec spec;
  spec.dit = files.dit;
  const auto m = model::resolve_model(spec, {model::kComponentTextEncoder, model::kComponentTokenizer, model::kComponentVae});
  EXPECT_EQ(m.layout, model::ModelLayout::Split);
  ref = with_config(ref, m.config);
  auto dit = model::load_dit(m, 0);
  ASSERT_NE(dit->stored_blocks(), nullptr);
  expect_same_forward(dit, ref);
  // With offload too (on the CPU the weights stay where they are): the same output.
  auto offloaded = model::load_dit(m, 0, torch::kCPU, torch::kFloat, /*offload=*/true);
  EXPECT_TRUE(offloaded->stored_blocks()->offload());
  expect_same_forward(offloaded, ref);
}

namespace {

// A tiny registered model's job on the CPU: its video, or the failure message.
struct JobResult {
  VideoPtr video;
  std::string error;
};

JobResult tiny_job(bool offload, int64_t max_gpu_memory) {
  pipeline::GenerationRequest r;
  r.model = "tiny";
  r.prompt = "a boat";
  r.frames = 4, r.width = 16, r.height = 16, r.steps = 2;
  r.device = "cpu";
  r.previews = false;
  r.measure_recall = false;
  r.offload = offload;
  r.max_gpu_memory = max_gpu_memory;
  JobResult out;
  pipeline::JobContext ctx;
  ctx.publish = [&](pipeline::Event e) {
    if (auto* f = std::get_if<pipeline::JobFinished>(&e)) out.video = f->video;
    if (auto* f = std::get_if<pipeline::JobFailed>(&e)) out.error = f->message;
  };
  pipeline::run_job(r, ctx);
  return out;
}

}  // namespace

TEST(MemoryPlanJob, OffloadGivesTheSameVideoOnCpu) {
  const auto plain = tiny_job(false, 0), offloaded = tiny_job(true, 0);
  ASSERT_TRUE(plain.video) << plain.error;
  ASSERT_TRUE(offloaded.video) << offloaded.error;
  EXPECT_EQ(plain.video->rgb, offloaded.video->rgb);
}

TEST(MemoryPlanJob, GpuMemoryCapOnCpuIsRefused) {
  const auto r = tiny_job(false, int64_t(24) << 30);
  EXPECT_FALSE(r.video);
  EXPECT_NE(r.error.find("max-gpu-memory"), std::string::npos) << r.error;
}

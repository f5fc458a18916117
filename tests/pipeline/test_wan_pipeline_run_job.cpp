// The whole job (run_job: model folder resolved, prompt embeddings, the sampling loop with guidance,
// the VAE after sampling, 8-bit frames) against diffusers' WanPipeline on the committed tiny
// fixture (tests/fixtures/wan_pipeline_tiny/README.md): the same prompt embeddings and initial
// noise, 6 steps of UniPC and of Euler, guidance 5, shift 3 → decoded frames >= 40 dB PSNR.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/io/safetensors.h"
#include "engine/model/model_source.h"
#include "engine/pipeline/run_job.h"
#include "tests/common/fixture_io.h"
#include "tests/common/temp_dir.h"

using namespace longshot;

namespace {

const std::string kFolder = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/wan_pipeline_tiny";

// PSNR of 8-bit frames against frames [1, 3, F, H, W] in [0, 1].
double psnr(const Video& v, const torch::Tensor& want) {
  auto got = torch::from_blob(const_cast<uint8_t*>(v.rgb.data()), {v.frames, v.height, v.width, 3}, torch::kUInt8)
                 .to(torch::kDouble)
                 .permute({3, 0, 1, 2}) / 255.0;
  const double mse = (got - want[0].to(torch::kDouble)).pow(2).mean().item<double>();
  return 10 * std::log10(1.0 / std::max(mse, 1e-20));
}

}  // namespace

TEST(WanPipelineRunJob, FramesMatchDiffusers) {
  if (!std::filesystem::exists(kFolder + "/io.safetensors")) GTEST_SKIP() << "fixture " << kFolder << " not present";
  longshot::testing::TempDir d("longshot_parity");
  longshot::testing::FixtureTensors io(kFolder + "/io.safetensors");  // holds int64 token ids too
  // The fixture gives prompt embeddings, not a tokenizer: they enter as an embeddings file.
  const auto emb = d.file("embeddings.safetensors");
  io::write_safetensors(emb, {{"context", io.f32("prompt_embeds")},
                              {"negative", io.f32("negative_prompt_embeds")}});
  model::ModelSpec spec;
  spec.model = kFolder;
  const auto resolved = model::resolve_model(spec, {model::kComponentTokenizer});
  EXPECT_EQ(resolved.layout, model::ModelLayout::Diffusers);
  EXPECT_EQ(resolved.config.num_heads, 2);  // transformer/config.json
  EXPECT_EQ(resolved.config.head_dim(), 32);
  EXPECT_EQ(resolved.config.freq_dim, 256);

  for (const std::string sampler : {"unipc", "euler"}) {
    SCOPED_TRACE(sampler);
    pipeline::GenerationRequest r;
    r.model = kFolder;
    r.text_embeddings = emb;
    r.prompt = "(the fixture's prompt embeddings)";
    r.negative_prompt = "";  // the embeddings file's "negative"
    r.frames = 9, r.width = 48, r.height = 32;
    r.steps = 6, r.guidance = 5.0, r.shift = 3.0;
    r.sampler = sampler;
    r.schedule = "diffusers";
    r.device = "cpu";
    r.previews = false;
    r.measure_recall = false;
    VideoPtr video;
    std::string error;
    pipeline::JobContext ctx;
    ctx.initial_noise = io.f32("noise");
    ctx.publish = [&](pipeline::Event e) {
      if (auto* f = std::get_if<pipeline::JobFinished>(&e)) video = f->video;
      if (auto* f = std::get_if<pipeline::JobFailed>(&e)) error = f->message;
    };
    pipeline::run_job(r, ctx);
    ASSERT_TRUE(video) << error;
    ASSERT_EQ(video->frames, 9);
    const double db = psnr(*video, io.f32(sampler + "_frames"));
    std::printf("run_job %s vs WanPipeline: %.1f dB PSNR over 9 frames 48x32\n", sampler.c_str(), db);
    EXPECT_GE(db, 40.0);
    // And it can fail: the other sampler's frames are far off.
    const double other = psnr(*video, io.f32(sampler == "unipc" ? "euler_frames" : "unipc_frames"));
    EXPECT_LT(other, db);
  }
}

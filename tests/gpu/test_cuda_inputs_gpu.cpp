// CUDA inputs to the helpers that build index or mask tensors of their own on the CPU (attention
// recall, the masked reference), and the built-in model generating on the GPU with the studio's
// per-step inspection on — the path `longshot generate --device cuda` takes unless --no-recall.
// A CPU index on a CUDA tensor stopped every such generation ("index is on cpu", found by
// tools/eval_regimes.sh on the GPU machine, 2026-12-06). Skipped without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "engine/attention/block_mask.h"
#include "engine/attention/metrics.h"
#include "engine/attention/reference.h"
#include "engine/calibrate/calibration.h"
#include "engine/pipeline/generator.h"
#include "tests/common/job_events.h"
#include "tests/gpu/skip_without_gpu.h"

using namespace longshot;

namespace {

// Half the block pairs kept (a checkerboard, the diagonal always), 2 heads.
attention::BlockMask checker_mask(int64_t n, int64_t block, int64_t heads) {
  const int64_t nb = attention::BlockMask::blocks_for(n, block);
  std::vector<uint8_t> keep(size_t(heads * nb * nb), 0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t j = 0; j < nb; ++j) keep[size_t((h * nb + i) * nb + j)] = uint8_t(i == j || (i + j + h) % 2 == 0);
  return attention::BlockMask::from_dense(keep, n, block, heads);
}

}  // namespace

TEST(CudaInputsGpu, RecallAndReferenceTakeCudaTensors) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(3);
  const int64_t n = 200, block = 32, heads = 2;
  const auto q = torch::randn({1, heads, n, 16}), k = torch::randn({1, heads, n, 16}), v = torch::randn({1, heads, n, 16});
  const auto mask = checker_mask(n, block, heads);
  const double cpu = attention::attention_recall(q, k, mask, 3);
  const double gpu = attention::attention_recall(q.cuda(), k.cuda(), mask, 3);
  EXPECT_GT(cpu, 0.3);
  EXPECT_LT(cpu, 1.0);
  EXPECT_NEAR(gpu, cpu, 1e-5);
  const auto ref_cpu = attention::block_sparse_attention_reference(q, k, v, mask);
  const auto ref_gpu = attention::block_sparse_attention_reference(q.cuda(), k.cuda(), v.cuda(), mask);
  EXPECT_LT((ref_gpu.cpu() - ref_cpu).abs().max().item<double>(), 1e-4);
}

// The built-in model (shipped weights, its own text net), a sparse mode, recall and previews on:
// the job the studio and `generate --device cuda` run. It must finish with a recall in (0, 1].
TEST(CudaInputsGpu, BuiltinModelGeneratesWithInspectionOnTheGpu) {
  SKIP_WITHOUT_GPU();
  pipeline::GenerationRequest r;
  r.prompt = "a red ball bounces on a dark blue background";
  r.device = "cuda";
  r.frames = 16;
  r.width = r.height = 32;
  r.steps = 3;
  r.attention.mode = "radial";
  r.attention.block_size = 64;  // a block size the CUDA kernels take (64 or 128)
  r.previews = true;
  r.measure_recall = true;
  pipeline::Generator g;
  g.submit(r);
  double last_recall = -1;
  const auto seen = longshot::testing::events_until_job_end(g, std::chrono::seconds(120), [&](const pipeline::Event& e) {
    if (const auto* s = std::get_if<pipeline::StepFinished>(&e)) last_recall = s->recall_estimate;
  });
  ASSERT_FALSE(seen.empty());
  ASSERT_TRUE(std::holds_alternative<pipeline::JobFinished>(seen.back()))
      << (std::holds_alternative<pipeline::JobFailed>(seen.back()) ? std::get<pipeline::JobFailed>(seen.back()).message
                                                                   : "no end within 120 s");
  EXPECT_GT(last_recall, 0.0);
  EXPECT_LE(last_recall, 1.0 + 1e-6);
}

// `longshot calibrate --proxy model --device cuda` scores captured Q/K/V where they were captured:
// the same tensors on the GPU score as on the CPU (the mask, its sparsity and the NMSE), in raster
// order (dynamicrad) and in a Hilbert order (dfsattn: the permutation must follow the tensors).
TEST(CudaInputsGpu, CalibrationScoresACudaProxyAsTheCpu) {
  SKIP_WITHOUT_GPU();
  calibrate::ProxySpec spec;
  spec.grid = attention::TokenGrid{12, 8, 8};
  spec.heads = 2;
  spec.head_dim = 32;
  spec.block_size = 64;
  spec.seed = 4;
  calibrate::CapturedProxy cpu;
  cpu.regime = calibrate::Regime{"slow", 0.0};
  cpu.grid = spec.grid;
  cpu.qkv = calibrate::make_drift_qkv(spec, 0.15);
  calibrate::CapturedProxy gpu = cpu;
  gpu.qkv = attention::QKV{cpu.qkv.q.cuda(), cpu.qkv.k.cuda(), cpu.qkv.v.cuda()};
  const calibrate::ProxyTask on_cpu(cpu, spec.block_size), on_gpu(gpu, spec.block_size);
  for (const std::string mode : {"dynamicrad", "dfsattn"}) {
    calibrate::ObjectiveSpec o;
    o.mode = mode;
    const auto a = on_cpu.score(o, {}), b = on_gpu.score(o, {});
    EXPECT_GT(a.sparsity, 0.05) << mode;
    EXPECT_GT(a.nmse, 0.0) << mode;
    EXPECT_NEAR(b.sparsity, a.sparsity, 0.02) << mode;
    EXPECT_NEAR(b.nmse, a.nmse, 0.05 * a.nmse + 1e-6) << mode;
  }
}

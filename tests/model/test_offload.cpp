// --offload on the CPU (issue 20's memory plan): every block's weights go through the block store
// (acquire before the block, release after), stay where they are, and the forward is identical to
// the resident model's — also after an exception inside a block, and with the text K/V cached.
// The GPU side (pinned memory, side stream, lower peak) is tests/gpu/test_offload_gpu.cpp.
#include <gtest/gtest.h>

#include <stdexcept>

#include "engine/common/cuda_memory.h"
#include "engine/common/error.h"
#include "engine/common/parse.h"
#include "engine/model/block_store.h"
#include "tests/common/tiny_dit.h"

using namespace longshot;
using namespace longshot::model;

namespace {

const longshot::testing::TinyInputs& inputs() {
  static const auto in = longshot::testing::tiny_inputs(6);
  return in;
}

torch::Tensor run(WanDiT& m, const AttentionProbe& probe = {}) {
  torch::NoGradGuard no_grad;
  const auto& in = inputs();
  return m->forward_with_stats(in.x, in.t, in.text, AttentionPlan{}, probe).velocity;
}

// Every block parameter's data pointer, to see that they are back on their stored tensors.
std::vector<const void*> block_data(WanDiT& m) {
  std::vector<const void*> out;
  for (const auto& item : m->blocks->named_parameters()) out.push_back(item.value().data_ptr());
  return out;
}

}  // namespace

TEST(Offload, CpuForwardIdenticalToResident) {
  auto resident = longshot::testing::tiny_dit(5), offloaded = longshot::testing::tiny_dit(5);
  offloaded->place(torch::kCPU, torch::kFloat, /*offload=*/true);
  const auto* store = offloaded->stored_blocks();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->offload());
  EXPECT_EQ(store->fp8_tensors(), 0);
  // Every block tensor is in the store: 4 + 4 linears with biases, 2 q/k norms each, modulation, FFN.
  int64_t block_bytes = 0;
  for (const auto& p : resident->blocks->parameters()) block_bytes += int64_t(p.nbytes());
  EXPECT_EQ(store->stored_bytes(), block_bytes);
  const auto before = block_data(offloaded);
  const auto want = run(resident);
  EXPECT_TRUE(torch::equal(run(offloaded), want));
  EXPECT_EQ(block_data(offloaded), before);  // released: the parameters hold their stored tensors
  const int64_t hits = offloaded->text_kv_cache().hits();
  EXPECT_TRUE(torch::equal(run(offloaded), want));
  EXPECT_GT(offloaded->text_kv_cache().hits(), hits);
  // Two forwards and one text K/V pass, one acquire per block each; no prefetch without a GPU.
  EXPECT_EQ(store->built(), 3 * offloaded->config().num_layers);
  EXPECT_EQ(store->prefetched(), 0);
  EXPECT_EQ(store->placements(), 1);  // placed once by place(), not again per block
}

TEST(Offload, ExceptionInsideABlockReleasesIt) {
  auto resident = longshot::testing::tiny_dit(5), offloaded = longshot::testing::tiny_dit(5);
  offloaded->place(torch::kCPU, torch::kFloat, true);
  const auto before = block_data(offloaded);
  AttentionProbe failing;
  failing.on_qkv = [](int layer, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
    if (layer == 1) throw std::runtime_error("probe failed in layer 1");
  };
  EXPECT_THROW(run(offloaded, failing), std::runtime_error);
  EXPECT_EQ(block_data(offloaded), before);
  EXPECT_TRUE(torch::equal(run(offloaded), run(resident)));
}

TEST(Offload, InferenceOnly) {
  auto m = longshot::testing::tiny_dit(5);
  m->place(torch::kCPU, torch::kFloat, true);
  const auto& in = inputs();
  EXPECT_THROW(m->forward(in.x, in.t, in.text), ParameterError);  // autograd on: training
  // And a model placed without offload and without fp8 weights is the plain module.
  auto plain = longshot::testing::tiny_dit(5);
  plain->place(torch::kCPU, torch::kFloat, false);
  EXPECT_EQ(plain->stored_blocks(), nullptr);
}

TEST(MemoryFlags, ByteSizes) {
  int64_t v = 0;
  EXPECT_TRUE(parse_byte_size("24G", v));
  EXPECT_EQ(v, int64_t(24) << 30);
  EXPECT_TRUE(parse_byte_size("23.5GiB", v));
  EXPECT_EQ(v, (int64_t(47) << 30) / 2);
  EXPECT_TRUE(parse_byte_size("512m", v));
  EXPECT_EQ(v, int64_t(512) << 20);
  EXPECT_TRUE(parse_byte_size("1073741824", v));
  EXPECT_EQ(v, int64_t(1) << 30);
  EXPECT_TRUE(parse_byte_size("2TB", v));
  EXPECT_EQ(v, int64_t(2) << 40);
  v = 7;
  for (const char* bad : {"", "G", "24X", "24GG", "-1G", "0", "0G", "1.5", "24 G", "1.G", "99999999T", "24Gb2"})
    EXPECT_FALSE(parse_byte_size(bad, v)) << bad;
  EXPECT_EQ(v, 7);  // untouched
}

TEST(MemoryFlags, CapNeedsACudaDevice) {
  EXPECT_THROW(limit_cuda_memory(torch::kCPU, int64_t(1) << 30), ParameterError);
  EXPECT_THROW(limit_cuda_memory(torch::kCPU, -1), ParameterError);
  EXPECT_EQ(limit_cuda_memory(torch::kCPU, 0), 0);  // no cap asked: nothing to do
}

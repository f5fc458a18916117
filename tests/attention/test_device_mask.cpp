// The device-copy cache on BlockMask, and the tensor form of the dynamic policies' selection
// (what runs on the GPU) against their CPU loops, both on CPU tensors. The GPU side of both is
// in tests/gpu/test_dynamic_masks.cpp.
//
// Parity tolerance: the tensor form sums masses in a different order (parallel reductions and
// scans) than the loops, so a block whose cumulative mass sits within rounding of the threshold
// may flip; the cases allow at most 1e-3 of the kept blocks to differ (measured here: 0).
#include <gtest/gtest.h>

#include "engine/attention/attention.h"
#include "engine/attention/block_mask.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/policies.h"
#include "engine/attention/reference.h"
#include "engine/attention/synthetic.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

namespace {

BlockMask sample_mask() {
  // 2 heads x 3 blocks, some rows sparse.
  return BlockMask::from_dense({1, 0, 1, 0, 1, 0, 1, 1, 1,  //
                                1, 1, 0, 0, 1, 0, 0, 0, 1},
                               150, 64, 2);
}

struct Case {
  TokenGrid grid;
  int64_t block_size;
  int64_t heads;
};

MaskRequest request_of(const Case& c, OrderingKind ordering, uint64_t seed) {
  SyntheticSpec s;
  s.grid = c.grid;
  s.heads = c.heads;
  s.head_dim = 32;
  s.seed = seed;
  const auto qkv = make_synthetic_qkv(s);
  MaskRequest r;
  r.grid = c.grid;
  r.block_size = c.block_size;
  r.num_heads = c.heads;
  r.q = qkv.q;
  r.k = qkv.k;
  if (ordering != OrderingKind::Raster) {
    const auto perm = torch::tensor(make_ordering(ordering, c.grid).perm, torch::kLong);
    r.q = r.q.index_select(2, perm);
    r.k = r.k.index_select(2, perm);
  }
  return r;
}

// Block pairs kept by exactly one of the two masks; also checks the tensor's shape.
int64_t mismatches(const torch::Tensor& keep, const BlockMask& mask) {
  EXPECT_EQ(keep.dim(), 3);
  EXPECT_EQ(keep.size(0), mask.num_heads);
  EXPECT_EQ(keep.size(1), mask.num_q_blocks);
  EXPECT_EQ(keep.size(2), mask.num_k_blocks);
  const auto dense = mask.to_dense();
  const auto ref = torch::from_blob(const_cast<uint8_t*>(dense.data()), {static_cast<int64_t>(dense.size())}, torch::kUInt8)
                       .to(torch::kBool);
  return keep.reshape({-1}).ne(ref).sum().item<int64_t>();
}

// Every row of the keep tensor holds its diagonal block.
bool diagonal_kept(const torch::Tensor& keep) { return keep.diagonal(0, 1, 2).all().item<bool>(); }

const Case kCases[] = {
    {{8, 16, 16}, 64, 4},   // 2048 tokens, 32 blocks
    {{5, 10, 13}, 64, 3},   // 650 tokens: ragged last block (10 tokens)
    {{6, 15, 17}, 128, 2},  // 1530 tokens, 12 blocks of 128, ragged last block
};

}  // namespace

TEST(DeviceMaskCache, NoCacheByDefault) {
  const BlockMask m = sample_mask();
  EXPECT_FALSE(m.attached_device_copy());
  EXPECT_FALSE(m.device_copy(0, 2));
  // Attention on a mask with no device copy runs as before.
  torch::manual_seed(3);
  auto q = torch::randn({1, 2, 150, 16}), k = torch::randn({1, 2, 150, 16}), v = torch::randn({1, 2, 150, 16});
  const auto out = sparse_attention(q, k, v, m);
  EXPECT_TRUE(torch::allclose(out, block_sparse_attention_reference(q, k, v, m), 1e-5, 1e-6));
}

TEST(DeviceMaskCache, CopiesShareTheAttachedCopy) {
  const BlockMask m = sample_mask();
  auto handle = std::make_shared<int>(42);
  m.attach_device_copy(handle, 0, 2);
  const auto hit = m.device_copy(0, 2);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit.handle.get(), handle.get());
  EXPECT_EQ(hit.heads, 2);
  EXPECT_EQ(hit.kept_blocks, m.kept_blocks());

  const BlockMask copy = m;  // copy construction
  ASSERT_TRUE(copy.device_copy(0, 2));
  EXPECT_EQ(copy.device_copy(0, 2).handle.get(), handle.get());
  BlockMask assigned = BlockMask::full(64, 64);
  assigned = m;  // copy assignment
  EXPECT_EQ(assigned.device_copy(0, 2).handle.get(), handle.get());
  auto shared = std::make_shared<const BlockMask>(m);  // what policies cache and hand out
  EXPECT_EQ(shared->device_copy(0, 2).handle.get(), handle.get());

  // Another device or head count misses; the attached copy stays.
  EXPECT_FALSE(m.device_copy(1, 2));
  EXPECT_FALSE(m.device_copy(0, 3));
  EXPECT_TRUE(m.attached_device_copy());

  // Clearing a copy leaves the original's cache alone.
  copy.clear_device_copy();
  EXPECT_FALSE(copy.attached_device_copy());
  EXPECT_TRUE(m.device_copy(0, 2));
}

TEST(DeviceMaskCache, EditedArraysMissAndBadAttachNamesTheParameter) {
  BlockMask m = sample_mask();
  m.attach_device_copy(std::make_shared<int>(1), 0, 2);
  ASSERT_TRUE(m.device_copy(0, 2));
  m = BlockMask::full(150, 64, 2);  // assignment carries the (empty) cache of the full mask
  EXPECT_FALSE(m.device_copy(0, 2));
  BlockMask edited = sample_mask();
  edited.attach_device_copy(std::make_shared<int>(2), 0, 2);
  edited.col_indices.push_back(2);  // kept count no longer what was uploaded
  edited.row_offsets.back() += 1;
  EXPECT_FALSE(edited.device_copy(0, 2));
  try {
    m.attach_device_copy(nullptr, 0, 2);
    ADD_FAILURE() << "null handle accepted";
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "handle");
  }
  try {
    m.attach_device_copy(std::make_shared<int>(3), 0, 0);
    ADD_FAILURE() << "heads 0 accepted";
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "heads");
  }
}

TEST(DynamicSelectionTensorForm, RadialDynamicMatchesTheLoop) {
  for (const auto& c : kCases) {
    for (const auto& [tau, sinks] : {std::pair{0.5, 1.0}, std::pair{0.9, 1.0}, std::pair{0.8, 0.0}}) {
      SCOPED_TRACE(c.grid.to_string() + " tau " + std::to_string(tau) + " sinks " + std::to_string(sinks));
      const ParamValues params{{"tau", tau}, {"sink_frames", sinks}};
      auto policy = create_policy("radial-dynamic", params);
      const auto r = request_of(c, OrderingKind::Raster, 5);
      const auto loop = policy->build(r);
      EXPECT_FALSE(loop->attached_device_copy()) << "CPU tensors take the CPU path";
      const auto keep = radial_dynamic_keep(r, RadialDynamicConfig::from(resolve_params(find_policy("radial-dynamic"), params)));
      EXPECT_TRUE(diagonal_kept(keep));
      EXPECT_LE(mismatches(keep, *loop), loop->kept_blocks() / 1000);
      // Not vacuous: tau < 1 drops candidates, so the mask is sparser than the radial prior.
      RadialConfig prior;
      prior.keep_ratio = 0.5;
      prior.sink_frames = static_cast<int64_t>(sinks);
      int64_t cand = 0;
      for (auto v : radial_keep(c.grid, c.block_size, prior)) cand += v;
      EXPECT_LT(loop->kept_blocks(), c.heads * cand);
      EXPECT_GT(loop->kept_blocks(), loop->num_rows());
    }
  }
}

TEST(DynamicSelectionTensorForm, DfsMatchesTheLoop) {
  for (const auto& c : kCases) {
    for (const auto& [adaptivity, region] : {std::pair{1.0, 4.0}, std::pair{0.0, 3.0}, std::pair{2.0, 5.0}}) {
      SCOPED_TRACE(c.grid.to_string() + " adaptivity " + std::to_string(adaptivity) + " region " + std::to_string(region));
      const ParamValues params{{"keep_ratio", 0.3}, {"adaptivity", adaptivity}, {"region_blocks", region}};
      auto policy = create_policy("dfs", params);
      const auto r = request_of(c, OrderingKind::Hilbert, 9);
      const auto loop = policy->build(r);
      EXPECT_FALSE(loop->attached_device_copy());
      const auto keep = dfs_keep(r, DfsConfig::from(resolve_params(find_policy("dfs"), params)), 0.3);
      EXPECT_TRUE(diagonal_kept(keep));
      EXPECT_LE(mismatches(keep, *loop), loop->kept_blocks() / 1000);
      // Not vacuous: about 30% of the block pairs, not all and not only the diagonal.
      EXPECT_NEAR(loop->block_sparsity(), 0.7, 0.1);
    }
  }
}


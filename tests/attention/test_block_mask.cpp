// BlockMask: construction, ragged blocks, sparsity figures, validation.
#include <gtest/gtest.h>

#include "engine/attention/block_mask.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

TEST(BlockMask, FullAndRagged) {
  const BlockMask m = BlockMask::full(300, 128, 2);
  m.validate();
  EXPECT_EQ(m.num_q_blocks, 3);
  EXPECT_EQ(m.block_len(0), 128);
  EXPECT_EQ(m.block_len(2), 44);
  EXPECT_EQ(m.kept_blocks(), 18);
  EXPECT_DOUBLE_EQ(m.block_sparsity(), 0.0);
  EXPECT_DOUBLE_EQ(m.token_sparsity(), 0.0);
  EXPECT_TRUE(m.contains(1, 2, 0));
}

TEST(BlockMask, DenseRoundTripAndSparsity) {
  // 2 heads, 3 blocks (last ragged: 100 tokens = 64 + 36? no: block 40 → 40, 40, 20).
  std::vector<uint8_t> keep = {1, 0, 0, 1, 1, 0, 0, 0, 1,   // head 0: diagonal + (1,0)
                               1, 1, 1, 1, 1, 1, 1, 1, 1};  // head 1: full
  const BlockMask m = BlockMask::from_dense(keep, 100, 40, 2);
  m.validate();
  EXPECT_EQ(m.to_dense(), keep);
  EXPECT_EQ(m.kept_blocks(), 13);
  EXPECT_NEAR(m.block_sparsity(), 1.0 - 13.0 / 18.0, 1e-12);
  EXPECT_NEAR(m.head_block_sparsity(0), 1.0 - 4.0 / 9.0, 1e-12);
  EXPECT_NEAR(m.head_block_sparsity(1), 0.0, 1e-12);
  // Token figure: head 0 keeps 40·40 + 40·40 + 40·40 + 20·20 token pairs of 100².
  const double kept0 = 40 * 40 + 40 * 40 + 40 * 40 + 20 * 20;
  EXPECT_NEAR(m.token_sparsity(), 1.0 - (kept0 + 100 * 100) / (2.0 * 100 * 100), 1e-12);
  EXPECT_FALSE(m.contains(0, 0, 1));
  EXPECT_TRUE(m.contains(0, 1, 0));
}

TEST(BlockMask, BlockSizeZeroNamesIt) {
  try {
    BlockMask::full(100, 0);
    FAIL();
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "block_size");
  }
}

TEST(BlockMask, ValidateCatchesBrokenInvariants) {
  BlockMask m = BlockMask::full(256, 64);
  m.col_indices[1] = 0;  // not ascending
  EXPECT_THROW(m.validate(), ShapeError);
  m = BlockMask::full(256, 64);
  m.col_indices[0] = 9;  // out of range
  EXPECT_THROW(m.validate(), ShapeError);
  m = BlockMask::full(256, 64);
  m.row_offsets.pop_back();
  EXPECT_THROW(m.validate(), ShapeError);
  m = BlockMask::full(256, 64);
  m.num_q_blocks = 5;
  EXPECT_THROW(m.validate(), ShapeError);
}

// A GPU-built mask defers its columns: here the "device" is a counted closure over a host-built
// mask's columns, so the test runs without a GPU and sees every fetch.
TEST(BlockMask, DeferredColumnsFetchOnceOnFirstRead) {
  std::vector<uint8_t> keep = {1, 0, 1, 0, 1, 0, 1, 1, 1};
  const BlockMask source = BlockMask::from_dense(keep, 300, 128, 1);
  int fetches = 0;
  auto m = std::make_shared<BlockMask>();
  *m = source;
  m->col_indices.clear();
  m->deferred_cols = std::make_shared<DeferredColumns>(
      [&fetches, cols = source.col_indices]() {
        ++fetches;
        return cols;
      },
      source.kept_blocks());
  // Geometry and sparsity read the row offsets only: no fetch.
  m->validate_geometry();
  EXPECT_NEAR(m->block_sparsity(), source.block_sparsity(), 1e-12);
  EXPECT_EQ(fetches, 0);
  // The first column reader fetches; copies share that one fetch.
  const BlockMask copy = *m;
  EXPECT_EQ(m->to_dense(), keep);
  EXPECT_TRUE(copy.contains(0, 2, 1));
  EXPECT_FALSE(copy.contains(0, 0, 1));
  m->validate();
  EXPECT_EQ(fetches, 1);
  EXPECT_TRUE(m->deferred_cols->fetched());
  // fetch_columns makes it a plain host mask with the same arrays.
  m->fetch_columns();
  EXPECT_FALSE(m->deferred_cols);
  EXPECT_EQ(m->col_indices, source.col_indices);
  EXPECT_EQ(fetches, 1);
}

TEST(BlockMask, DeferredColumnsOfTheWrongCountAreRefused) {
  BlockMask m = BlockMask::full(256, 128);
  const auto cols = m.col_indices;
  m.col_indices.clear();
  // Announced 3 columns where the offsets say 4: the O(1) geometry check names it.
  m.deferred_cols = std::make_shared<DeferredColumns>([cols]() { return cols; }, 3);
  EXPECT_THROW(m.validate_geometry(), ShapeError);
  // A fetch that returns another count than announced is an error, not a silent short read.
  m.deferred_cols = std::make_shared<DeferredColumns>([cols]() { return std::vector<int32_t>(cols.begin(), cols.end() - 1); }, 4);
  EXPECT_THROW(m.cols(), ShapeError);
}

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

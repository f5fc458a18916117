// Block mask → texture bytes, row read-outs, block extents; ordering polylines.
#include <gtest/gtest.h>

#include <set>

#include "engine/common/error.h"
#include "ui/mask_view.h"
#include "ui/ordering_view.h"

namespace lu = longshot::ui;
namespace la = longshot::attention;

namespace {
la::BlockMask diagonal_mask(int64_t blocks, int64_t heads) {
  std::vector<uint8_t> keep(heads * blocks * blocks, 0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t q = 0; q < blocks; ++q) {
      keep[(h * blocks + q) * blocks + q] = 1;
      if (h == 1) keep[(h * blocks + q) * blocks + 0] = 1;  // head 1 also sees the first block
    }
  return la::BlockMask::from_dense(keep, blocks * 4 - 1, 4, heads);
}
}  // namespace

TEST(MaskView, TextureMarksKeptAndDroppedBlocks) {
  const auto mask = diagonal_mask(3, 2);
  const lu::MaskColors colors;
  const auto px = lu::mask_to_rgba(mask, 1, false, colors);
  ASSERT_EQ(px.size(), 3u * 3 * 4);
  auto at = [&](int q, int k) { return &px[(q * 3 + k) * 4]; };
  EXPECT_EQ(at(2, 2)[0], colors.kept.r);
  EXPECT_EQ(at(2, 0)[0], colors.kept.r);   // head 1's extra column
  EXPECT_EQ(at(2, 1)[0], colors.dropped.r);
  EXPECT_EQ(at(0, 1)[2], colors.dropped.b);
  const auto head0 = lu::mask_to_rgba(mask, 0, false, colors);
  EXPECT_EQ(head0[(2 * 3 + 0) * 4], colors.dropped.r);
  const auto cached = lu::mask_to_rgba(mask, 0, true, colors);
  EXPECT_EQ(cached[0], colors.cached.r);
  EXPECT_EQ(cached[2], colors.cached.b);
  EXPECT_THROW(lu::mask_to_rgba(mask, 2, false), longshot::ParameterError);
  EXPECT_EQ(lu::kept_per_row(mask, 1), (std::vector<int64_t>{1, 2, 2}));
}

TEST(MaskView, SharedMaskServesEveryHead) {
  const auto mask = la::BlockMask::full(10, 4, 1);
  const auto px = lu::mask_to_rgba(mask, 7, false);
  EXPECT_EQ(px.size(), 3u * 3 * 4);
}

TEST(MaskView, BlockExtentOfRasterBlocks) {
  const la::TokenGrid g{2, 3, 4};
  const auto ord = la::make_ordering(la::OrderingKind::Raster, g);
  const auto e = lu::block_extent(ord, 6, 1);  // tokens 6..11: rows 1-2 of frame 0
  EXPECT_EQ(e.first_t, 0);
  EXPECT_EQ(e.first_h, 1);
  EXPECT_EQ(e.first_w, 2);
  EXPECT_EQ(e.h0, 1);
  EXPECT_EQ(e.h1, 2);
  EXPECT_EQ(e.w0, 0);
  EXPECT_EQ(e.w1, 3);
  EXPECT_EQ(e.tokens, 6);
  EXPECT_THROW(lu::block_extent(ord, 6, 4), longshot::ParameterError);
}

TEST(OrderingView, HilbertPolylineVisitsEveryCellOnceInTiles) {
  const la::TokenGrid g{3, 5, 6};
  const auto ord = la::make_ordering(la::OrderingKind::Hilbert, g);
  const auto d = lu::draw_ordering(ord, 16, 2, 1);
  ASSERT_EQ(d.x.size(), static_cast<size_t>(g.size()));
  EXPECT_EQ(d.num_blocks, (g.size() + 15) / 16);
  EXPECT_FLOAT_EQ(d.width, 2 * 6 + 1);
  EXPECT_FLOAT_EQ(d.height, 2 * 5 + 1);
  std::set<std::pair<float, float>> seen;
  for (size_t p = 0; p < d.x.size(); ++p) {
    seen.insert({d.x[p], d.y[p]});
    EXPECT_EQ(d.block_of_cell[ord.perm[p]], static_cast<int64_t>(p / 16));
    int64_t t, h, w;
    g.coords(ord.perm[p], t, h, w);
    EXPECT_FLOAT_EQ(d.x[p], (t % 2) * 7 + w + 0.5f);
    EXPECT_FLOAT_EQ(d.y[p], (t / 2) * 6 + h + 0.5f);
  }
  EXPECT_EQ(seen.size(), d.x.size());
  EXPECT_FLOAT_EQ(d.position.front(), 0.f);
  EXPECT_FLOAT_EQ(d.position.back(), 1.f);
}

// A grid no machine could run (a job that failed out of memory still has one) is refused with its
// size, not built: the panel showed "std::bad_alloc" for the tiny model at 8192x8192 x 4096 frames.
TEST(OrderingView, AGridTooLargeToDrawSaysSoInsteadOfBuildingIt) {
  EXPECT_EQ(lu::ordering_too_large(la::TokenGrid{126, 30, 52}), "");  // Wan's 6x horizon, 196,560 tokens
  EXPECT_EQ(lu::ordering_too_large(la::TokenGrid{1, 4096, 4096}), "");  // exactly the limit
  EXPECT_EQ(lu::ordering_too_large(la::TokenGrid{1025, 1024, 1024}),
            "The 1025x1024x1024 token grid has 1074790400 tokens: the walk is drawn for grids of up to 16777216 "
            "tokens.");
}

TEST(OrderingView, FrameRunsPartitionTheFrame) {
  const la::TokenGrid g{4, 4, 4};
  const auto ord = la::make_ordering(la::OrderingKind::Hilbert, g);
  size_t total = 0;
  for (int64_t t = 0; t < g.t; ++t) {
    for (const auto& run : lu::frame_runs(ord, t)) {
      for (size_t i = 1; i < run.size(); ++i) EXPECT_EQ(run[i], run[i - 1] + 1);
      for (auto p : run) EXPECT_EQ(ord.perm[p] / g.frame_size(), t);
      total += run.size();
    }
  }
  EXPECT_EQ(total, static_cast<size_t>(g.size()));
  const auto raster = la::make_ordering(la::OrderingKind::Raster, g);
  EXPECT_EQ(lu::frame_runs(raster, 2).size(), 1u);
  EXPECT_THROW(lu::frame_runs(raster, 4), longshot::ParameterError);
  EXPECT_THROW(lu::draw_ordering(raster, 0, 1), longshot::ParameterError);
}

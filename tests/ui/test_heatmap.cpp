// Heatmap pooling, scaling, legend and atlas layout; colormap parsing.
#include <gtest/gtest.h>

#include <numeric>

#include "engine/common/error.h"
#include "ui/colormap.h"
#include "ui/heatmap.h"

namespace lu = longshot::ui;
using longshot::attention::TokenGrid;

TEST(Heatmap, SumPoolingKeepsMassOnRaggedSizes) {
  const TokenGrid in{3, 7, 5}, out{2, 3, 2};
  std::vector<float> v(in.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37) % 11) / 10.f;
  const auto pooled = lu::pool_grid(v, in, out, lu::Pooling::Sum);
  ASSERT_EQ(pooled.size(), static_cast<size_t>(out.size()));
  EXPECT_NEAR(std::accumulate(pooled.begin(), pooled.end(), 0.0), std::accumulate(v.begin(), v.end(), 0.0), 1e-4);
}

TEST(Heatmap, IdentityAndMaxPooling) {
  const TokenGrid g{2, 4, 4};
  std::vector<float> v(g.size(), 0.f);
  v[g.index(1, 3, 2)] = 0.9f;
  EXPECT_EQ(lu::pool_grid(v, g, g), v);
  const auto m = lu::pool_grid(v, g, TokenGrid{1, 2, 2}, lu::Pooling::Max);
  ASSERT_EQ(m.size(), 4u);
  const TokenGrid small{1, 2, 2};
  EXPECT_FLOAT_EQ(m[small.index(0, 1, 1)], 0.9f);
  EXPECT_FLOAT_EQ(m[0], 0.f);
}

TEST(Heatmap, PoolingRejectsBadShapes) {
  const TokenGrid g{1, 4, 4};
  EXPECT_THROW(lu::pool_grid(std::vector<float>(15), g, g), longshot::ShapeError);
  const TokenGrid too_tall{1, 5, 4};
  EXPECT_THROW(lu::pool_grid(std::vector<float>(16), g, too_tall), longshot::ShapeError);
}

TEST(Heatmap, FitGridKeepsAspect) {
  const auto f = lu::fit_grid(TokenGrid{5, 30, 52}, 15, 15);
  EXPECT_EQ(f.t, 5);
  EXPECT_LE(f.h, 15);
  EXPECT_LE(f.w, 15);
  EXPECT_EQ(f.w, 15);
  EXPECT_EQ(f.h, 8);
  const TokenGrid small{2, 4, 4};
  EXPECT_EQ(lu::fit_grid(small, 8, 8), small);
}

TEST(Heatmap, LinearAndLogScales) {
  EXPECT_FLOAT_EQ(lu::normalize_value(0.5f, 1.f, lu::HeatScale::Linear), 0.5f);
  EXPECT_FLOAT_EQ(lu::normalize_value(1.f, 1.f, lu::HeatScale::Log, 4.f), 1.f);
  EXPECT_FLOAT_EQ(lu::normalize_value(1e-2f, 1.f, lu::HeatScale::Log, 4.f), 0.5f);
  EXPECT_FLOAT_EQ(lu::normalize_value(1e-6f, 1.f, lu::HeatScale::Log, 4.f), 0.f);
  EXPECT_FLOAT_EQ(lu::normalize_value(0.3f, 0.f, lu::HeatScale::Linear), 0.f);
  const auto ticks = lu::legend_ticks(2e-2f, lu::HeatScale::Log, 5, 4.f);
  ASSERT_EQ(ticks.size(), 5u);
  EXPECT_NEAR(ticks.back().value, 2e-2f, 1e-7);
  EXPECT_NEAR(ticks.front().value, 2e-6f, 1e-10);
  EXPECT_EQ(ticks.back().label, "2.0e-02");
}

TEST(Heatmap, AtlasTilesFramesWithGaps) {
  const TokenGrid g{5, 2, 3};
  std::vector<float> v(g.size());
  std::iota(v.begin(), v.end(), 0.f);
  const auto a = lu::make_atlas(v, g, 2, 1);
  EXPECT_EQ(a.columns, 2);
  EXPECT_EQ(a.rows, 3);
  EXPECT_EQ(a.width, 2 * 3 + 1);
  EXPECT_EQ(a.height, 3 * 2 + 2);
  EXPECT_FLOAT_EQ(a.vmax, static_cast<float>(g.size() - 1));
  int64_t t, h, w;
  // Frame 3 sits in row 1, column 1: x = 4 + w, y = 3 + h.
  ASSERT_TRUE(a.cell_to_grid(4 + 2, 3 + 1, t, h, w));
  EXPECT_EQ(t, 3);
  EXPECT_EQ(h, 1);
  EXPECT_EQ(w, 2);
  EXPECT_FLOAT_EQ(a.values[(3 + 1) * a.width + 4 + 2], v[g.index(3, 1, 2)]);
  EXPECT_FALSE(a.cell_to_grid(3, 0, t, h, w));      // gap column
  EXPECT_FALSE(a.cell_to_grid(4, 6, t, h, w));      // the empty 6th tile
  EXPECT_LT(a.values[3], 0.f);
}

TEST(Colormap, BuiltinsParseAndAreMonotoneInLightness) {
  const auto names = lu::Colormap::names();
  ASSERT_GE(names.size(), 3u);
  for (const auto& n : names) {
    const auto map = lu::Colormap::builtin(n);
    ASSERT_EQ(map.table().size(), 256u * 3);
    int prev = -1;
    for (int i = 0; i < 256; i += 16) {
      const auto c = map.at(i / 255.f);
      const int luma = 2 * c.r + 5 * c.g + c.b;
      EXPECT_GE(luma, prev) << n << " at " << i;
      prev = luma;
    }
  }
  EXPECT_THROW(lu::Colormap::builtin("nope"), longshot::ParameterError);
}

TEST(Colormap, ParseInterpolatesAndRejectsMalformed) {
  const auto m = lu::Colormap::parse("t", "# c\n0 0 0 0\n1 1 0.5 0\n");
  EXPECT_EQ(m.at(0.f), (lu::Rgb8{0, 0, 0}));
  EXPECT_EQ(m.at(1.f), (lu::Rgb8{255, 128, 0}));
  EXPECT_EQ(m.at(0.5f).r, 128);
  EXPECT_THROW(lu::Colormap::parse("t", "0 0 0\n1 1 1 1\n"), longshot::ParameterError);
  EXPECT_THROW(lu::Colormap::parse("t", "0.5 0 0 0\n1 1 1 1\n"), longshot::ParameterError);
  EXPECT_THROW(lu::Colormap::load("/nonexistent/map.txt"), longshot::IoError);
}

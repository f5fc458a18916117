// Token grid parsing and orderings: raster identity, Hilbert bijection and locality.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "engine/attention/token_grid.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

namespace {
int64_t manhattan(const TokenGrid& g, int64_t a, int64_t b) {
  int64_t ta, ya, xa, tb, yb, xb;
  g.coords(a, ta, ya, xa);
  g.coords(b, tb, yb, xb);
  return std::llabs(ta - tb) + std::llabs(ya - yb) + std::llabs(xa - xb);
}

// Mean pairwise Euclidean 3D distance of the tokens inside each consecutive 64-token block.
double mean_intra_block_distance(const Ordering& o, int64_t block) {
  double sum = 0.0;
  int64_t pairs = 0;
  const int64_t n = o.grid.size();
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = std::min(n, b0 + block);
    for (int64_t i = b0; i < b1; ++i) {
      for (int64_t j = i + 1; j < b1; ++j) {
        int64_t ta, ya, xa, tb, yb, xb;
        o.grid.coords(o.perm[size_t(i)], ta, ya, xa);
        o.grid.coords(o.perm[size_t(j)], tb, yb, xb);
        sum += std::sqrt(double((ta - tb) * (ta - tb) + (ya - yb) * (ya - yb) + (xa - xb) * (xa - xb)));
        ++pairs;
      }
    }
  }
  return sum / double(pairs);
}
}  // namespace

TEST(Grid, ParseAndPrint) {
  const TokenGrid g = TokenGrid::parse("21x30x52");
  EXPECT_EQ(g.t, 21);
  EXPECT_EQ(g.h, 30);
  EXPECT_EQ(g.w, 52);
  EXPECT_EQ(g.size(), 32760);
  EXPECT_EQ(g.to_string(), "21x30x52");
  int64_t t, h, w;
  g.coords(g.index(3, 7, 11), t, h, w);
  EXPECT_EQ(t, 3);
  EXPECT_EQ(h, 7);
  EXPECT_EQ(w, 11);
}

TEST(Grid, ParseErrorsNameGrid) {
  for (const char* bad : {"", "8x16", "8x16x", "0x16x16", "8x-1x16", "8x16x16x2", "axbxc", "8 x16x16"}) {
    try {
      TokenGrid::parse(bad);
      FAIL() << "no error for '" << bad << "'";
    } catch (const ParameterError& e) {
      EXPECT_EQ(e.parameter(), "grid") << bad;
    }
  }
}

TEST(Raster, IsIdentity) {
  const Ordering o = make_ordering(OrderingKind::Raster, {3, 4, 5});
  for (int64_t i = 0; i < 60; ++i) {
    EXPECT_EQ(o.perm[size_t(i)], i);
    EXPECT_EQ(o.inverse[size_t(i)], i);
  }
}

TEST(Hilbert, Bijection) {
  // Powers of two, odd sizes, flat and long boxes, Wan 480p's 21x30x52.
  for (const TokenGrid g : {TokenGrid{8, 16, 16}, TokenGrid{21, 30, 52}, TokenGrid{1, 1, 1}, TokenGrid{1, 7, 3},
                            TokenGrid{5, 3, 9}, TokenGrid{13, 2, 1}, TokenGrid{3, 3, 3}, TokenGrid{4, 12, 6}}) {
    const Ordering o = make_ordering(OrderingKind::Hilbert, g);
    ASSERT_EQ(int64_t(o.perm.size()), g.size()) << g.to_string();
    std::vector<int> seen(size_t(g.size()), 0);
    for (int64_t p = 0; p < g.size(); ++p) {
      const int64_t r = o.perm[size_t(p)];
      ASSERT_GE(r, 0);
      ASSERT_LT(r, g.size());
      ++seen[size_t(r)];
      EXPECT_EQ(o.inverse[size_t(r)], p);
    }
    for (int s : seen) ASSERT_EQ(s, 1) << g.to_string();
  }
}

TEST(Hilbert, BijectionAllSmallBoxes) {
  for (int64_t t = 1; t <= 7; ++t)
    for (int64_t h = 1; h <= 7; ++h)
      for (int64_t w = 1; w <= 7; ++w) {
        const Ordering o = make_ordering(OrderingKind::Hilbert, {t, h, w});
        std::vector<int64_t> sorted = o.perm;
        std::sort(sorted.begin(), sorted.end());
        for (int64_t i = 0; i < t * h * w; ++i) ASSERT_EQ(sorted[size_t(i)], i) << t << "x" << h << "x" << w;
      }
}

TEST(Hilbert, NeighbourSteps) {
  // All-even boxes: every step is to a face neighbour.
  for (const TokenGrid g : {TokenGrid{8, 16, 16}, TokenGrid{4, 6, 10}, TokenGrid{2, 30, 52}, TokenGrid{16, 2, 8}}) {
    const Ordering o = make_ordering(OrderingKind::Hilbert, g);
    for (int64_t p = 1; p < g.size(); ++p) {
      ASSERT_EQ(manhattan(g, o.perm[size_t(p - 1)], o.perm[size_t(p)]), 1) << g.to_string() << " step " << p;
    }
  }
  // Odd sizes (21 frames): almost all steps are face steps, the rest stay short.
  const TokenGrid g{21, 30, 52};
  const Ordering o = make_ordering(OrderingKind::Hilbert, g);
  int64_t non_face = 0;
  for (int64_t p = 1; p < g.size(); ++p) {
    const int64_t d = manhattan(g, o.perm[size_t(p - 1)], o.perm[size_t(p)]);
    ASSERT_LE(d, 4);
    non_face += d != 1;
  }
  EXPECT_LT(double(non_face) / double(g.size()), 0.005) << non_face << " non-face steps";
}

TEST(Hilbert, BlockLocalityBeatsRaster) {
  for (const TokenGrid g : {TokenGrid{8, 16, 16}, TokenGrid{5, 30, 52}}) {
    const double hil = mean_intra_block_distance(make_ordering(OrderingKind::Hilbert, g), 64);
    const double ras = mean_intra_block_distance(make_ordering(OrderingKind::Raster, g), 64);
    EXPECT_LT(hil, ras) << g.to_string();
    EXPECT_LT(hil, 0.75 * ras) << g.to_string() << " hilbert " << hil << " raster " << ras;
  }
}

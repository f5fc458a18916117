// The latent token grid of a video (T frames × H × W patches) and orderings of its tokens.
// Attention core: knows nothing of the model, the sampler or the pipeline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace longshot::attention {

struct TokenGrid {
  int64_t t = 1, h = 1, w = 1;

  int64_t size() const { return t * h * w; }
  int64_t frame_size() const { return h * w; }
  // Raster index of (ti, hi, wi): frame-major, then rows, then columns.
  int64_t index(int64_t ti, int64_t hi, int64_t wi) const { return (ti * h + hi) * w + wi; }
  void coords(int64_t index, int64_t& ti, int64_t& hi, int64_t& wi) const {
    wi = index % w;
    hi = (index / w) % h;
    ti = index / (w * h);
  }
  std::string to_string() const;  // "21x30x52"
  // Parses "TxHxW"; throws ParameterError("grid", ...) on malformed or non-positive sizes.
  static TokenGrid parse(const std::string& text);
  bool operator==(const TokenGrid& o) const { return t == o.t && h == o.h && w == o.w; }
  bool operator!=(const TokenGrid& o) const { return !(*this == o); }
};

enum class OrderingKind { Raster, Hilbert };
const char* to_string(OrderingKind kind);

// A token ordering as a permutation: position p of the ordered sequence holds raster token
// perm[p]; inverse[perm[p]] == p. Gather with perm, scatter back with inverse.
struct Ordering {
  OrderingKind kind = OrderingKind::Raster;
  TokenGrid grid;
  std::vector<int64_t> perm;
  std::vector<int64_t> inverse;
};

// Raster is the identity. Hilbert is a generalized 3D Hilbert walk ("gilbert") that visits every
// cell of any T×H×W box, each step to a face neighbour where the box sizes allow it.
Ordering make_ordering(OrderingKind kind, const TokenGrid& grid);

}  // namespace longshot::attention

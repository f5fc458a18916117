// Token grid parsing and token orderings (raster, generalized 3D Hilbert).
//
// The Hilbert ordering is a generalized 3D Hilbert walk ("gilbert"): a recursive split of any
// T×H×W box into sub-boxes, each walked from a corner to the adjacent corner along its major
// axis, so consecutive sub-walks meet face to face. Where the box parities make a Hamiltonian
// face-neighbour path impossible (an odd major axis with an even minor one) a few steps are
// diagonal; for all-even boxes every step is a face step (tests/attention/test_token_grid.cpp).
#include "engine/attention/token_grid.h"

#include <cstdlib>
#include <sstream>

#include "engine/common/error.h"

namespace longshot::attention {

std::string TokenGrid::to_string() const {
  return std::to_string(t) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

TokenGrid TokenGrid::parse(const std::string& text) {
  int64_t v[3] = {0, 0, 0};
  size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    size_t end = pos;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
    if (end == pos || end - pos > 9) {
      throw ParameterError("grid", "expected TxHxW with positive integers (e.g. 8x16x16), got '" + text + "'");
    }
    v[i] = std::stoll(text.substr(pos, end - pos));
    if (v[i] <= 0) throw ParameterError("grid", "every size must be positive, got '" + text + "'");
    pos = end;
    if (i < 2) {
      if (pos >= text.size() || (text[pos] != 'x' && text[pos] != 'X')) {
        throw ParameterError("grid", "expected TxHxW (e.g. 8x16x16), got '" + text + "'");
      }
      ++pos;
    }
  }
  if (pos != text.size()) throw ParameterError("grid", "trailing text after TxHxW in '" + text + "'");
  return TokenGrid{v[0], v[1], v[2]};
}

const char* to_string(OrderingKind kind) {
  switch (kind) {
    case OrderingKind::Raster: return "raster";
    case OrderingKind::Hilbert: return "hilbert";
  }
  return "unknown";
}

namespace {

// Axis-aligned integer vector: exactly one component is non-zero for the walk's axes.
struct Vec3 {
  int64_t x = 0, y = 0, z = 0;
};
Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Vec3 operator-(Vec3 a) { return {-a.x, -a.y, -a.z}; }
int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }
Vec3 half(Vec3 a) { return {floor_half(a.x), floor_half(a.y), floor_half(a.z)}; }
int64_t extent(Vec3 a) { return std::llabs(a.x + a.y + a.z); }
int64_t sign(int64_t v) { return (v > 0) - (v < 0); }
Vec3 unit(Vec3 a) { return {sign(a.x), sign(a.y), sign(a.z)}; }

// Visits the box spanned by (a, b, c) from corner p, ending at p + (a − unit(a)).
// x = w (column), y = h (row), z = t (frame).
class HilbertWalk {
 public:
  explicit HilbertWalk(const TokenGrid& grid) : grid_(grid) { out_.reserve(static_cast<size_t>(grid.size())); }

  std::vector<int64_t> run() {
    const Vec3 a{grid_.w, 0, 0}, b{0, grid_.h, 0}, c{0, 0, grid_.t};
    // The longest axis leads so the first split halves it.
    if (grid_.w >= grid_.h && grid_.w >= grid_.t) {
      walk({}, a, b, c);
    } else if (grid_.h >= grid_.w && grid_.h >= grid_.t) {
      walk({}, b, a, c);
    } else {
      walk({}, c, a, b);
    }
    return std::move(out_);
  }

 private:
  void emit(Vec3 p) { out_.push_back(grid_.index(p.z, p.y, p.x)); }
  void line(Vec3 p, Vec3 axis) {
    const Vec3 d = unit(axis);
    for (int64_t i = 0, n = extent(axis); i < n; ++i, p = p + d) emit(p);
  }

  void walk(Vec3 p, Vec3 a, Vec3 b, Vec3 c) {
    const int64_t w = extent(a), h = extent(b), d = extent(c);
    const Vec3 da = unit(a), db = unit(b), dc = unit(c);
    if (h == 1 && d == 1) return line(p, a);
    if (w == 1 && d == 1) return line(p, b);
    if (w == 1 && h == 1) return line(p, c);

    Vec3 a2 = half(a), b2 = half(b), c2 = half(c);
    // Even halves keep the sub-boxes' parities walkable face to face.
    if (extent(a2) % 2 && w > 2) a2 = a2 + da;
    if (extent(b2) % 2 && h > 2) b2 = b2 + db;
    if (extent(c2) % 2 && d > 2) c2 = c2 + dc;

    if (2 * w > 3 * h && 2 * w > 3 * d) {
      // Long box: two halves along a.
      walk(p, a2, b, c);
      walk(p + a2, a - a2, b, c);
    } else if (3 * h > 4 * d) {
      // Flat in c: split a and b only (the 2D scheme, c carried whole).
      walk(p, b2, c, a2);
      walk(p + b2, a, b - b2, c);
      walk(p + (a - da) + (b2 - db), -b2, c, -(a - a2));
    } else if (3 * d > 4 * h) {
      // Flat in b: split a and c only.
      walk(p, c2, a2, b);
      walk(p + c2, a, b, c - c2);
      walk(p + (a - da) + (c2 - dc), -c2, -(a - a2), b);
    } else {
      // Cube-like: eight octants in five sub-walks (000 | 010 011 | 001 101 | 111 110 | 100).
      walk(p, b2, c2, a2);
      walk(p + b2, c, a2, b - b2);
      walk(p + (b2 - db) + (c - dc), a, -b2, -(c - c2));
      walk(p + (a - da) + b2 + (c - dc), -c, -(a - a2), b - b2);
      walk(p + (a - da) + (b2 - db), -b2, c2, -(a - a2));
    }
  }

  TokenGrid grid_;
  std::vector<int64_t> out_;
};

}  // namespace

Ordering make_ordering(OrderingKind kind, const TokenGrid& grid) {
  if (grid.t <= 0 || grid.h <= 0 || grid.w <= 0) {
    throw ParameterError("grid", "every size must be positive, got " + grid.to_string());
  }
  Ordering o;
  o.kind = kind;
  o.grid = grid;
  const int64_t n = grid.size();
  if (kind == OrderingKind::Raster) {
    o.perm.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) o.perm[static_cast<size_t>(i)] = i;
  } else {
    o.perm = HilbertWalk(grid).run();
  }
  o.inverse.assign(static_cast<size_t>(n), -1);
  for (int64_t p = 0; p < n; ++p) o.inverse[static_cast<size_t>(o.perm[static_cast<size_t>(p)])] = p;
  return o;
}

}  // namespace longshot::attention

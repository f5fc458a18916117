#include "ui/mask_view.h"

#include <algorithm>

#include "engine/common/error.h"

namespace longshot::ui {

namespace {
int64_t checked_head(const attention::BlockMask& mask, int64_t head) {
  if (mask.num_heads == 1) return 0;
  if (head < 0 || head >= mask.num_heads)
    throw ParameterError("head", std::to_string(head) + " is outside the mask's " + std::to_string(mask.num_heads) +
                                     " heads");
  return head;
}
}  // namespace

std::vector<uint8_t> mask_to_rgba(const attention::BlockMask& mask, int64_t head, bool from_cache,
                                  const MaskColors& colors) {
  const int64_t h = checked_head(mask, head);
  if (static_cast<int64_t>(mask.row_offsets.size()) != mask.num_rows() + 1)
    throw ShapeError("block mask: row_offsets has " + std::to_string(mask.row_offsets.size()) + " entries, expected " +
                     std::to_string(mask.num_rows() + 1));
  const Rgba8 on = from_cache ? colors.cached : colors.kept;
  std::vector<uint8_t> rgba(static_cast<size_t>(mask.num_q_blocks * mask.num_k_blocks) * 4);
  for (size_t i = 0; i < rgba.size(); i += 4) {
    rgba[i] = colors.dropped.r;
    rgba[i + 1] = colors.dropped.g;
    rgba[i + 2] = colors.dropped.b;
    rgba[i + 3] = colors.dropped.a;
  }
  const auto& cols = mask.cols();
  for (int64_t qb = 0; qb < mask.num_q_blocks; ++qb) {
    const int64_t row = h * mask.num_q_blocks + qb;
    for (int32_t j = mask.row_offsets[row]; j < mask.row_offsets[row + 1]; ++j) {
      const int64_t kb = cols[j];
      if (kb < 0 || kb >= mask.num_k_blocks)
        throw ShapeError("block mask: key block " + std::to_string(kb) + " out of range in row " + std::to_string(row));
      uint8_t* px = &rgba[static_cast<size_t>(qb * mask.num_k_blocks + kb) * 4];
      px[0] = on.r;
      px[1] = on.g;
      px[2] = on.b;
      px[3] = on.a;
    }
  }
  return rgba;
}

std::vector<int64_t> kept_per_row(const attention::BlockMask& mask, int64_t head) {
  const int64_t h = checked_head(mask, head);
  std::vector<int64_t> kept(mask.num_q_blocks);
  for (int64_t qb = 0; qb < mask.num_q_blocks; ++qb) {
    const int64_t row = h * mask.num_q_blocks + qb;
    kept[qb] = mask.row_offsets[row + 1] - mask.row_offsets[row];
  }
  return kept;
}

BlockExtent block_extent(const attention::Ordering& ordering, int64_t block_size, int64_t block) {
  const int64_t n = static_cast<int64_t>(ordering.perm.size());
  if (block_size < 1) throw ParameterError("block_size", "must be positive");
  if (block < 0 || block * block_size >= n)
    throw ParameterError("block", std::to_string(block) + " is outside the " +
                                      std::to_string((n + block_size - 1) / block_size) + " blocks");
  BlockExtent e;
  const int64_t begin = block * block_size, end = std::min(n, begin + block_size);
  ordering.grid.coords(ordering.perm[begin], e.first_t, e.first_h, e.first_w);
  e.t0 = e.t1 = e.first_t;
  e.h0 = e.h1 = e.first_h;
  e.w0 = e.w1 = e.first_w;
  for (int64_t p = begin; p < end; ++p) {
    int64_t t, h, w;
    ordering.grid.coords(ordering.perm[p], t, h, w);
    e.t0 = std::min(e.t0, t), e.t1 = std::max(e.t1, t);
    e.h0 = std::min(e.h0, h), e.h1 = std::max(e.h1, h);
    e.w0 = std::min(e.w0, w), e.w1 = std::max(e.w1, w);
  }
  e.tokens = end - begin;
  return e;
}

}  // namespace longshot::ui

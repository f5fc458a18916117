// Internal to the attention core: the geometry every square mask starts from, host (BlockMask's
// factories, the policies' row builder, the mask trace reader) or device (cuda/ adapter). Nothing
// outside engine/attention includes it; it knows no tensor.
#pragma once
#include <cstdint>

#include "engine/attention/block_mask.h"

namespace longshot::attention::detail {

// A square mask (as many key blocks as query blocks) with its geometry set and no rows yet, for
// either mask type (BlockMask, cuda::DeviceBlockMask: the same field names). Unchecked beyond
// blocks_for (ParameterError for block_size <= 0 or seq_len < 0).
template <class Mask>
Mask square_geometry(int64_t seq_len, int64_t block_size, int64_t num_heads, OrderingKind ordering) {
  Mask m;
  m.seq_len = seq_len;
  m.block_size = block_size;
  m.num_heads = num_heads;
  m.num_q_blocks = m.num_k_blocks = BlockMask::blocks_for(seq_len, block_size);
  m.ordering = ordering;
  return m;
}

// The host one, checked: ParameterError naming num_heads, block_size or seq_len when one is out
// of range.
BlockMask square_mask_geometry(int64_t seq_len, int64_t block_size, int64_t num_heads, OrderingKind ordering);

}  // namespace longshot::attention::detail

// Internal to the attention core: the checked geometry every square host mask starts from
// (BlockMask's factories, the policies' row builder, the mask trace reader). Nothing outside
// engine/attention includes it; it knows no tensor.
#pragma once
#include <cstdint>

#include "engine/attention/block_mask.h"

namespace longshot::attention::detail {

// A square mask (as many key blocks as query blocks) with its geometry set and no rows yet.
// Throws ParameterError naming num_heads, block_size or seq_len when one is out of range.
BlockMask square_mask_geometry(int64_t seq_len, int64_t block_size, int64_t num_heads, OrderingKind ordering);

}  // namespace longshot::attention::detail

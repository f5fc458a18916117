// Mask traces: the documented, versioned JSON file that records masks per step / layer / head
// ("longshot-mask-trace", version 1; docs/attention.md). The CLI's `masks --out` writes one; the
// generator's `--trace` reuses it; the studio reads it. Attention core: no model, no pipeline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/attention/block_mask.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/token_grid.h"

namespace longshot::attention {

inline constexpr const char* kMaskTraceFormat = "longshot-mask-trace";
inline constexpr int kMaskTraceVersion = 1;

// One mask of one attention call: head == -1 is a mask shared by every head (num_q_blocks
// rows); head >= 0 is that head's rows only.
struct MaskTraceEntry {
  int step = 0;
  int layer = 0;
  int head = -1;
  double sparsity = 0.0;  // block sparsity of these rows
  std::vector<int32_t> row_offsets;
  std::vector<int32_t> col_indices;
};

struct MaskTrace {
  TokenGrid grid;
  int64_t block_size = 128;
  OrderingKind ordering = OrderingKind::Raster;
  std::string mode;
  ParamValues params;
  std::vector<MaskTraceEntry> entries;

  // Appends the mask of (step, layer): one entry per head, or one shared entry (head −1).
  // Throws ShapeError when the mask's seq_len / block size / ordering do not match the trace.
  void add(const BlockMask& mask, int step, int layer);
  // The BlockMask (one head) of an entry.
  BlockMask entry_mask(const MaskTraceEntry& entry) const;
};

// Writes to `path` through a temporary file renamed on success; throws IoError naming the file.
void write_mask_trace(const MaskTrace& trace, const std::string& path);
// Reads and validates; throws IoError naming the file and the field that is wrong.
MaskTrace read_mask_trace(const std::string& path);
// The JSON text itself (write_mask_trace's content), and its parser (`source` names it in errors).
std::string mask_trace_to_json(const MaskTrace& trace);
MaskTrace mask_trace_from_json(const std::string& text, const std::string& source);

}  // namespace longshot::attention

// libFuzzer target: the mask-trace reader (mask_trace_from_json: what read_mask_trace and the
// studio run on a trace file, after reading its bytes). A trace it accepts must give every entry's
// mask and survive our own writer: written again, it reads back with the same entries.
// Any exception but longshot::Error is a finding; so is a failed round trip (trap).
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/attention/mask_trace.h"
#include "engine/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longshot::attention;
  const std::string text(reinterpret_cast<const char*>(data), size);
  MaskTrace trace;
  try {
    trace = mask_trace_from_json(text, "fuzz input");
  } catch (const longshot::Error&) {
    return 0;
  }
  for (const auto& entry : trace.entries) (void)trace.entry_mask(entry);
  const MaskTrace again = mask_trace_from_json(mask_trace_to_json(trace), "round trip");
  if (again.entries.size() != trace.entries.size() || again.grid.size() != trace.grid.size()) __builtin_trap();
  for (size_t i = 0; i < trace.entries.size(); ++i)
    if (again.entries[i].col_indices != trace.entries[i].col_indices) __builtin_trap();
  return 0;
}

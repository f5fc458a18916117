// libFuzzer target: the method-preset JSON parser (attention::parse_preset, what `--preset FILE`
// and the studio's preset menu load) and the `--param k=v` parser (parse_param_assignment, the
// CLI's generate / masks / calibrate flag): the whole input as a preset, then each line of it as a
// --param value resolved against the preset's mode (or dynamicrad, the mode with most parameters).
// Any exception but longshot::Error is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/attention/mask_policy.h"
#include "engine/attention/presets.h"
#include "engine/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longshot::attention;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string mode = "dynamicrad";
  try {
    mode = parse_preset(text, "fuzz input").mode;
  } catch (const longshot::Error&) {
  }
  ParamValues params;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    try {
      parse_param_assignment(text.substr(start, end - start), params);
    } catch (const longshot::Error&) {
    }
    start = end + 1;
  }
  try {
    (void)resolve_params(find_policy(mode), params);
  } catch (const longshot::Error&) {
  }
  return 0;
}

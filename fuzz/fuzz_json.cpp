// libFuzzer target: the JSON readers' shared guard (json_nesting_depth before any parse, json_brief
// for messages) and the shard index reader (SafetensorsSet over a `*.safetensors.index.json`).
// Any exception but longshot::Error (or nlohmann's own, which every reader wraps) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "engine/io/file_checks.h"
#include "engine/io/safetensors.h"

namespace {

const std::string& index_path() {
  static const std::string path = [] {
    // tmpfs when there is one: a file is written per input.
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    const auto dir = base / ("longshot_fuzz_json_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return (dir / "model.safetensors.index.json").string();
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  constexpr size_t kLimit = 64;
  if (longshot::io::json_nesting_depth(text, text + size, kLimit) <= kLimit) {
    try {
      const auto j = nlohmann::json::parse(text, text + size);
      const auto brief = longshot::io::json_brief(j, 80);
      if (brief.size() > 80 + 4) __builtin_trap();  // the bound the messages rely on ("…" is 3 bytes)
    } catch (const nlohmann::json::exception&) {
      // parse_error, and out_of_range (406) for a number that overflows a double: the readers
      // catch json::exception (the mask-trace reader caught parse_error alone — found here).
    }
  }
  {
    std::ofstream out(index_path(), std::ios::binary | std::ios::trunc);
    out.write(text, std::streamsize(size));
  }
  try {
    longshot::io::SafetensorsSet set(index_path());
    set.names();
  } catch (const longshot::Error&) {
  }
  return 0;
}

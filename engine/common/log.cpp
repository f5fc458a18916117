#include "engine/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace longshot {

void init_logging(bool verbose) {
  static bool sink_installed = false;
  if (!sink_installed) {
    auto logger = spdlog::stderr_color_mt("longshot");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    sink_installed = true;
  }
  spdlog::level::level_enum level = verbose ? spdlog::level::debug : spdlog::level::info;
  if (const char* env = std::getenv("LONGSHOT_LOG")) {
    const std::string name(env);
    const auto parsed = spdlog::level::from_str(name);
    // from_str maps unknown names to 'off'; only accept 'off' when asked for explicitly.
    if (parsed != spdlog::level::off || name == "off") {
      level = parsed;
    } else {
      spdlog::warn("LONGSHOT_LOG='{}' is not a level (trace, debug, info, warn, error, off); using {}",
                   name, spdlog::level::to_string_view(level));
    }
  }
  spdlog::set_level(level);
}

}  // namespace longshot

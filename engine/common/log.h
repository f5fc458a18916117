// The one logging path: spdlog. Level from --verbose or the LONGSHOT_LOG environment variable
// (trace, debug, info, warn, error, off). The studio adds its own sink to the default logger.
#pragma once
#include <spdlog/spdlog.h>

namespace longshot {

// Sets the default logger's level: LONGSHOT_LOG if set, else debug when verbose, else info.
// Logs go to stderr so stdout stays clean for tables and JSON.
void init_logging(bool verbose = false);

}  // namespace longshot

// The name a message gives a signal that stopped a run ("SIGTERM"), shared by the CLI's interrupt
// guard and the studio's signal watcher so both say the same words.
#pragma once
#include <csignal>
#include <cstdio>

namespace longshot {

inline const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: break;
  }
  static thread_local char buf[24];
  std::snprintf(buf, sizeof buf, "signal %d", sig);
  return buf;
}

}  // namespace longshot

// Signal handlers that only record: everything else happens on the command's own thread.
#include "app/cli/signals.h"

#include <signal.h>

#include <atomic>
#include <cstdio>

#include "engine/common/signal_name.h"

namespace longshot::cli {

namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler writes it");

void on_signal(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // A second signal: the user insists. Default action, now.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
}

struct sigaction g_old[3];
struct sigaction g_old_xfsz;

}  // namespace

InterruptGuard::InterruptGuard() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &sa, &g_old[i]);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGXFSZ, &ignore, &g_old_xfsz);
}

InterruptGuard::~InterruptGuard() {
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &g_old[i], nullptr);
  ::sigaction(SIGXFSZ, &g_old_xfsz, nullptr);
}

int InterruptGuard::signal_received() { return g_signal.load(); }

const char* signal_name(int sig) { return ::longshot::signal_name(sig); }

}  // namespace longshot::cli

#include "app/studio/signal_watcher.h"

#include <QSocketNotifier>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

#include "engine/common/error.h"
#include "engine/common/signal_name.h"

namespace longshot::studio {

namespace {
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler writes it");
int g_pipe[2] = {-1, -1};
struct sigaction g_old[3];

void on_signal(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // A second signal: the user insists. Default action, now.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  const int saved = errno;  // the interrupted code may be reading errno
  const char byte = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &byte, 1);
  errno = saved;
}
}  // namespace

SignalWatcher::SignalWatcher(QObject* parent) : QObject(parent) {
  if (::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw IoError("studio: cannot create the signal pipe");
  g_signal = 0;
  notifier_ = new QSocketNotifier(g_pipe[0], QSocketNotifier::Read, this);
  connect(notifier_, &QSocketNotifier::activated, this, [this] {
    char byte = 0;
    while (::read(g_pipe[0], &byte, 1) == 1) {
    }
    if (const int sig = g_signal.load()) Q_EMIT received(sig);
  });
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // Qt's and the worker's system calls carry on
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &sa, &g_old[i]);
}

SignalWatcher::~SignalWatcher() {
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &g_old[i], nullptr);
  ::close(g_pipe[0]);
  ::close(g_pipe[1]);
  g_pipe[0] = g_pipe[1] = -1;
}

int SignalWatcher::pending() { return g_signal.load(); }

const char* SignalWatcher::name(int sig) { return ::longshot::signal_name(sig); }

}  // namespace longshot::studio

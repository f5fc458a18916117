// SIGINT, SIGTERM and SIGHUP in the studio: the handler only records the signal and writes one
// byte to a pipe (both async-signal-safe); a QSocketNotifier on the pipe brings it to the GUI
// thread as `received(sig)`, where the window cancels its jobs, writes its history and quits with
// 128 + signal. Code on the GUI thread that runs long without returning to the event loop (an
// export) polls `pending()` and abandons its staged files. A second signal ends the process at
// once, as the default action would. Knows nothing of the engine.
#pragma once
#include <QObject>

class QSocketNotifier;

namespace longshot::studio {

class SignalWatcher : public QObject {
  Q_OBJECT

 public:
  // Installs the handlers (one watcher per process); the destructor restores the old ones.
  explicit SignalWatcher(QObject* parent = nullptr);
  ~SignalWatcher() override;

  // The first signal received since the watcher was made (0: none); any thread.
  static int pending();
  // "SIGINT", "SIGTERM", "SIGHUP" (or "signal N").
  static const char* name(int sig);

 Q_SIGNALS:
  void received(int sig);

 private:
  QSocketNotifier* notifier_ = nullptr;
};

}  // namespace longshot::studio

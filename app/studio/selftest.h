// `longshot-studio --selftest OUT.png`: drives the real window unattended — a short generation with
// the tiny model, a mode switch through the dock mid-run, an A/B comparison — then saves a
// screenshot and checks that every panel drew non-trivial content and that the switch showed up
// in the events. The Xvfb CTest test runs it.
#pragma once
#include <QObject>
#include <QString>
#include <cstdint>

class QTimer;

namespace longshot::studio {

class StudioWindow;

class SelfTest : public QObject {
  Q_OBJECT

 public:
  SelfTest(StudioWindow& window, QString screenshot_path, double timeout_s = 240);
  void start();

 private:
  void poll();
  void finish(bool ok, const QString& why);
  bool check_panels(QString& report);
  bool save_screenshot(const QString& path);

  enum class Phase { Start, WaitSwitchPoint, WaitFirstJob, WaitCompare, Settle, Done };
  StudioWindow& window_;
  QString path_;
  double timeout_s_;
  QTimer* timer_ = nullptr;
  Phase phase_ = Phase::Start;
  uint64_t first_job_ = 0;
  uint64_t frames_at_settle_ = 0;
  qint64 started_ms_ = 0;
};

}  // namespace longshot::studio

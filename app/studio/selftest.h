// `longshot-studio --selftest OUT.png`: drives the real window unattended — a short generation with
// the tiny model, a mode switch through the dock mid-run, an A/B comparison — then saves a
// screenshot and checks that every panel drew non-trivial content and that the switch showed up
// in the events; then a two-point sweep (its trade-off curve must draw) and the history file
// (every ended job, with its seed, must be in it). First of all, every preset of the dock's preset
// menu must set the request exactly as `longshot generate --preset` does. The Xvfb CTest test runs it.
#pragma once
#include <QObject>
#include <QString>
#include <cstdint>
#include <string>

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
  void phase_start();
  void phase_switch_point();
  void phase_first_job();
  void phase_compare();
  void phase_settle();
  void phase_sweep();
  bool check_preset_menu(QString& why);
  bool failed(uint64_t job) const;
  void finish(bool ok, const QString& why);
  bool check_panels(QString& report);
  bool save_screenshot(const QString& path);

  enum class Phase { Start, WaitSwitchPoint, WaitFirstJob, WaitCompare, WaitSweep, Settle, Done };
  StudioWindow& window_;
  QString path_;
  double timeout_s_;
  QTimer* timer_ = nullptr;
  Phase phase_ = Phase::Start;
  uint64_t first_job_ = 0;
  uint64_t frames_at_settle_ = 0;
  qint64 started_ms_ = 0;
  QString history_path_;
};

// The window with its GL views painted in from their own framebuffer (a widget grab may or may not
// include GL content, depending on the platform plugin), as PNG.
bool save_window_screenshot(StudioWindow& window, const QString& path);

// `--screenshot OUT.png` / `--export OUT`: once the jobs started by the command line have all
// ended, lets the views settle, saves the screenshot and / or exports the clip, and quits (exit 1
// when a job failed, the export failed or `timeout_s` passed; 128 + signal after a signal). The
// README's and docs/studio.md's pictures are made this way.
class ScreenshotWhenDone : public QObject {
  Q_OBJECT

 public:
  // `path` "" = no screenshot; `export_path` "" = no export.
  ScreenshotWhenDone(StudioWindow& window, QString path, std::string export_path, double timeout_s = 900);

 private:
  void poll();
  StudioWindow& window_;
  QString path_;
  std::string export_path_;
  double timeout_s_;
  qint64 started_ms_ = 0;
  qint64 idle_since_ms_ = 0;
  uint64_t frames_at_idle_ = 0;
};

}  // namespace longshot::studio

#include "app/studio/selftest.h"

#include <QApplication>
#include <QComboBox>
#include <QDateTime>
#include <QImage>
#include <QPainter>
#include <QPixmap>
#include <QSet>
#include <QTimer>
#include <cmath>
#include <cstdio>

#include "app/studio/generation_dock.h"
#include "app/studio/imgui_widget.h"
#include "app/studio/studio_window.h"

namespace longshot::studio {

namespace {
constexpr const char* kFirstMode = "dense";
constexpr const char* kSwitchMode = "lvsa";
constexpr int kSwitchAfterSteps = 2;
}  // namespace

SelfTest::SelfTest(StudioWindow& window, QString screenshot_path, double timeout_s)
    : QObject(&window), window_(window), path_(std::move(screenshot_path)), timeout_s_(timeout_s) {}

void SelfTest::start() {
  timer_ = new QTimer(this);
  connect(timer_, &QTimer::timeout, this, &SelfTest::poll);
  timer_->start(50);
  started_ms_ = QDateTime::currentMSecsSinceEpoch();
}

void SelfTest::poll() {
  const double elapsed = (QDateTime::currentMSecsSinceEpoch() - started_ms_) / 1000.0;
  if (elapsed > timeout_s_) {
    finish(false, QString("timed out after %1 s in phase %2").arg(timeout_s_).arg(static_cast<int>(phase_)));
    return;
  }
  const auto& state = window_.state();
  auto failed = [&](uint64_t id) {
    const auto* r = state.find(id);
    return r && (r->status == ui::RunStatus::Failed || r->status == ui::RunStatus::Cancelled);
  };
  switch (phase_) {
    case Phase::Start: {
      if (!window_.gl_widget()->views()) return;  // GL not up yet
      pipeline::GenerationRequest r;
      r.prompt = "a small red circle bounces left to right on a dark blue background";
      r.model = "tiny";
      r.frames = 8;
      r.width = 32;
      r.height = 32;
      r.steps = 6;
      r.guidance = 3.0;
      r.seed = 7;
      r.attention.mode = kFirstMode;
      r.attention.block_size = 32;
      r.inspect_layer = 1;
      window_.dock()->set_request(r);
      window_.settings().view.compare_mode_a = kFirstMode;
      window_.settings().view.compare_mode_b = kSwitchMode;
      first_job_ = window_.submit_from_dock();
      if (!first_job_) return finish(false, "the engine refused the tiny request");
      std::printf("selftest: job %llu queued (tiny, 8 frames 32x32, 6 steps, %s)\n",
                  static_cast<unsigned long long>(first_job_), kFirstMode);
      phase_ = Phase::WaitSwitchPoint;
      return;
    }
    case Phase::WaitSwitchPoint: {
      const auto* r = state.find(first_job_);
      if (failed(first_job_)) return finish(false, "first job failed: " + QString::fromStdString(r->error));
      if (!r || r->steps.size() < kSwitchAfterSteps) return;
      if (r->status != ui::RunStatus::Running) return finish(false, "first job ended before the mode switch");
      // Through the dock, as a user would: the combo's change reaches Generator::set_attention.
      QComboBox* mode_combo = nullptr;
      for (auto* c : window_.dock()->findChildren<QComboBox*>())
        if (c->findText(kSwitchMode) >= 0) mode_combo = c;
      if (!mode_combo) return finish(false, "no attention mode combo in the dock");
      mode_combo->setCurrentText(kSwitchMode);
      std::printf("selftest: switched the dock to %s after step %zu\n", kSwitchMode, r->steps.size());
      phase_ = Phase::WaitFirstJob;
      return;
    }
    case Phase::WaitFirstJob: {
      const auto* r = state.find(first_job_);
      if (failed(first_job_)) return finish(false, "first job failed: " + QString::fromStdString(r->error));
      if (!r || r->status != ui::RunStatus::Finished) return;
      std::printf("selftest: job %llu finished, %zu mode switch(es)\n", static_cast<unsigned long long>(first_job_),
                  r->mode_switches.size());
      // The state right after the switched run, for the docs: markers of the switch in view.
      {
        QString switch_shot = path_;
        switch_shot.insert(switch_shot.endsWith(".png") ? switch_shot.size() - 4 : switch_shot.size(), "_switch");
        std::printf("selftest: %s %s\n", save_screenshot(switch_shot) ? "saved" : "could not save",
                    switch_shot.toUtf8().constData());
      }
      window_.run_compare();
      phase_ = Phase::WaitCompare;
      return;
    }
    case Phase::WaitCompare: {
      size_t finished = 0;
      for (const auto& run : state.runs()) {
        if (run.job_id == first_job_) continue;
        if (run.status == ui::RunStatus::Failed) return finish(false, "compare job failed: " + QString::fromStdString(run.error));
        if (run.status == ui::RunStatus::Finished) ++finished;
      }
      if (finished < 2) return;
      frames_at_settle_ = window_.gl_widget()->frames_drawn();
      phase_ = Phase::Settle;
      return;
    }
    case Phase::Settle: {
      // A few frames so every texture is uploaded and the layout has settled.
      if (window_.gl_widget()->frames_drawn() < frames_at_settle_ + 10) return;
      QString report;
      bool ok = check_panels(report);
      const size_t switches = state.mode_switch_count();
      const auto* r = state.find(first_job_);
      if (switches == 0 || !r || r->mode_switches.empty()) {
        ok = false;
        report += "no mode switch in the events\n";
      } else {
        const auto& sw = r->mode_switches.front();
        report += QString("mode switch in the events: %1 -> %2 from step %3\n")
                      .arg(QString::fromStdString(sw.from), QString::fromStdString(sw.to))
                      .arg(sw.step);
        if (sw.to != kSwitchMode) {
          ok = false;
          report += "the switch went to the wrong mode\n";
        }
      }
      std::printf("%s", report.toUtf8().constData());
      finish(ok, ok ? "all panels drew content and the mode switch appeared" : "checks failed");
      return;
    }
    case Phase::Done:
      return;
  }
}

bool SelfTest::check_panels(QString& report) {
  QImage views = window_.gl_widget()->grabFramebuffer().convertToFormat(QImage::Format_RGB32);
  const auto& rects = window_.gl_widget()->views()->last_rects();
  const double scale = views.width() / std::max(1.0, static_cast<double>(window_.gl_widget()->width()));
  bool ok = rects.size() == ui::Views::panel_names().size();
  if (!ok) report += QString("expected %1 panels, drew %2\n").arg(ui::Views::panel_names().size()).arg(rects.size());
  for (const auto& r : rects) {
    const QRect box(static_cast<int>(r.x * scale), static_cast<int>(r.y * scale), static_cast<int>(r.w * scale),
                    static_cast<int>(r.h * scale));
    const QImage crop = views.copy(box.intersected(views.rect()));
    QSet<QRgb> colors;
    double sum = 0, sum2 = 0;
    const int n = crop.width() * crop.height();
    for (int y = 0; y < crop.height(); ++y) {
      const QRgb* line = reinterpret_cast<const QRgb*>(crop.constScanLine(y));
      for (int x = 0; x < crop.width(); ++x) {
        colors.insert(line[x] & 0xF0F0F0);  // 4 bits per channel: ignore antialiasing noise
        const double l = 0.3 * qRed(line[x]) + 0.59 * qGreen(line[x]) + 0.11 * qBlue(line[x]);
        sum += l;
        sum2 += l * l;
      }
    }
    const double mean = n ? sum / n : 0;
    const double stddev = n ? std::sqrt(std::max(0.0, sum2 / n - mean * mean)) : 0;
    // Not blank and not one color: a block mask is legitimately few-colored (kept, dropped, text).
    const bool panel_ok = r.has_data && n > 0 && colors.size() >= 6 && stddev >= 4.0;
    report += QString("panel %1: %2, %3x%4 px, %5 colors, luma stddev %6 -> %7\n")
                  .arg(QString::fromStdString(r.name), r.has_data ? "data" : "NO DATA")
                  .arg(crop.width())
                  .arg(crop.height())
                  .arg(colors.size())
                  .arg(stddev, 0, 'f', 1)
                  .arg(panel_ok ? "ok" : "FAIL");
    ok = ok && panel_ok;
  }
  if (!save_screenshot(path_)) {
    report += "cannot write the screenshot " + path_ + "\n";
    ok = false;
  } else {
    report += QString("screenshot %1\n").arg(path_);
  }
  return ok;
}

bool SelfTest::save_screenshot(const QString& path) {
  // The window with the GL views painted in from their own framebuffer (a widget grab may or may
  // not include GL content, depending on the platform plugin).
  const QImage views = window_.gl_widget()->grabFramebuffer();
  QPixmap shot = window_.grab();
  {
    QPainter painter(&shot);
    const QPoint at = window_.gl_widget()->mapTo(&window_, QPoint(0, 0));
    painter.drawImage(QRect(at, window_.gl_widget()->size()), views);
  }
  return shot.save(path);
}

void SelfTest::finish(bool ok, const QString& why) {
  phase_ = Phase::Done;
  timer_->stop();
  std::printf("selftest: %s: %s\n", ok ? "PASS" : "FAIL", why.toUtf8().constData());
  std::fflush(stdout);
  QApplication::exit(ok ? 0 : 1);
}

}  // namespace longshot::studio

#include "app/studio/selftest.h"

#include <QApplication>
#include <QDir>
#include <QFile>
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
#include "app/studio/preset_picker.h"
#include "app/studio/signal_watcher.h"
#include "app/studio/studio_window.h"
#include "engine/attention/mask_policy.h"
#include "engine/pipeline/preset_request.h"
#include "ui/jobs.h"

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
  switch (phase_) {
    case Phase::Start: return phase_start();
    case Phase::WaitSwitchPoint: return phase_switch_point();
    case Phase::WaitFirstJob: return phase_first_job();
    case Phase::WaitCompare: return phase_compare();
    case Phase::Settle: return phase_settle();
    case Phase::WaitSweep: return phase_sweep();
    case Phase::Done: return;
  }
}

bool SelfTest::failed(uint64_t id) const {
  const auto* r = window_.state().find(id);
  return r && (r->status == ui::RunStatus::Failed || r->status == ui::RunStatus::Cancelled);
}

// The dock's preset menu, as a user picks from it: the dock's request must then be the one
// `longshot generate --preset NAME` makes from the same starting request (pipeline::apply_preset).
bool SelfTest::check_preset_menu(QString& why) {
  GenerationDock* dock = window_.dock();
  const auto& presets = dock->preset_picker()->presets();
  if (presets.empty()) return why = "the preset menu lists no presets", false;
  for (const auto& p : presets) {
    auto expected = dock->request();
    pipeline::apply_preset(p, expected);
    dock->preset_picker()->combo()->setCurrentText(QString::fromStdString(p.name));
    const auto got = dock->request();
    const auto& a = got.attention;
    const auto& e = expected.attention;
    QString diff;
    auto check = [&diff](bool same, const char* field) {
      if (!same) diff += QString(" ") + field;
    };
    // The dock holds every parameter of the mode (a slider each); --preset leaves the ones the
    // preset does not name to the mode's defaults. Compared as the engine resolves them.
    const auto& policy = attention::find_policy(e.mode);
    const auto got_params = attention::resolve_params(policy, a.params);
    for (const auto& [k, v] : attention::resolve_params(policy, e.params)) {
      const auto it = got_params.find(k);
      if (it == a.params.end() || it->second != v)
        diff += QString(" %1 (%2 vs %3)")
                    .arg(QString::fromStdString(k))
                    .arg(it == got_params.end() ? -1.0 : it->second, 0, 'g', 17)
                    .arg(v, 0, 'g', 17);
    }
    check(a.mode == e.mode, "mode");
    check(got_params.size() == a.params.size(), "parameters beyond the mode's");
    check(a.dense_warmup_steps == e.dense_warmup_steps, "dense_warmup_steps");
    check(a.dense_first_layers == e.dense_first_layers, "dense_first_layers");
    check(a.dense_last_layers == e.dense_last_layers, "dense_last_layers");
    check(a.block_size == e.block_size, "block_size");
    check(got.sampler == expected.sampler, "sampler");
    check(got.steps == expected.steps, "steps");
    check(got.guidance == expected.guidance, "guidance");
    check(got.shift == expected.shift, "shift");
    if (!diff.isEmpty()) {
      why = QString("preset %1: the dock's request differs from --preset's in:%2").arg(QString::fromStdString(p.name), diff);
      return false;
    }
    if (dock->preset_picker()->current() != p.name) return why = "the preset menu does not show the chosen preset", false;
    std::printf("selftest: preset %s set mode %s and %zu parameters exactly\n", p.name.c_str(), a.mode.c_str(),
                a.params.size());
  }
  return true;
}

void SelfTest::phase_start() {
  if (!window_.gl_widget()->views()) return;  // GL not up yet
  QString why;
  if (!check_preset_menu(why)) return finish(false, why);
  // The history goes to a file of its own, checked at the end.
  history_path_ = QDir::tempPath() + QString("/longshot_selftest_history_%1.json").arg(QApplication::applicationPid());
  QFile::remove(history_path_);
  window_.set_history_path(history_path_.toStdString());
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
}

void SelfTest::phase_switch_point() {
  const auto& state = window_.state();
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
}

void SelfTest::phase_first_job() {
  const auto& state = window_.state();
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
}

void SelfTest::phase_compare() {
  const auto& state = window_.state();
  size_t finished = 0;
  for (const auto& run : state.runs()) {
    if (run.job_id == first_job_) continue;
    if (run.status == ui::RunStatus::Failed) return finish(false, "compare job failed: " + QString::fromStdString(run.error));
    if (run.status == ui::RunStatus::Finished) ++finished;
  }
  if (finished < 2) return;
  frames_at_settle_ = window_.gl_widget()->frames_drawn();
  phase_ = Phase::Settle;
}

void SelfTest::phase_settle() {
  const auto& state = window_.state();
  // A few frames so every texture is uploaded and the layout has settled (the views draw only
  // when asked, so ask).
  window_.gl_widget()->update();
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
  if (!ok) return finish(false, "checks failed");
  // A two-point sweep of the first mode with a keep_ratio: its curve must draw.
  std::string mode;
  for (const auto& p : attention::registered_policies())
    for (const auto& spec : p.params)
      if (mode.empty() && spec.name == "keep_ratio") mode = p.name;
  if (mode.empty()) return finish(false, "no mode has a keep_ratio to sweep");
  window_.run_sweep(mode, "keep_ratio", {0.2, 0.6});
  std::printf("selftest: sweep of keep_ratio over %s queued\n", mode.c_str());
  phase_ = Phase::WaitSweep;
  frames_at_settle_ = 0;
}

void SelfTest::phase_sweep() {
  if (window_.jobs().active() > 0) return;
  for (const auto& e : window_.jobs().entries())
    if (e.status == ui::JobStatus::Failed) return finish(false, "sweep job failed: " + QString::fromStdString(e.error));
  window_.gl_widget()->update();
  if (frames_at_settle_ == 0) frames_at_settle_ = window_.gl_widget()->frames_drawn();
  if (window_.gl_widget()->frames_drawn() < frames_at_settle_ + 5) return;
  bool ok = false;
  for (const auto& r : window_.gl_widget()->views()->last_rects())
    if (r.name == "Compare") ok = r.has_data;
  QString shot = path_;
  shot.insert(shot.endsWith(".png") ? shot.size() - 4 : shot.size(), "_sweep");
  save_screenshot(shot);
  std::printf("selftest: sweep curve %s, screenshot %s\n", ok ? "drawn" : "NOT DRAWN", shot.toUtf8().constData());
  if (!ok) return finish(false, "the sweep drew no point");
  // The history file holds every ended job (1 + A/B + dense reference and 2 sweep points).
  std::vector<std::string> warnings;
  const auto history = ui::load_history(history_path_.toStdString(), &warnings);
  QFile::remove(history_path_);
  std::printf("selftest: history file holds %zu jobs (%zu warnings)\n", history.size(), warnings.size());
  if (history.size() != window_.jobs().entries().size() || !warnings.empty())
    return finish(false, QString("history file holds %1 jobs, the list %2").arg(history.size()).arg(window_.jobs().entries().size()));
  for (size_t i = 0; i < history.size(); ++i)
    if (history[i].request.seed != window_.jobs().entries()[i].request.seed || history[i].status != ui::JobStatus::Finished)
      return finish(false, QString("history entry %1 differs from the job list").arg(i));
  finish(true, "all panels drew content, the mode switch appeared, the sweep drew and the history was kept");
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

bool save_window_screenshot(StudioWindow& window, const QString& path) {
  const QImage views = window.gl_widget()->grabFramebuffer();
  QPixmap shot = window.grab();
  {
    QPainter painter(&shot);
    const QPoint at = window.gl_widget()->mapTo(&window, QPoint(0, 0));
    painter.drawImage(QRect(at, window.gl_widget()->size()), views);
  }
  return shot.save(path);
}

bool SelfTest::save_screenshot(const QString& path) { return save_window_screenshot(window_, path); }

ScreenshotWhenDone::ScreenshotWhenDone(StudioWindow& window, QString path, std::string export_path, double timeout_s)
    : QObject(&window), window_(window), path_(std::move(path)), export_path_(std::move(export_path)), timeout_s_(timeout_s) {
  auto* timer = new QTimer(this);
  connect(timer, &QTimer::timeout, this, &ScreenshotWhenDone::poll);
  timer->start(200);
  started_ms_ = QDateTime::currentMSecsSinceEpoch();
}

void ScreenshotWhenDone::poll() {
  const qint64 now = QDateTime::currentMSecsSinceEpoch();
  const bool timed_out = (now - started_ms_) / 1000.0 > timeout_s_;
  const auto& jobs = window_.jobs();
  const bool ended = !jobs.entries().empty() && jobs.active() == 0;
  if (!ended && !timed_out) return;
  window_.gl_widget()->update();
  if (idle_since_ms_ == 0) {
    idle_since_ms_ = now;
    frames_at_idle_ = window_.gl_widget()->frames_drawn();
  }
  // Half a second and a few frames: textures uploaded, the clip on its first frames.
  if (!timed_out && (now - idle_since_ms_ < 500 || window_.gl_widget()->frames_drawn() < frames_at_idle_ + 3)) return;
  bool failed = timed_out;
  for (const auto& e : jobs.entries()) failed = failed || e.status == ui::JobStatus::Failed;
  bool saved = true;
  if (!path_.isEmpty()) {
    saved = save_window_screenshot(window_, path_);
    std::printf("longshot-studio: %s %s%s\n", saved ? "saved" : "could not save", path_.toUtf8().constData(),
                timed_out ? " (timed out before the jobs ended)" : failed ? " (a job failed)" : "");
  }
  if (!export_path_.empty() && !failed) {
    saved = window_.export_clip_to(export_path_) && saved;
    std::printf("longshot-studio: %s %s\n", saved ? "exported" : "did not export", export_path_.c_str());
  }
  std::fflush(stdout);
  // A signal that came meanwhile ends the studio with its own exit code.
  if (const int sig = SignalWatcher::pending()) return window_.quit_on_signal(sig);
  QApplication::exit(saved && !failed ? 0 : 1);
}

void SelfTest::finish(bool ok, const QString& why) {
  phase_ = Phase::Done;
  timer_->stop();
  std::printf("selftest: %s: %s\n", ok ? "PASS" : "FAIL", why.toUtf8().constData());
  std::fflush(stdout);
  QApplication::exit(ok ? 0 : 1);
}

}  // namespace longshot::studio

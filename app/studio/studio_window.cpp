// [SECTION] index
//   construction   docks, central GL views, status bar, the drain timer
//   jobs           submit, compare, live mode change, cancel
//   tick           drain events, status bar, queue, log, errors
//   settings       QSettings ⇄ ui::StudioSettings
//   ending         close and signals: cancel, keep the history, quit
// Menus are in window_menus.cpp, files (model folder, presets, recipes, drops, exports) in
// window_files.cpp, the job list in job_queue.cpp, the exports' writing in clip_export.cpp.
#include "app/studio/studio_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDateTime>
#include <QDir>
#include <QScreen>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QSettings>
#include <QStatusBar>
#include <QTimer>
#include <fstream>

#include <torch/cuda.h>

#include "app/studio/generation_dock.h"
#include "app/studio/imgui_widget.h"
#include "app/studio/job_queue.h"
#include "app/studio/signal_watcher.h"
#include "engine/attention/mask_policy.h"
#include "engine/common/error.h"
#include "ui/views.h"

namespace longshot::studio {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }

double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * (sysconf(_SC_PAGESIZE) / 1048576.0);
}

QString device_text() {
  try {
    if (torch::cuda::is_available()) return QString("device: CUDA x%1").arg(torch::cuda::device_count());
  } catch (const std::exception&) {
  }
  return "device: CPU";
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// [SECTION] construction
StudioWindow::StudioWindow(std::shared_ptr<LogBuffer> log, bool persist, QWidget* parent)
    : QMainWindow(parent), log_(std::move(log)), persist_(persist), generator_(std::make_unique<pipeline::Generator>()) {
  setWindowTitle("Longshot Studio");
  setDockNestingEnabled(true);
  setAcceptDrops(true);  // an MP4 made by Longshot (its recipe) or a preset JSON

  gl_ = new ImGuiWidget(state_, settings_.view, this);
  setCentralWidget(gl_);
  connect(gl_, &ImGuiWidget::actions, this, [this](const ui::PanelActions& act) {
    if (act.pick_query >= 0) {
      auto r = dock_->request();
      r.inspect_query = act.pick_query;
      dock_->set_request(r);
      // The running job follows too, from its next step; later jobs take it from the dock.
      generator_->set_inspect({r.inspect_layer, r.inspect_head, r.inspect_query});
      statusBar()->showMessage(
          QString("Query token %1 chosen: inspected from the next step").arg(static_cast<qlonglong>(act.pick_query)),
          5000);
    }
    if (act.run_compare) run_compare();
    if (act.run_sweep) run_sweep(act.sweep_mode, act.sweep_param, act.sweep_values);
  });

  dock_ = new GenerationDock;  // scrolls its own form; Generate / Cancel / progress stay pinned
  auto* gen_dock = new QDockWidget("Generation", this);
  gen_dock->setObjectName("generation_dock");
  gen_dock->setWidget(dock_);
  addDockWidget(Qt::LeftDockWidgetArea, gen_dock);
  connect(dock_, &GenerationDock::generate_requested, this, [this] { submit_from_dock(); });
  connect(dock_, &GenerationDock::cancel_requested, this, [this] {
    generator_->cancel();
    spdlog::info("studio: cancel requested");
  });
  connect(dock_, &GenerationDock::attention_changed, this, [this](const pipeline::AttentionSettings& s) {
    change_attention(s);
    show_shipped_calibration(dock_->request().model, s.mode);
  });
  // Compare > Calibration follows the dock's model and mode (a no-op unless one changed).
  connect(dock_, &GenerationDock::model_picked, this, [this] {
    const auto r = dock_->request();
    show_shipped_calibration(r.model, r.attention.mode);
  });

  queue_ = new JobQueueView(jobs_);
  connect(queue_, &JobQueueView::load_requested, this,
          [this](const pipeline::GenerationRequest& r) { dock_->set_request(r); });
  connect(queue_, &JobQueueView::rerun_requested, this,
          [this](const pipeline::GenerationRequest& r) { submit(r, true); });
  connect(queue_, &JobQueueView::compare_requested, this, [this](uint64_t a, uint64_t b) {
    if (gl_->views()) gl_->views()->set_compare_jobs(a, b);
    gl_->update();
  });
  connect(queue_, &JobQueueView::nothing_to_compare, this,
          [this] { statusBar()->showMessage("No other finished job of this session to compare with", 5000); });
  connect(queue_, &JobQueueView::remove_requested, this, [this](size_t i) {
    jobs_.remove(i);
    update_queue();
    save_history();
  });
  auto* queue_dock = new QDockWidget("Jobs", this);
  queue_dock->setObjectName("queue_dock");
  queue_dock->setWidget(queue_);
  addDockWidget(Qt::LeftDockWidgetArea, queue_dock);

  log_view_ = new QPlainTextEdit;
  log_view_->setReadOnly(true);
  log_view_->setMaximumBlockCount(5000);
  log_view_->setFont(QFont("monospace", 8));
  auto* log_dock = new QDockWidget("Log", this);
  log_dock->setObjectName("log_dock");
  log_dock->setWidget(log_view_);
  addDockWidget(Qt::BottomDockWidgetArea, log_dock);
  resizeDocks({log_dock}, {120}, Qt::Vertical);

  status_speed_ = new QLabel("idle");
  status_device_ = new QLabel(device_text());
  status_memory_ = new QLabel;
  statusBar()->addPermanentWidget(status_speed_);
  statusBar()->addPermanentWidget(status_device_);
  statusBar()->addPermanentWidget(status_memory_);

  std::vector<std::string> modes;
  for (const auto& p : attention::registered_policies()) modes.push_back(p.name);
  gl_->set_modes(modes);

  build_menus();
  resize(1600, 1000);
  if (persist_) load_settings();
  // A first launch starts with the example prompt in the box, not only as grey placeholder text.
  if (settings_.request.prompt.empty()) settings_.request.prompt = GenerationDock::example_prompt();
  dock_->set_request(settings_.request);  // model_picked: the shipped calibration table too
  refresh_recent();
  fit_to_screen();
  if (persist_) {
    history_path_ = ui::default_history_path();
    std::vector<std::string> warnings;
    jobs_.restore(ui::load_history(history_path_, &warnings));
    for (const auto& w : warnings) spdlog::warn("studio: {}", w);
    if (!jobs_.entries().empty())
      spdlog::info("studio: {} jobs from earlier sessions ({})", jobs_.entries().size(), history_path_);
    update_queue();
  }
  // Ctrl+E / Ctrl+T reach their menu actions whatever has the focus (a line edit takes Ctrl+E
  // as end-of-line on X11 otherwise).
  qApp->installEventFilter(this);

  // 10 Hz: drain the engine's events; the views redraw only when one arrived (or on input).
  timer_ = new QTimer(this);
  connect(timer_, &QTimer::timeout, this, &StudioWindow::tick);
  timer_->start(100);
}

void StudioWindow::fit_to_screen() {
  // The window (frame included) inside the screen's available area: a 1280x800 laptop with a
  // panel must see the status bar.
  const QScreen* screen = this->screen() ? this->screen() : QGuiApplication::primaryScreen();
  if (!screen) return;
  const QRect avail = screen->availableGeometry();
  const QMargins frame(8, 32, 8, 8);  // a typical decoration before the window manager reports one
  const int w = std::min(width(), avail.width() - frame.left() - frame.right());
  const int h = std::min(height(), avail.height() - frame.top() - frame.bottom());
  if (w != width() || h != height()) resize(w, h);
  QRect g = frameGeometry();
  if (!avail.contains(g)) move(std::clamp(g.x(), avail.x(), std::max(avail.x(), avail.right() - g.width())),
                              std::clamp(g.y(), avail.y(), std::max(avail.y(), avail.bottom() - g.height())));
}

bool StudioWindow::eventFilter(QObject* watched, QEvent* event) {
  if (event->type() == QEvent::ShortcutOverride) {
    auto* key = static_cast<QKeyEvent*>(event);
    const auto combo = key->keyCombination();
    if (combo == QKeyCombination(Qt::ControlModifier, Qt::Key_E) ||
        combo == QKeyCombination(Qt::ControlModifier, Qt::Key_T)) {
      event->ignore();  // not the line edit's: the shortcut map tries the menu's action
      return true;
    }
  }
  return QMainWindow::eventFilter(watched, event);
}

StudioWindow::~StudioWindow() {
  timer_->stop();
  generator_.reset();  // cancels, wakes and joins the worker before the views go
}

// ---------------------------------------------------------------------------------------------
// [SECTION] jobs
uint64_t StudioWindow::submit(const pipeline::GenerationRequest& request_in, bool keep_seed) {
  pipeline::GenerationRequest request = request_in;
  // Every layer's masks travel with the steps, so File > Export mask trace holds all layers, as
  // the CLI's --trace does.
  request.record_masks = true;
  if (!keep_seed) {
    request.seed = jobs_.free_seed(request_in.seed);
    if (request.seed != request_in.seed)
      spdlog::info("studio: seed {} is taken by a queued job: this one gets seed {}", request_in.seed, request.seed);
  }
  try {
    const uint64_t id = generator_->submit(request);
    jobs_.add(id, request);
    spdlog::info("studio: queued job {} ({}, {} frames {}x{}, {} steps, mode {}, seed {})", id, request.model,
                 request.frames, request.width, request.height, request.steps, request.attention.mode, request.seed);
    settings_.request = request_in;
    state_.set_queued(jobs_.queued());
    update_queue();
    update_status();
    dock_->set_running(true);
    gl_->update();
    return id;
  } catch (const std::exception& e) {
    show_error("Cannot start the generation", qs(e.what()));
    return 0;
  }
}

uint64_t StudioWindow::submit_from_dock() {
  const auto request = dock_->request();
  // The dock's checks, at the moment of the click: an empty prompt makes colour blobs, a width of
  // 63 fails only after the model loaded.
  for (const auto& p : dock_->problems()) {
    if (!p.blocking) continue;
    show_error("Cannot generate yet", qs(p.field + " " + p.message));
    return 0;
  }
  return submit(request);
}

void StudioWindow::run_compare() {
  for (const auto& p : dock_->problems()) {
    if (!p.blocking) continue;
    show_error("Cannot compare yet", qs(p.field + " " + p.message));
    return;
  }
  const auto dock = dock_->request();
  auto a = dock;
  auto b = dock;
  // A side in the dock's mode runs with the dock's sliders; the other mode with its defaults
  // (the panel shows each side's parameters as the run used them).
  a.attention.mode = settings_.view.compare_mode_a;
  if (a.attention.mode != dock.attention.mode) a.attention.params.clear();
  b.attention.mode = settings_.view.compare_mode_b;
  if (b.attention.mode != dock.attention.mode) b.attention.params.clear();
  a.seed = b.seed = jobs_.free_seed(dock.seed);
  const uint64_t ja = submit(a, true);
  if (!ja) return;
  const uint64_t jb = submit(b, true);
  if (!jb) return;
  if (gl_->views()) gl_->views()->set_compare_jobs(ja, jb);
  spdlog::info("studio: comparing {} (job {}) and {} (job {}), seed {}", a.attention.mode, ja, b.attention.mode, jb,
               a.seed);
}

void StudioWindow::run_sweep(const std::string& mode, const std::string& param, const std::vector<double>& values) {
  for (const auto& p : dock_->problems()) {
    if (!p.blocking) continue;
    show_error("Cannot sweep yet", qs(p.field + " " + p.message));
    return;
  }
  const auto dock = dock_->request();
  auto ref = dock;
  ref.attention.mode = "dense";
  ref.attention.params.clear();
  ref.seed = jobs_.free_seed(dock.seed);
  const uint64_t ref_id = submit(ref, true);
  if (!ref_id) return;
  std::vector<uint64_t> ids;
  for (double v : values) {
    auto r = dock;
    r.seed = ref.seed;
    r.attention.mode = mode;
    if (mode != dock.attention.mode) r.attention.params.clear();
    r.attention.params[param] = v;
    const uint64_t id = submit(r, true);
    if (!id) return;
    ids.push_back(id);
  }
  if (gl_->views()) gl_->views()->set_sweep_jobs(ref_id, ids, mode, param, values);
  spdlog::info("studio: sweep of {} over {} ({} points, seed {}): dense job {}, jobs {}-{}", param, mode, values.size(),
               ref.seed, ref_id, ids.front(), ids.back());
}

void StudioWindow::change_attention(const pipeline::AttentionSettings& s) {
  settings_.request.attention = s;
  if (!state_.running()) return;
  try {
    attention::resolve_params(attention::find_policy(s.mode), s.params);
  } catch (const std::exception& e) {
    show_error("Attention settings not applied", qs(e.what()));
    return;
  }
  generator_->set_attention(s);
  const auto* r = state_.current();
  spdlog::info("studio: attention -> {} requested during step {} of job {}; applies from the next step", s.mode,
               r && !r->steps.empty() ? r->steps.back().step + 2 : 1, r ? r->job_id : 0);
}

// ---------------------------------------------------------------------------------------------
// [SECTION] tick
void StudioWindow::tick() {
  const auto events = generator_->events().drain();
  const size_t applied = state_.apply_all(events);
  bool ended = false;
  if (applied) {
    const std::string now = QDateTime::currentDateTimeUtc().toString(Qt::ISODate).toStdString();
    for (const auto& e : events) {
      jobs_.apply(e, now);
      ended = ended || std::holds_alternative<pipeline::JobFinished>(e) || std::holds_alternative<pipeline::JobFailed>(e) ||
              std::holds_alternative<pipeline::JobCancelled>(e);
      if (const auto* st = std::get_if<pipeline::JobStarted>(&e)) {
        // The motion regime the job runs (issue 25): the regime, the router's confidence and why.
        dock_->set_routing(qs(st->routing));
        if (!st->routing.empty()) spdlog::info("studio: job {} motion regime: {}", st->job_id, st->routing);
      }
      if (const auto* f = std::get_if<pipeline::JobFinished>(&e); f && f->peak_memory_bytes >= 0)
        status_device_->setText(device_text() + QString(", peak %1 MiB").arg(f->peak_memory_bytes / 1048576.0, 0, 'f', 0));
    }
    state_.set_queued(jobs_.queued());
    update_queue();
    Q_EMIT state_changed();
    if (ended) save_history();
  }
  for (const auto& message : state_.take_errors()) show_error("Generation failed", qs(message));
  for (auto& line : log_->take()) {
    QString text = qs(line.text).toHtmlEscaped();
    if (line.level >= spdlog::level::err) text = "<span style='color:#e66'>" + text + "</span>";
    else if (line.level == spdlog::level::warn) text = "<span style='color:#db4'>" + text + "</span>";
    log_view_->appendHtml(text);
  }
  const qint64 now_ms = QDateTime::currentMSecsSinceEpoch();
  if (applied || now_ms - last_memory_ms_ > 1000) {
    update_status();
    last_memory_ms_ = now_ms;
  }
  dock_->set_running(jobs_.active() > 0);
  // At most one redraw per tick (10 fps) while events arrive; none when idle.
  if (applied) gl_->update();
}

namespace {
QString duration_text(double s) {
  if (s < 90) return QString("%1 s").arg(s, 0, 'f', s < 10 ? 1 : 0);
  if (s < 5400) return QString("%1 min").arg(s / 60, 0, 'f', 1);
  return QString("%1 h").arg(s / 3600, 0, 'f', 1);
}
}  // namespace

void StudioWindow::update_status() {
  const auto* r = state_.current();
  const size_t queued = jobs_.queued();
  const QString behind = queued ? QString(", %1 queued").arg(queued) : QString();
  QString text;
  if (r && r->status == ui::RunStatus::Running) {
    const int done = static_cast<int>(r->steps.size());
    if (done == 0) {
      // Before the first step ends there is no rate: say what is happening, not "ETA 0.0 s".
      text = QString("job %1: step 1 / %2 running (loading, encoding the prompt, first step)%3")
                 .arg(r->job_id).arg(r->num_steps).arg(behind);
    } else {
      const double sps = state_.steps_per_second();
      text = QString("job %1: step %2 / %3, %4 per step, ETA %5%6")
                 .arg(r->job_id).arg(done).arg(r->num_steps)
                 .arg(sps > 0 ? duration_text(1.0 / sps) : QString("?"))
                 .arg(duration_text(state_.eta_seconds()))
                 .arg(behind);
    }
    dock_->set_progress(done, r->num_steps, text);
  } else if (jobs_.active() > 0) {
    text = QString("%1 job(s) queued: starting").arg(queued);
    dock_->set_progress(0, 1, text);
  } else if (r) {
    text = QString("job %1 %2").arg(r->job_id).arg(ui::to_string(r->status));
    if (r->status == ui::RunStatus::Finished) text += QString(" in %1").arg(duration_text(r->total_ms / 1000.0));
    dock_->set_progress(static_cast<int>(r->steps.size()), r->num_steps, text);
  } else {
    dock_->set_progress(0, 1, "idle: press Generate");
  }
  status_speed_->setText(text.isEmpty() ? "idle" : text);
  status_memory_->setText(QString("RAM %1 MiB").arg(resident_mib(), 0, 'f', 0));
}

void StudioWindow::update_queue() { queue_->refresh(); }

void StudioWindow::save_history() {
  if (history_path_.empty()) return;
  try {
    ui::save_history(history_path_, jobs_.history());
  } catch (const std::exception& e) {
    spdlog::warn("studio: history not saved: {}", e.what());
  }
}

void StudioWindow::show_error(const QString& title, const QString& text) {
  spdlog::error("studio: {}: {}", title.toStdString(), text.toStdString());
  statusBar()->showMessage(title + ": " + text, 10000);
  if (!persist_) return;  // the self-test runs unattended: the log and status bar carry it
  auto* box = new QMessageBox(QMessageBox::Warning, title, text, QMessageBox::Ok, this);
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->open();  // non-modal: the views keep drawing
}

// ---------------------------------------------------------------------------------------------
// [SECTION] settings
void StudioWindow::load_settings() {
  QSettings qset;
  ui::SettingsMap map;
  for (const QString& key : qset.allKeys())
    if (!key.startsWith("window/")) map[key.toStdString()] = qset.value(key).toString().toStdString();
  std::vector<std::string> warnings;
  settings_ = ui::from_map(map, &warnings);
  for (const auto& w : warnings) spdlog::warn("studio: {}", w);
  restoreGeometry(qset.value("window/geometry").toByteArray());
  restoreState(qset.value("window/state").toByteArray());
}

void StudioWindow::save_settings() {
  settings_.request = dock_->request();
  QSettings qset;
  qset.clear();
  for (const auto& [k, v] : ui::to_map(settings_)) qset.setValue(qs(k), qs(v));
  qset.setValue("window/geometry", saveGeometry());
  qset.setValue("window/state", saveState());
}

// ---------------------------------------------------------------------------------------------
// [SECTION] ending
void StudioWindow::closeEvent(QCloseEvent* e) {
  if (persist_ && jobs_.active() > 0) {
    const auto* r = state_.current();
    QString what = r && r->status == ui::RunStatus::Running
                       ? QString("Job %1 is at step %2 of %3").arg(r->job_id).arg(r->steps.size()).arg(r->num_steps)
                       : QString("A job is starting");
    if (jobs_.queued()) what += QString(" and %1 more are queued").arg(jobs_.queued());
    if (QMessageBox::question(this, "Quit Longshot Studio?", what + ".\nQuit and cancel?",
                              QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel) != QMessageBox::Yes) {
      e->ignore();
      return;
    }
  }
  end_jobs();
  e->accept();
}

void StudioWindow::end_jobs() {
  if (persist_) save_settings();
  // The jobs this ending cancels are history too (their events would come after the window is gone).
  const std::string now = QDateTime::currentDateTimeUtc().toString(Qt::ISODate).toStdString();
  std::vector<uint64_t> active;
  for (const auto& j : jobs_.entries())
    if (j.active()) active.push_back(j.id);
  for (const uint64_t id : active) jobs_.apply(pipeline::JobCancelled{id, 0}, now);
  save_history();
  generator_->cancel();
}

void StudioWindow::quit_on_signal(int sig) {
  // No question asked: whoever sent the signal wants the studio gone. The running job is
  // cancelled (the worker stops within one layer and is joined when the window goes), the history
  // and settings are written (temporary file + rename), and an export in progress has already
  // been abandoned (clip_export.cpp checks for the signal before renaming anything into place).
  const auto* r = state_.current();
  if (r && r->status == ui::RunStatus::Running)
    spdlog::warn("studio: {}: cancelling job {} at step {} of {}, quitting", SignalWatcher::name(sig), r->job_id,
                 r->steps.size(), r->num_steps);
  else
    spdlog::warn("studio: {}: quitting", SignalWatcher::name(sig));
  if (ending_) return;
  ending_ = true;
  end_jobs();
  QApplication::exit(128 + sig);
}

}  // namespace longshot::studio

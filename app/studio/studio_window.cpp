// [SECTION] index
//   construction   docks, central GL views, status bar, the drain timer
//   menus          File / Edit / View / Help, shortcuts
//   jobs           submit, compare, live mode change, cancel
//   tick           drain events, status bar, queue, log, errors
//   files          model folder, presets, clip export, mask trace export, recent files
//   settings       QSettings ⇄ ui::StudioSettings
#include "app/studio/studio_window.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QSpinBox>
#include <QApplication>
#include <QCloseEvent>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QImage>
#include <QLabel>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>
#include <QTimer>
#include <fstream>
#include <sstream>

#include <torch/cuda.h>

#include "app/studio/generation_dock.h"
#include "app/studio/imgui_widget.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/mask_trace.h"
#include "engine/common/error.h"
#ifdef LONGSHOT_WITH_FFMPEG
#include "engine/io/mp4.h"
#endif
#include "ui/colormap.h"
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

// A menu entry with an optional shortcut, connected to `fn` in the window's context.
template <typename Fn>
QAction* add_action(QMenu* menu, const QString& text, const QKeySequence& shortcut, QObject* context, Fn fn) {
  QAction* a = menu->addAction(text);
  if (!shortcut.isEmpty()) a->setShortcut(shortcut);
  QObject::connect(a, &QAction::triggered, context, fn);
  return a;
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
  });

  dock_ = new GenerationDock;
  auto* scroll = new QScrollArea;
  scroll->setWidget(dock_);
  scroll->setWidgetResizable(true);
  auto* gen_dock = new QDockWidget("Generation", this);
  gen_dock->setObjectName("generation_dock");
  gen_dock->setWidget(scroll);
  addDockWidget(Qt::LeftDockWidgetArea, gen_dock);
  connect(dock_, &GenerationDock::generate_requested, this, [this] { submit_from_dock(); });
  connect(dock_, &GenerationDock::cancel_requested, this, [this] {
    generator_->cancel();
    pending_.clear();
    spdlog::info("studio: cancel requested");
  });
  connect(dock_, &GenerationDock::attention_changed, this,
          [this](const pipeline::AttentionSettings& s) { change_attention(s); });

  queue_ = new QListWidget;
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

  progress_ = new QProgressBar;
  progress_->setMaximumWidth(220);
  progress_->setFormat("step %v / %m");
  progress_->setRange(0, 1);
  progress_->setValue(0);
  status_speed_ = new QLabel("idle");
  status_device_ = new QLabel(device_text());
  status_memory_ = new QLabel;
  statusBar()->addPermanentWidget(progress_);
  statusBar()->addPermanentWidget(status_speed_);
  statusBar()->addPermanentWidget(status_device_);
  statusBar()->addPermanentWidget(status_memory_);

  std::vector<std::string> modes;
  for (const auto& p : attention::registered_policies()) modes.push_back(p.name);
  gl_->set_modes(modes);

  build_menus();
  if (persist_) load_settings();
  dock_->set_request(settings_.request);
  refresh_recent();

  timer_ = new QTimer(this);
  connect(timer_, &QTimer::timeout, this, &StudioWindow::tick);
  timer_->start(33);
  resize(1600, 1000);
}

StudioWindow::~StudioWindow() {
  timer_->stop();
  generator_.reset();  // cancels, wakes and joins the worker before the views go
}

// ---------------------------------------------------------------------------------------------
// [SECTION] menus
void StudioWindow::build_menus() {
  QMenu* file = menuBar()->addMenu("&File");
  add_action(file, "Open model folder...", QKeySequence::Open, this, [this] { open_model_folder(); });
  add_action(file, "Load preset...", QKeySequence("Ctrl+L"), this, [this] { load_preset(); });
  add_action(file, "Save preset...", QKeySequence::Save, this, [this] { save_preset(); });
  file->addSeparator();
  add_action(file, "Export clip...", QKeySequence("Ctrl+E"), this, [this] { export_clip(); });
  add_action(file, "Export mask trace...", QKeySequence("Ctrl+T"), this, [this] { export_mask_trace(); });
  file->addSeparator();
  recent_menu_ = file->addMenu("Recent files");
  file->addSeparator();
  add_action(file, "Quit", QKeySequence::Quit, this, [this] { close(); });

  QMenu* edit = menuBar()->addMenu("&Edit");
  add_action(edit, "Generate", QKeySequence("Ctrl+Return"), this, [this] { submit_from_dock(); });
  add_action(edit, "Cancel", QKeySequence("Esc"), this, [this] { generator_->cancel(); });
  edit->addSeparator();
  add_action(edit, "Preferences...", QKeySequence::Preferences, this, [this] {
    QDialog dlg(this);
    dlg.setWindowTitle("Preferences");
    auto* form = new QFormLayout(&dlg);
    auto* cmap = new QComboBox;
    for (const auto& n : ui::Colormap::names()) cmap->addItem(qs(n));
    cmap->setCurrentText(qs(settings_.view.colormap));
    auto* log_scale = new QCheckBox("log scale for attention heatmaps");
    log_scale->setChecked(settings_.view.log_scale);
    auto* cols = new QSpinBox;
    cols->setRange(1, 8);
    cols->setValue(settings_.view.heatmap_columns);
    form->addRow("Colormap", cmap);
    form->addRow("", log_scale);
    form->addRow("Heatmap columns", cols);
    auto* box = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    form->addRow(box);
    connect(box, &QDialogButtonBox::accepted, &dlg, &QDialog::accept);
    connect(box, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
    if (dlg.exec() == QDialog::Accepted) {
      settings_.view.colormap = cmap->currentText().toStdString();
      settings_.view.log_scale = log_scale->isChecked();
      settings_.view.heatmap_columns = cols->value();
      gl_->update();
    }
  });

  QMenu* view = menuBar()->addMenu("&View");
  for (const auto& name : ui::Views::panel_names()) {
    QAction* a = view->addAction(qs(name));
    a->setCheckable(true);
    const auto it = settings_.view.panels.find(name);
    a->setChecked(it == settings_.view.panels.end() || it->second);
    connect(a, &QAction::toggled, this, [this, name](bool on) {
      settings_.view.panels[name] = on;
      gl_->update();
    });
    connect(this, &StudioWindow::state_changed, a, [this, a, name] {
      const auto it2 = settings_.view.panels.find(name);
      a->setChecked(it2 == settings_.view.panels.end() || it2->second);
    });
  }
  view->addSeparator();
  for (auto* d : findChildren<QDockWidget*>()) view->addAction(d->toggleViewAction());

  QMenu* help = menuBar()->addMenu("&Help");
  add_action(help, "Keyboard shortcuts", QKeySequence(), this, [this] {
    QMessageBox::information(this, "Keyboard shortcuts",
                             "Ctrl+Return  generate\nEsc  cancel the running job\nCtrl+O  open model folder\n"
                             "Ctrl+L / Ctrl+S  load / save preset\nCtrl+E  export clip\nCtrl+T  export mask trace\n"
                             "Ctrl+Q  quit\n\nIn the views: click the preview to pick the query token; wheel zooms "
                             "and drag pans the block mask; hover any view for coordinates.");
  });
  add_action(help, "About Longshot Studio", QKeySequence(), this, [this] {
    QMessageBox::about(this, "About Longshot Studio",
                       "Longshot Studio 0.1\nLong-video generation with sparse-attention video diffusion "
                       "transformers, with a live view of what the attention masks do.\n"
                       "Qt 6 + Dear ImGui + OpenGL 3; LibTorch engine.");
  });
}

// ---------------------------------------------------------------------------------------------
// [SECTION] jobs
uint64_t StudioWindow::submit(const pipeline::GenerationRequest& request) {
  try {
    const uint64_t id = generator_->submit(request);
    submitted_.push_back(id);
    pending_.insert(id);
    spdlog::info("studio: queued job {} ({}, {} frames {}x{}, {} steps, mode {})", id, request.model, request.frames,
                 request.width, request.height, request.steps, request.attention.mode);
    settings_.request = request;
    update_queue();
    return id;
  } catch (const std::exception& e) {
    show_error("Cannot start the generation", qs(e.what()));
    return 0;
  }
}

uint64_t StudioWindow::submit_from_dock() { return submit(dock_->request()); }

void StudioWindow::run_compare() {
  auto a = dock_->request();
  auto b = a;
  a.attention.mode = settings_.view.compare_mode_a;
  a.attention.params.clear();
  b.attention.mode = settings_.view.compare_mode_b;
  b.attention.params.clear();
  const uint64_t ja = submit(a);
  if (!ja) return;
  const uint64_t jb = submit(b);
  if (!jb) return;
  if (gl_->views()) gl_->views()->set_compare_jobs(ja, jb);
  spdlog::info("studio: comparing {} (job {}) and {} (job {}), seed {}", a.attention.mode, ja, b.attention.mode, jb,
               a.seed);
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
  const size_t applied = state_.apply_all(generator_->events().drain());
  if (applied) {
    for (const auto& r : state_.runs()) pending_.erase(r.job_id);
    update_queue();
    Q_EMIT state_changed();
  }
  for (const auto& message : state_.take_errors()) show_error("Generation failed", qs(message));
  for (auto& line : log_->take()) {
    QString text = qs(line.text).toHtmlEscaped();
    if (line.level >= spdlog::level::err) text = "<span style='color:#e66'>" + text + "</span>";
    else if (line.level == spdlog::level::warn) text = "<span style='color:#db4'>" + text + "</span>";
    log_view_->appendHtml(text);
  }
  update_status();
  dock_->set_running(state_.running() || !pending_.empty());
  gl_->update();
}

void StudioWindow::update_status() {
  const auto* r = state_.current();
  if (r && r->status == ui::RunStatus::Running) {
    progress_->setRange(0, std::max(1, r->num_steps));
    progress_->setValue(static_cast<int>(r->steps.size()));
    const double eta = state_.eta_seconds();
    status_speed_->setText(QString("%1 it/s  ETA %2 s").arg(state_.steps_per_second(), 0, 'f', 2).arg(eta, 0, 'f', 1));
  } else if (r) {
    progress_->setRange(0, std::max(1, r->num_steps));
    progress_->setValue(static_cast<int>(r->steps.size()));
    status_speed_->setText(QString("job %1 %2").arg(r->job_id).arg(ui::to_string(r->status)));
  }
  status_memory_->setText(QString("memory: %1 MiB").arg(resident_mib(), 0, 'f', 0));
}

void StudioWindow::update_queue() {
  queue_->clear();
  for (const uint64_t id : submitted_) {
    const auto* r = state_.find(id);
    QString text;
    if (r) {
      text = QString("#%1  %2  %3  %4/%5  %6")
                 .arg(id)
                 .arg(ui::to_string(r->status))
                 .arg(qs(r->steps.empty() ? r->request.attention.mode : r->steps.back().mode))
                 .arg(r->steps.size())
                 .arg(r->num_steps)
                 .arg(qs(r->request.prompt.substr(0, 40)));
      if (r->status == ui::RunStatus::Failed) text += "  - " + qs(r->error);
    } else if (pending_.count(id)) {
      text = QString("#%1  queued").arg(id);
    } else {
      continue;  // trimmed from history
    }
    queue_->addItem(text);
  }
  queue_->scrollToBottom();
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
// [SECTION] files
void StudioWindow::open_model_folder() {
  const QString dir = QFileDialog::getExistingDirectory(this, "Open model / checkpoint folder", qs(settings_.model_dir));
  if (dir.isEmpty()) return;
  settings_.model_dir = dir.toStdString();
  auto r = dock_->request();
  r.model = dir.toStdString();
  dock_->set_request(r);
  settings_.add_recent(dir.toStdString());
  refresh_recent();
}

void StudioWindow::load_preset(const QString& given) {
  const QString path = given.isEmpty() ? QFileDialog::getOpenFileName(this, "Load preset", {}, "Presets (*.json)") : given;
  if (path.isEmpty()) return;
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    show_error("Cannot load preset", "cannot read '" + path + "'");
    return;
  }
  try {
    dock_->set_request(ui::request_from_json(f.readAll().toStdString()));
    settings_.add_recent(path.toStdString());
    refresh_recent();
  } catch (const std::exception& e) {
    show_error("Cannot load preset", path + ": " + qs(e.what()));
  }
}

void StudioWindow::save_preset() {
  const QString path = QFileDialog::getSaveFileName(this, "Save preset", "preset.json", "Presets (*.json)");
  if (path.isEmpty()) return;
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) ||
      f.write(QByteArray::fromStdString(ui::request_to_json(dock_->request()))) < 0) {
    show_error("Cannot save preset", "cannot write '" + path + "'");
    return;
  }
  settings_.add_recent(path.toStdString());
  refresh_recent();
}

void StudioWindow::export_clip() {
  const auto* r = state_.current();
  const VideoPtr v = r ? r->frames() : nullptr;
  if (!v || v->frames == 0) {
    show_error("Nothing to export", "generate a clip first");
    return;
  }
  const QString path = QFileDialog::getSaveFileName(this, "Export clip", "clip.mp4",
                                                    "MP4 video (*.mp4);;PNG frames (*.png)");
  if (path.isEmpty()) return;
  if (path.endsWith(".png", Qt::CaseInsensitive)) {
    // name.png → name_0000.png, name_0001.png, ...
    const QString base = path.left(path.size() - 4);
    for (int i = 0; i < v->frames; ++i) {
      QImage img(v->frame(i), v->width, v->height, static_cast<int>(v->width * 3), QImage::Format_RGB888);
      const QString out = QString("%1_%2.png").arg(base).arg(i, 4, 10, QChar('0'));
      if (!img.save(out)) {
        show_error("Export failed", "cannot write '" + out + "'");
        return;
      }
    }
    spdlog::info("studio: exported {} PNG frames of job {} as {}_NNNN.png", v->frames, r->job_id, base.toStdString());
    return;
  }
#ifdef LONGSHOT_WITH_FFMPEG
  try {
    const std::string encoder = io::write_mp4(*v, path.toStdString());
    spdlog::info("studio: exported job {} to {} ({} frames, {})", r->job_id, path.toStdString(), v->frames, encoder);
  } catch (const std::exception& e) {
    show_error("Export failed", qs(e.what()));
  }
#else
  show_error("Export failed", "this build has no FFmpeg: export as PNG frames (choose a .png name)");
#endif
}

void StudioWindow::export_mask_trace() {
  const auto* r = state_.current();
  if (!r || r->masks.empty()) {
    show_error("Nothing to export", "the current run has published no masks yet");
    return;
  }
  const QString path = QFileDialog::getSaveFileName(this, "Export mask trace", "masks.json", "Mask traces (*.json)");
  if (path.isEmpty()) return;
  try {
    const auto& last = *r->masks.back().mask;
    attention::MaskTrace trace;
    trace.grid = r->grid;
    trace.block_size = last.block_size;
    trace.ordering = last.ordering;
    trace.mode = r->steps.empty() ? r->request.attention.mode : r->steps.back().mode;
    trace.params = r->steps.empty() ? r->request.attention.params : r->steps.back().mode_params;
    size_t skipped = 0;
    for (const auto& sample : r->masks) {
      // One trace holds one ordering and block size: masks from before a mode switch that
      // changed them are left out (and counted).
      if (sample.mask->ordering != last.ordering || sample.mask->block_size != last.block_size) {
        ++skipped;
        continue;
      }
      trace.add(*sample.mask, sample.step, sample.layer);
    }
    attention::write_mask_trace(trace, path.toStdString());
    spdlog::info("studio: wrote {} masks to {} ({} from an earlier ordering left out)", trace.entries.size(),
                 path.toStdString(), skipped);
  } catch (const std::exception& e) {
    show_error("Cannot export the mask trace", qs(e.what()));
  }
}

void StudioWindow::refresh_recent() {
  recent_menu_->clear();
  for (const auto& f : settings_.recent_files) {
    const QString path = qs(f);
    add_action(recent_menu_, path, QKeySequence(), this, [this, path] {
      if (QFileInfo(path).isDir()) {
        auto r = dock_->request();
        r.model = path.toStdString();
        dock_->set_request(r);
      } else {
        load_preset(path);
      }
    });
  }
  recent_menu_->setEnabled(!settings_.recent_files.empty());
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

void StudioWindow::closeEvent(QCloseEvent* e) {
  if (persist_) save_settings();
  generator_->cancel();
  e->accept();
}

}  // namespace longshot::studio

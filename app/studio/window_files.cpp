// StudioWindow's files: the model folder, request presets (JSON) and method presets by name,
// the recipe of a Longshot MP4, calibration tables for Compare > Calibration, drops, and the
// exports (the dialogs here, the writing in clip_export.cpp).
#include <QDir>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QMessageBox>
#include <QMimeData>
#include <QStatusBar>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "app/studio/clip_export.h"
#include "app/studio/generation_dock.h"
#include "app/studio/imgui_widget.h"
#include "app/studio/signal_watcher.h"
#include "app/studio/studio_window.h"
#include "engine/attention/presets.h"
#include "engine/calibrate/calibration.h"
#include "engine/model/builtin_model.h"
#include "engine/pipeline/recipe.h"
#include "engine/pipeline/regime.h"
#include "ui/settings.h"

namespace longshot::studio {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }

// A `longshot calibrate --out` file (its "format"), as opposed to a preset: a dropped JSON goes to
// Compare > Calibration when it is one.
bool is_calibration_table(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return false;
  const auto j = nlohmann::json::parse(f.readAll().toStdString(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  const auto it = j.find("format");
  return it != j.end() && it->is_string() && it->get<std::string>() == calibrate::kTableFormat;
}

// The name a request's model goes by in shipped file names, as generation resolves it (without
// reading weights): "builtin" is longshot-builtin, a folder its name, a file its stem.
std::string shipped_model_name(const std::string& model) {
  const std::string name = model::resolve_builtin_name(model);
  std::filesystem::path p(name);
  if (name.find('/') == std::string::npos) return name;
  if (p.filename().empty()) p = p.parent_path();  // "models/wan/"
  return std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
}
}  // namespace

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
  if (!QFileInfo::exists(path) && !path.contains('/') && !path.endsWith(".json", Qt::CaseInsensitive)) {
    // A shipped method preset by name (lvsa-wan, ...), as `longshot generate --preset NAME`.
    try {
      dock_->apply_method_preset(attention::find_preset(path.toStdString()));
    } catch (const std::exception& e) {
      show_error("Cannot load preset", qs(e.what()));
    }
    return;
  }
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    show_error("Cannot load preset", "cannot read '" + path + "'");
    return;
  }
  const std::string text = f.readAll().toStdString();
  try {
    dock_->set_request(ui::request_from_json(text));
  } catch (const std::exception& e) {
    // Not a request: a method preset file (assets/presets/'s format)? Else the request's error.
    try {
      dock_->apply_method_preset(attention::parse_preset(text, path.toStdString()));
    } catch (const std::exception& e2) {
      show_error("Cannot load preset", path + ": neither a request preset (" + qs(e.what()) +
                                           ") nor a method preset (" + qs(e2.what()) + ")");
      return;
    }
  }
  settings_.add_recent(path.toStdString());
  refresh_recent();
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
  if (!r->video) {
    // Mid-run the frames are the latest x0 preview, not the clip: say so before saving it.
    const QString what = QString("Job %1 is at step %2 of %3: the frames so far are a preview, not the final clip.")
                             .arg(r->job_id).arg(r->steps.size()).arg(r->num_steps);
    if (!persist_ || QMessageBox::question(this, "Export a preview?", what + "\n\nExport the preview anyway?",
                                           QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel) != QMessageBox::Yes) {
      statusBar()->showMessage(what + " Not exported.", 8000);
      return;
    }
  }
  const QString stem = QString("longshot_job%1_%2%3").arg(r->job_id).arg(qs(r->request.attention.mode))
                           .arg(r->video ? "" : "_preview");
  const QString dir = last_export_dir_.empty() ? QDir::homePath() : qs(last_export_dir_);
  const QString path = QFileDialog::getSaveFileName(this, "Export clip", dir + "/" + stem + ".mp4",
                                                    "MP4 video (*.mp4);;PNG frames (*.png)");
  if (path.isEmpty()) return;
  last_export_dir_ = QFileInfo(path).absolutePath().toStdString();
  export_clip_to(path.toStdString());
}

bool StudioWindow::export_clip_to(const std::string& path) {
  const auto* r = state_.current();
  const VideoPtr v = r ? r->frames() : nullptr;
  if (!v || v->frames == 0) {
    show_error("Nothing to export", "generate a clip first");
    return false;
  }
  try {
    const std::string what = export_frames(*r, *v, path);
    jobs_.set_output(r->job_id, path);
    spdlog::info("studio: exported {}", what);
    return true;
  } catch (const ExportInterrupted& stop) {
    // The window quits next (its signal handler runs once this returns to the event loop).
    spdlog::warn("studio: export to {} abandoned by {}; no file written", path, SignalWatcher::name(stop.signal));
  } catch (const std::exception& e) {
    show_error("Export failed", qs(e.what()));
  }
  return false;
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
    spdlog::info("studio: wrote {}", export_masks(*r, path.toStdString()));
  } catch (const std::exception& e) {
    show_error("Cannot export the mask trace", qs(e.what()));
  }
}

void StudioWindow::load_recipe(const QString& path) {
  try {
    auto r = pipeline::request_from_mp4(path.toStdString());
    dock_->set_request(r);
    spdlog::info("studio: recipe of {} loaded into the dock ({}, seed {}, mode {})", path.toStdString(), r.model, r.seed,
                 r.attention.mode);
    statusBar()->showMessage("Recipe loaded from " + path + ": press Generate to make it again", 8000);
  } catch (const std::exception& e) {
    show_error("No Longshot recipe in this video", path + ": " + qs(e.what()));
  }
}

void StudioWindow::load_calibration_plot(const QString& given) {
  const QString path = given.isEmpty() ? QFileDialog::getOpenFileName(this, "Open calibration table", {},
                                                                      "Calibration tables (*.json)")
                                       : given;
  if (path.isEmpty()) return;
  calibration_file_ = path.toStdString();
  try {
    auto trace = std::make_shared<const calibrate::TableTrace>(calibrate::read_trace(calibration_file_));
    spdlog::info("studio: calibration trace of {} ({}, {} horizons) in Compare > Calibration", calibration_file_,
                 trace->mode, trace->horizons.size());
    gl_->set_calibration(std::move(trace), {}, true);
  } catch (const std::exception& e) {
    gl_->set_calibration(nullptr, e.what(), true);
    show_error("Cannot open the calibration table", qs(e.what()));
  }
}

void StudioWindow::show_shipped_calibration(const std::string& model, const std::string& mode) {
  // Only a new model or mode replaces the tab's table (one the user opened stays until then), and
  // not with the same file (its horizon choice stays).
  const std::string name = shipped_model_name(model);
  if (name + "|" + mode == calibration_for_) return;
  calibration_for_ = name + "|" + mode;
  const std::string path = pipeline::shipped_table_path(name, mode);
  if (!path.empty() && path == calibration_file_) return;
  calibration_file_ = path;
  if (path.empty()) {
    gl_->set_calibration(nullptr, {}, false);
    return;
  }
  try {
    gl_->set_calibration(std::make_shared<const calibrate::TableTrace>(calibrate::read_trace(path)), {}, false);
    spdlog::info("studio: the shipped calibration table {} in Compare > Calibration", path);
  } catch (const std::exception& e) {
    // Not a dialog: it was not asked for. The tab and the log say what is wrong with the shipped file.
    spdlog::warn("studio: shipped calibration table unreadable: {}", e.what());
    gl_->set_calibration(nullptr, e.what(), false);
  }
}

void StudioWindow::dragEnterEvent(QDragEnterEvent* e) {
  for (const QUrl& url : e->mimeData()->urls()) {
    const QString f = url.toLocalFile();
    if (f.endsWith(".mp4", Qt::CaseInsensitive) || f.endsWith(".json", Qt::CaseInsensitive)) {
      e->acceptProposedAction();
      return;
    }
  }
}

void StudioWindow::dropEvent(QDropEvent* e) {
  for (const QUrl& url : e->mimeData()->urls()) {
    const QString f = url.toLocalFile();
    if (f.endsWith(".mp4", Qt::CaseInsensitive)) load_recipe(f);
    else if (f.endsWith(".json", Qt::CaseInsensitive) && is_calibration_table(f)) load_calibration_plot(f);
    else if (f.endsWith(".json", Qt::CaseInsensitive)) load_preset(f);
  }
  e->acceptProposedAction();
}

}  // namespace longshot::studio

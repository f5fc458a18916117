// StudioWindow's files: the model folder, request presets (JSON) and method presets by name,
// the recipe of a Longshot MP4, drops, and the exports (the dialogs here, the writing in
// clip_export.cpp).
#include <QDir>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QMessageBox>
#include <QMimeData>
#include <QStatusBar>

#include "app/studio/clip_export.h"
#include "app/studio/generation_dock.h"
#include "app/studio/signal_watcher.h"
#include "app/studio/studio_window.h"
#include "engine/attention/presets.h"
#include "engine/pipeline/recipe.h"
#include "ui/settings.h"

namespace longshot::studio {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }
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
    else if (f.endsWith(".json", Qt::CaseInsensitive)) load_preset(f);
  }
  e->acceptProposedAction();
}

}  // namespace longshot::studio

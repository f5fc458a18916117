// The main window's menus (File / Edit / View / Help with their shortcuts), the recent-files
// menu and the Preferences dialog: StudioWindow members kept apart from its job and file logic.
#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QSpinBox>

#include "app/studio/generation_dock.h"
#include "app/studio/imgui_widget.h"
#include "app/studio/preset_picker.h"
#include "app/studio/studio_window.h"
#include "ui/colormap.h"
#include "ui/views.h"

namespace longshot::studio {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }

// A menu entry with an optional shortcut, connected to `fn` in the window's context.
template <typename Fn>
QAction* add_action(QMenu* menu, const QString& text, const QKeySequence& shortcut, QObject* context, Fn fn) {
  QAction* a = menu->addAction(text);
  if (!shortcut.isEmpty()) a->setShortcut(shortcut);
  QObject::connect(a, &QAction::triggered, context, fn);
  return a;
}

// Colormap, heatmap scale and columns; returns whether the user accepted.
bool edit_preferences(QWidget* parent, ui::ViewSettings& view) {
  QDialog dlg(parent);
  dlg.setWindowTitle("Preferences");
  auto* form = new QFormLayout(&dlg);
  auto* cmap = new QComboBox;
  for (const auto& n : ui::Colormap::names()) cmap->addItem(qs(n));
  cmap->setCurrentText(qs(view.colormap));
  auto* log_scale = new QCheckBox("log scale for attention heatmaps");
  log_scale->setChecked(view.log_scale);
  auto* cols = new QSpinBox;
  cols->setRange(1, 8);
  cols->setValue(view.heatmap_columns);
  form->addRow("Colormap", cmap);
  form->addRow("", log_scale);
  form->addRow("Heatmap columns", cols);
  auto* box = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
  form->addRow(box);
  QObject::connect(box, &QDialogButtonBox::accepted, &dlg, &QDialog::accept);
  QObject::connect(box, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
  if (dlg.exec() != QDialog::Accepted) return false;
  view.colormap = cmap->currentText().toStdString();
  view.log_scale = log_scale->isChecked();
  view.heatmap_columns = cols->value();
  return true;
}
}  // namespace

void StudioWindow::build_menus() {
  QMenu* file = menuBar()->addMenu("&File");
  add_action(file, "Open model folder...", QKeySequence::Open, this, [this] { open_model_folder(); });
  add_action(file, "Load preset...", QKeySequence("Ctrl+L"), this, [this] { load_preset(); });
  add_action(file, "Save preset...", QKeySequence::Save, this, [this] { save_preset(); });
  add_action(file, "Load recipe from a video...", QKeySequence(), this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, "Load the recipe of a Longshot video", qs(last_export_dir_),
                                                   "MP4 video (*.mp4)");
    if (!f.isEmpty()) load_recipe(f);
  });
  add_action(file, "Open calibration table...", QKeySequence(), this, [this] { load_calibration_plot(); });
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
    if (edit_preferences(this, settings_.view)) gl_->update();
  });
  QMenu* presets = edit->addMenu("Attention preset");
  for (const auto& p : dock_->preset_picker()->presets()) {
    QAction* a = presets->addAction(qs(p.name), this, [this, p] { dock_->apply_method_preset(p); });
    a->setToolTip(qs(p.summary));
  }
  presets->setToolTipsVisible(true);
  presets->setEnabled(!presets->isEmpty());

  QMenu* view = menuBar()->addMenu("&View");
  for (const auto& name : ui::Views::panel_names()) {
    QAction* a = view->addAction(qs(name).replace("&", "&&"));  // "Sparsity & speed", not a mnemonic
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

}  // namespace longshot::studio

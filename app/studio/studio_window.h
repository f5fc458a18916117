// The studio's main window: wires the Generator (worker thread, events) to the StudioState the
// views read, the generation dock, the job list (with the history kept between sessions), the log
// panel, menus and the status bar. A 10 Hz timer drains the event queue; the views redraw only when
// something changed (events, input, a playing clip). Nothing here waits on the engine. SIGINT /
// SIGTERM / SIGHUP (quit_on_signal) end it as Quit does, without asking: jobs cancelled, history
// kept, no partial export, exit 128 + signal.
#pragma once
#include <QMainWindow>
#include <memory>
#include <set>

#include "app/studio/log_sink.h"
#include "engine/pipeline/generator.h"
#include "ui/jobs.h"
#include "ui/settings.h"
#include "ui/studio_state.h"

class QLabel;
class QMenu;
class QPlainTextEdit;
class QProgressBar;
class QTimer;

namespace longshot::studio {

class GenerationDock;
class ImGuiWidget;
class JobQueueView;

class StudioWindow : public QMainWindow {
  Q_OBJECT

 public:
  // `persist`: read and write QSettings (the self-test runs with defaults and leaves them alone).
  StudioWindow(std::shared_ptr<LogBuffer> log, bool persist, QWidget* parent = nullptr);
  ~StudioWindow() override;

  const ui::StudioState& state() const { return state_; }
  ImGuiWidget* gl_widget() { return gl_; }
  GenerationDock* dock() { return dock_; }
  pipeline::Generator& generator() { return *generator_; }
  // Queues the dock's request (or `request`); returns the job id, 0 when refused. `keep_seed`:
  // the seed as given (A/B pairs share one); otherwise a seed no queued or running job has.
  uint64_t submit(const pipeline::GenerationRequest& request, bool keep_seed = false);
  uint64_t submit_from_dock();
  // Queues the dock's request twice, same seed, under the Compare panel's modes A and B.
  void run_compare();
  // Queues a dense reference and one job per value of `param` of `mode` (the dock's request and
  // seed, the dock's other sliders when `mode` is the dock's), and hands them to the Sweep view.
  void run_sweep(const std::string& mode, const std::string& param, const std::vector<double>& values);
  // Forwards a mode change to the running job (applies from its next step).
  void change_attention(const pipeline::AttentionSettings& settings);
  ui::StudioSettings& settings() { return settings_; }
  // A preset JSON file into the dock (a dialog when `path` is empty); errors are shown, not thrown.
  void load_preset(const QString& path = {});
  // The recipe an MP4 made by Longshot carries (its `longshot_recipe` tag) into the dock.
  void load_recipe(const QString& mp4_path);
  // A calibration table's BO trace into Compare > Calibration, which it selects (a dialog when
  // `path` is empty); an unreadable table is shown as an error and in the tab.
  void load_calibration_plot(const QString& path = {});
  // The table shipped for `model` (a request's model: "builtin", a registered name or a folder) and
  // `mode` (pipeline::shipped_table_path) into the tab without selecting it; none: the tab's hint.
  // Cheap to call on every request change: only another model or mode looks again.
  void show_shipped_calibration(const std::string& model, const std::string& mode);
  // The current run's frames to `path` (MP4, or a PNG set for *.png) without a dialog; errors are
  // shown. False when nothing was written (an error, or a signal that abandoned the export).
  bool export_clip_to(const std::string& path);
  // A signal (SignalWatcher): cancel the jobs, keep the history and settings, quit with 128 + sig.
  void quit_on_signal(int sig);
  const ui::JobList& jobs() const { return jobs_; }
  // Where the history is kept ("" = not kept: the self-test).
  void set_history_path(std::string path) { history_path_ = std::move(path); }

 Q_SIGNALS:
  // After each drain that applied at least one event.
  void state_changed();

 protected:
  void closeEvent(QCloseEvent* e) override;
  bool eventFilter(QObject* watched, QEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  void build_menus();
  void tick();
  void update_status();
  void update_queue();
  void show_error(const QString& title, const QString& text);
  void load_settings();
  void save_settings();
  void refresh_recent();
  void open_model_folder();

  void save_preset();
  void export_clip();
  void export_mask_trace();
  void save_history();
  void fit_to_screen();
  // Quit and signals alike: active jobs into the history as cancelled, settings and history
  // written, the generator asked to stop.
  void end_jobs();

  std::shared_ptr<LogBuffer> log_;
  bool persist_;
  std::unique_ptr<pipeline::Generator> generator_;
  ui::StudioState state_;
  ui::StudioSettings settings_;
  GenerationDock* dock_ = nullptr;
  ImGuiWidget* gl_ = nullptr;
  JobQueueView* queue_ = nullptr;
  QPlainTextEdit* log_view_ = nullptr;
  QLabel* status_speed_ = nullptr;
  QLabel* status_device_ = nullptr;
  QLabel* status_memory_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  QTimer* timer_ = nullptr;
  ui::JobList jobs_;
  std::string history_path_;
  qint64 last_memory_ms_ = 0;
  std::string last_export_dir_;
  std::string calibration_file_;  // the table Compare > Calibration shows (or failed to read); "" none
  std::string calibration_for_;   // "model|mode" show_shipped_calibration last looked up
  bool ending_ = false;  // a signal is ending the window
};

}  // namespace longshot::studio

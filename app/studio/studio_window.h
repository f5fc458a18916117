// The studio's main window: wires the Generator (worker thread, events) to the StudioState the
// views read, the generation dock, the job queue, the log panel, menus and the status bar. A timer
// drains the event queue once per frame; nothing here waits on the engine.
#pragma once
#include <QMainWindow>
#include <memory>
#include <set>

#include "app/studio/log_sink.h"
#include "engine/pipeline/generator.h"
#include "ui/settings.h"
#include "ui/studio_state.h"

class QLabel;
class QListWidget;
class QMenu;
class QPlainTextEdit;
class QProgressBar;
class QTimer;

namespace longshot::studio {

class GenerationDock;
class ImGuiWidget;

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
  // Queues the dock's request (or `request`); returns the job id, 0 when the engine refused it.
  uint64_t submit(const pipeline::GenerationRequest& request);
  uint64_t submit_from_dock();
  // Queues the dock's request twice, same seed, under the Compare panel's modes A and B.
  void run_compare();
  // Forwards a mode change to the running job (applies from its next step).
  void change_attention(const pipeline::AttentionSettings& settings);
  ui::StudioSettings& settings() { return settings_; }

 Q_SIGNALS:
  // After each drain that applied at least one event.
  void state_changed();

 protected:
  void closeEvent(QCloseEvent* e) override;

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
  void load_preset(const QString& path = {});
  void save_preset();
  void export_clip();
  void export_mask_trace();

  std::shared_ptr<LogBuffer> log_;
  bool persist_;
  std::unique_ptr<pipeline::Generator> generator_;
  ui::StudioState state_;
  ui::StudioSettings settings_;
  GenerationDock* dock_ = nullptr;
  ImGuiWidget* gl_ = nullptr;
  QListWidget* queue_ = nullptr;
  QPlainTextEdit* log_view_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_speed_ = nullptr;
  QLabel* status_device_ = nullptr;
  QLabel* status_memory_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  QTimer* timer_ = nullptr;
  std::vector<uint64_t> submitted_;  // job ids in submission order
  std::set<uint64_t> pending_;       // submitted, not yet started
};

}  // namespace longshot::studio

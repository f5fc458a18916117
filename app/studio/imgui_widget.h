// A QOpenGLWidget that hosts Dear ImGui: our small Qt → ImGui bridge (mouse, wheel, keys, text,
// display size, time) and Dear ImGui's OpenGL 3 renderer. It draws the ui::Views from a StudioState
// it only reads, and only when asked (input, new events, a playing clip); it never calls the engine.
#pragma once
#include <QElapsedTimer>
#include <QTimer>
#include <QOpenGLWidget>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ui/settings.h"
#include "ui/studio_state.h"
#include "ui/views.h"

struct ImGuiContext;

namespace longshot::studio {

class ImGuiWidget : public QOpenGLWidget {
  Q_OBJECT

 public:
  ImGuiWidget(const ui::StudioState& state, ui::ViewSettings& view, QWidget* parent = nullptr);
  ~ImGuiWidget() override;

  // Mode names for the Compare panel (handed to the views when GL starts).
  void set_modes(std::vector<std::string> modes) { modes_ = std::move(modes); }
  // Compare > Calibration's table (ui::Views::set_calibration), kept until GL starts when it has
  // not yet; redraws.
  void set_calibration(std::shared_ptr<const calibrate::TableTrace> trace, std::string error, bool show);
  // Valid after the first paint (null before, or if GL failed: see gl_error()).
  ui::Views* views() { return views_.get(); }
  const QString& gl_error() const { return gl_error_; }
  uint64_t frames_drawn() const { return frames_drawn_; }

 Q_SIGNALS:
  void actions(const longshot::ui::PanelActions& actions);

 protected:
  void initializeGL() override;
  void paintGL() override;
  void resizeGL(int w, int h) override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void wheelEvent(QWheelEvent* e) override;
  void keyPressEvent(QKeyEvent* e) override;
  void keyReleaseEvent(QKeyEvent* e) override;
  void leaveEvent(QEvent* e) override;

 private:
  void make_imgui_current();
  void key_event(QKeyEvent* e, bool down);
  // Input changed something: draw now and once more (ImGui settles hover / active state a frame late).
  void request_frames();

  const ui::StudioState& state_;
  ui::ViewSettings& view_;
  ImGuiContext* ctx_ = nullptr;
  std::unique_ptr<ui::Views> views_;
  std::vector<std::string> modes_;
  std::shared_ptr<const calibrate::TableTrace> calibration_;
  std::string calibration_error_;
  bool show_calibration_ = false;
  bool renderer_ready_ = false;
  QElapsedTimer clock_;
  double last_time_ = 0;
  QString gl_error_;
  uint64_t frames_drawn_ = 0;
  int extra_frames_ = 0;
  QTimer* next_frame_ = nullptr;  // single-shot: the follow-up frame, or a playing clip's next one
};

}  // namespace longshot::studio

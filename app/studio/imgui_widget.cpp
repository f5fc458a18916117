#include "app/studio/imgui_widget.h"

#include <QGuiApplication>
#include <QKeyEvent>
#include <QOpenGLContext>
#include <cfloat>
#include <QMouseEvent>
#include <QWheelEvent>

#include <imgui.h>
#include <imgui_impl_opengl3.h>

#include "engine/common/log.h"

namespace longshot::studio {

namespace {
// Qt key codes → ImGui's KeysDown[512]: printable keys keep their code, Qt's special keys
// (0x01000000 + n) land at 0x100 + n.
int key_slot(int qt_key) {
  if (qt_key >= 0x01000000) return 0x100 + (qt_key & 0xFF);
  return qt_key & 0x1FF;
}
}  // namespace

ImGuiWidget::ImGuiWidget(const ui::StudioState& state, ui::ViewSettings& view, QWidget* parent)
    : QOpenGLWidget(parent), state_(state), view_(view) {
  setFocusPolicy(Qt::StrongFocus);
  setMouseTracking(true);
  setMinimumSize(640, 400);
  IMGUI_CHECKVERSION();
  ImGuiContext* previous = ImGui::GetCurrentContext();
  ctx_ = ImGui::CreateContext();
  ImGui::SetCurrentContext(ctx_);
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // the layout is ours (tiled); Qt's QSettings keeps the rest
  io.BackendPlatformName = "longshot_qt_bridge";
  const std::pair<ImGuiKey, int> keys[] = {
      {ImGuiKey_Tab, Qt::Key_Tab},         {ImGuiKey_LeftArrow, Qt::Key_Left},  {ImGuiKey_RightArrow, Qt::Key_Right},
      {ImGuiKey_UpArrow, Qt::Key_Up},      {ImGuiKey_DownArrow, Qt::Key_Down},  {ImGuiKey_PageUp, Qt::Key_PageUp},
      {ImGuiKey_PageDown, Qt::Key_PageDown}, {ImGuiKey_Home, Qt::Key_Home},     {ImGuiKey_End, Qt::Key_End},
      {ImGuiKey_Insert, Qt::Key_Insert},   {ImGuiKey_Delete, Qt::Key_Delete},   {ImGuiKey_Backspace, Qt::Key_Backspace},
      {ImGuiKey_Space, Qt::Key_Space},     {ImGuiKey_Enter, Qt::Key_Return},    {ImGuiKey_Escape, Qt::Key_Escape},
      {ImGuiKey_KeyPadEnter, Qt::Key_Enter}, {ImGuiKey_A, Qt::Key_A},           {ImGuiKey_C, Qt::Key_C},
      {ImGuiKey_V, Qt::Key_V},             {ImGuiKey_X, Qt::Key_X},             {ImGuiKey_Y, Qt::Key_Y},
      {ImGuiKey_Z, Qt::Key_Z}};
  for (const auto& [imgui_key, qt_key] : keys) io.KeyMap[imgui_key] = key_slot(qt_key);
  ImGui::StyleColorsDark();
  ImGui::GetStyle().WindowRounding = 0;
  ImGui::SetCurrentContext(previous ? previous : ctx_);
  clock_.start();
  next_frame_ = new QTimer(this);
  next_frame_->setSingleShot(true);
  connect(next_frame_, &QTimer::timeout, this, [this] { update(); });
}

void ImGuiWidget::request_frames() {
  extra_frames_ = 2;
  update();
}

ImGuiWidget::~ImGuiWidget() {
  // GL objects die with the context current, ImGui's renderer before its context.
  makeCurrent();
  make_imgui_current();
  views_.reset();
  if (renderer_ready_) ImGui_ImplOpenGL3_Shutdown();
  doneCurrent();
  ImGui::DestroyContext(ctx_);
}

void ImGuiWidget::make_imgui_current() { ImGui::SetCurrentContext(ctx_); }

void ImGuiWidget::set_calibration(std::shared_ptr<const calibrate::TableTrace> trace, std::string error, bool show) {
  calibration_ = trace;
  calibration_error_ = error;
  show_calibration_ = show && !views_;  // selecting the tab is a one-off, pending only until GL starts
  if (views_) views_->set_calibration(std::move(trace), std::move(error), show);
  request_frames();
}

void ImGuiWidget::initializeGL() {
  make_imgui_current();
  if (!ImGui_ImplOpenGL3_Init("#version 330 core")) {
    gl_error_ = "Dear ImGui's OpenGL 3 renderer did not start (needs OpenGL 3.3)";
    spdlog::error("studio: {}", gl_error_.toStdString());
    return;
  }
  renderer_ready_ = true;
  try {
    views_ = std::make_unique<ui::Views>();
    views_->set_modes(modes_);
    views_->set_calibration(calibration_, calibration_error_, show_calibration_);
  } catch (const std::exception& e) {
    gl_error_ = QString::fromStdString(e.what());
    spdlog::error("studio: views unavailable: {}", e.what());
  }
  const auto* fmt = context();
  spdlog::info("studio: OpenGL {}.{} context, views {}", fmt->format().majorVersion(), fmt->format().minorVersion(),
               views_ ? "ready" : "unavailable");
}

void ImGuiWidget::resizeGL(int, int) {}

void ImGuiWidget::paintGL() {
  make_imgui_current();
  ImGuiIO& io = ImGui::GetIO();
  const double now = clock_.nsecsElapsed() * 1e-9;
  // Frames come only on change: after an idle minute the clock must not jump a clip forward.
  const double dt = std::clamp(now - last_time_, 1e-4, 0.1);
  last_time_ = now;
  io.DeltaTime = static_cast<float>(dt);
  const qreal dpr = devicePixelRatioF();
  io.DisplaySize = ImVec2(static_cast<float>(width()), static_cast<float>(height()));
  io.DisplayFramebufferScale = ImVec2(static_cast<float>(dpr), static_cast<float>(dpr));
  io.KeyCtrl = QGuiApplication::keyboardModifiers() & Qt::ControlModifier;
  io.KeyShift = QGuiApplication::keyboardModifiers() & Qt::ShiftModifier;
  io.KeyAlt = QGuiApplication::keyboardModifiers() & Qt::AltModifier;

  glViewport(0, 0, static_cast<int>(width() * dpr), static_cast<int>(height() * dpr));
  glClearColor(0.07f, 0.07f, 0.09f, 1.f);
  glClear(GL_COLOR_BUFFER_BIT);
  if (!renderer_ready_) return;
  ImGui_ImplOpenGL3_NewFrame();
  ImGui::NewFrame();
  ui::PanelActions act;
  if (views_) {
    act = views_->draw(state_, view_, dt, defaultFramebufferObject(), io.DisplaySize.x, io.DisplaySize.y);
  } else {
    ImGui::SetNextWindowPos({10, 10});
    ImGui::Begin("Views unavailable");
    ImGui::TextUnformatted(gl_error_.toUtf8().constData());
    ImGui::End();
  }
  ImGui::Render();
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  io.MouseWheel = 0;
  io.MouseWheelH = 0;
  ++frames_drawn_;
  // The next frame: a playing clip at ~16 fps, one follow-up after input; otherwise none.
  if (views_ && views_->animating()) next_frame_->start(60);
  else if (extra_frames_ > 0 && --extra_frames_ > 0) next_frame_->start(30);
  if (act.pick_query >= 0 || act.run_compare) Q_EMIT actions(act);
}

void ImGuiWidget::mousePressEvent(QMouseEvent* e) {
  make_imgui_current();
  ImGuiIO& io = ImGui::GetIO();
  io.MousePos = ImVec2(static_cast<float>(e->position().x()), static_cast<float>(e->position().y()));
  if (e->button() == Qt::LeftButton) io.MouseDown[0] = true;
  if (e->button() == Qt::RightButton) io.MouseDown[1] = true;
  if (e->button() == Qt::MiddleButton) io.MouseDown[2] = true;
  request_frames();
}

void ImGuiWidget::mouseReleaseEvent(QMouseEvent* e) {
  make_imgui_current();
  ImGuiIO& io = ImGui::GetIO();
  io.MousePos = ImVec2(static_cast<float>(e->position().x()), static_cast<float>(e->position().y()));
  if (e->button() == Qt::LeftButton) io.MouseDown[0] = false;
  if (e->button() == Qt::RightButton) io.MouseDown[1] = false;
  if (e->button() == Qt::MiddleButton) io.MouseDown[2] = false;
  request_frames();
}

void ImGuiWidget::mouseMoveEvent(QMouseEvent* e) {
  make_imgui_current();
  ImGui::GetIO().MousePos = ImVec2(static_cast<float>(e->position().x()), static_cast<float>(e->position().y()));
  request_frames();
}

void ImGuiWidget::leaveEvent(QEvent*) {
  make_imgui_current();
  ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
  request_frames();  // hover highlights and tooltips go away
}

void ImGuiWidget::wheelEvent(QWheelEvent* e) {
  make_imgui_current();
  ImGuiIO& io = ImGui::GetIO();
  // Qt: 120 units per notch; ImGui: 1.0 per notch.
  io.MouseWheel += e->angleDelta().y() / 120.f;
  io.MouseWheelH += e->angleDelta().x() / 120.f;
  request_frames();
}

void ImGuiWidget::key_event(QKeyEvent* e, bool down) {
  make_imgui_current();
  ImGuiIO& io = ImGui::GetIO();
  const int slot = key_slot(e->key());
  if (slot >= 0 && slot < 512) io.KeysDown[slot] = down;
  io.KeyCtrl = e->modifiers() & Qt::ControlModifier;
  io.KeyShift = e->modifiers() & Qt::ShiftModifier;
  io.KeyAlt = e->modifiers() & Qt::AltModifier;
  if (down)
    for (const QChar c : e->text())
      if (c.isPrint()) io.AddInputCharacterUTF16(c.unicode());
  request_frames();
}

void ImGuiWidget::keyPressEvent(QKeyEvent* e) { key_event(e, true); }
void ImGuiWidget::keyReleaseEvent(QKeyEvent* e) { key_event(e, false); }

}  // namespace longshot::studio

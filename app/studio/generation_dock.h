// The generation dock: prompt, negative prompt, seed (with a dice button), model, frames, size,
// steps, guidance, attention mode (built from attention::registered_policies()) with one slider per
// ParamSpec, dense warm-up, inspected layer/head, Generate / Cancel. It edits a GenerationRequest
// and says so; the window decides what to do with it.
#pragma once
#include <QWidget>
#include <map>

#include "engine/pipeline/job.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSlider;
class QSpinBox;

namespace longshot::studio {

class GenerationDock : public QWidget {
  Q_OBJECT

 public:
  explicit GenerationDock(QWidget* parent = nullptr);
  // The request as the fields describe it now.
  pipeline::GenerationRequest request() const;
  void set_request(const pipeline::GenerationRequest& request);
  void set_running(bool running);

 Q_SIGNALS:
  void generate_requested();
  void cancel_requested();
  // Mode, its parameters or the dense warm-up changed (the window forwards it to a running job).
  void attention_changed(const longshot::pipeline::AttentionSettings& settings);

 private:
  void rebuild_params(const std::string& mode, const attention::ParamValues& values);
  void emit_attention();

  QPlainTextEdit* prompt_;
  QLineEdit* negative_;
  QComboBox* model_;
  QSpinBox* seed_;
  QSpinBox* frames_;
  QSpinBox* width_;
  QSpinBox* height_;
  QSpinBox* steps_;
  QDoubleSpinBox* guidance_;
  QComboBox* mode_;
  QLabel* mode_summary_;
  QWidget* params_box_;
  QFormLayout* params_form_;
  QSpinBox* warmup_;
  QCheckBox* adapter_;
  QSpinBox* block_size_;
  QSpinBox* inspect_layer_;
  QSpinBox* inspect_head_;
  QPushButton* generate_;
  QPushButton* cancel_;
  struct ParamSlider {
    QSlider* slider;
    QLabel* value;
    double min, max;
    bool integer;
    double to_value(int pos) const;
    int to_pos(double v) const;
  };
  std::map<std::string, ParamSlider> sliders_;
  pipeline::GenerationRequest hidden_;  // fields the dock has no widget for (shift, fps, query, ...)
  bool loading_ = false;
};

}  // namespace longshot::studio

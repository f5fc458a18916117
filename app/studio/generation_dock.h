// The generation dock: prompt, negative prompt, seed (with a dice button), model, frames, size,
// steps, guidance, a preset menu (the papers' settings, PresetPicker), attention mode (built from
// attention::registered_policies()) with one slider per ParamSpec, the motion regime (off, auto =
// the router, or a regime of the calibration table) and what the last job chose, dense warm-up, inspected
// layer/head, and a footer pinned below the scrolling form:
// request problems, progress, Generate / Cancel. It edits a GenerationRequest, checks it against
// the selected model's limits as the user types, and says so; the window decides what to do.
#pragma once
#include <QWidget>
#include <map>

#include "engine/pipeline/job.h"
#include "ui/jobs.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSlider;
class QSpinBox;

namespace longshot::attention {
struct MethodPreset;
}

namespace longshot::studio {

class PresetPicker;

class GenerationDock : public QWidget {
  Q_OBJECT

 public:
  explicit GenerationDock(QWidget* parent = nullptr);
  // The request as the fields describe it now.
  pipeline::GenerationRequest request() const;
  void set_request(const pipeline::GenerationRequest& request);
  void set_running(bool running);
  // The footer's progress bar and its line ("step 3 / 20, 1.2 s/step, ETA 20 s").
  void set_progress(int value, int maximum, const QString& text);
  // Problems of the current request against the selected model; blocking ones disable Generate.
  const std::vector<ui::RequestProblem>& problems() const { return problems_; }
  const ui::ModelLimits& limits() const { return limits_; }
  // The example prompt the box shows in grey (and the first launch starts with).
  static const char* example_prompt();
  // A method preset into the fields, as `longshot generate --preset` sets it (pipeline::apply_preset);
  // the preset menu does this, and so can a caller (the self-test, --preset NAME).
  void apply_method_preset(const attention::MethodPreset& preset);
  PresetPicker* preset_picker() const { return preset_; }
  // What the last job's motion regime choice did (JobStarted::routing: the regime, the router's
  // confidence and why, the table and horizon); "" clears it.
  void set_routing(const QString& summary);

 Q_SIGNALS:
  void generate_requested();
  void cancel_requested();
  // Mode, its parameters or the dense warm-up changed (the window forwards it to a running job).
  void attention_changed(const longshot::pipeline::AttentionSettings& settings);
  // The model (its name, folder or files) was picked or a request was loaded into the fields.
  void model_picked();

 private:
  void build_model_rows(QFormLayout* form);
  void build_request_rows(QFormLayout* form);
  void build_attention_rows(QFormLayout* form);
  QWidget* build_footer();
  void connect_fields();
  void rebuild_params(const std::string& mode, const attention::ParamValues& values);
  void emit_attention();
  void model_changed(bool apply_defaults);
  void revalidate();
  bool eventFilter(QObject* watched, QEvent* event) override;

  QPlainTextEdit* prompt_;
  QLineEdit* negative_;
  QComboBox* model_;
  QSpinBox* seed_;
  QSpinBox* frames_;
  QSpinBox* width_;
  QSpinBox* height_;
  QSpinBox* steps_;
  QDoubleSpinBox* guidance_;
  PresetPicker* preset_;
  QComboBox* mode_;
  QLabel* mode_summary_;
  QWidget* params_box_;
  QFormLayout* params_form_;
  QComboBox* regime_;        // motion regime: off / auto / a regime name (AttentionSettings::regime)
  QLabel* regime_result_;    // the last job's choice
  QSpinBox* warmup_;
  QCheckBox* adapter_;
  QSpinBox* block_size_;
  QSpinBox* inspect_layer_;
  QSpinBox* inspect_head_;
  QWidget* files_box_;
  QLineEdit* dit_file_;
  QLineEdit* text_encoder_file_;
  QLineEdit* vae_file_;
  QLabel* model_status_;
  QLabel* frames_hint_;
  QLabel* size_hint_;
  QLabel* problems_label_;
  QProgressBar* progress_;
  QLabel* progress_text_;
  QPushButton* generate_;
  QPushButton* cancel_;
  ui::ModelLimits limits_;
  std::vector<ui::RequestProblem> problems_;
  std::string limits_for_;  // the model text limits_ was computed for
  struct ParamSlider {
    QSlider* slider;
    QLabel* value;
    double min, max;
    bool integer;
    double default_value = 0;  // the ParamSpec's: with a motion regime, a slider left here takes the regime's
    double exact = 0;  // the value shown: a loaded one exactly, else the slider's position
    double to_value(int pos) const;
    int to_pos(double v) const;
  };
  std::map<std::string, ParamSlider> sliders_;
  pipeline::GenerationRequest hidden_;  // fields the dock has no widget for (shift, fps, query, ...)
  bool loading_ = false;
};

}  // namespace longshot::studio

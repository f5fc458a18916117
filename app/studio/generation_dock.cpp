#include "app/studio/generation_dock.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QProgressBar>
#include <QScrollArea>
#include <QWheelEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRandomGenerator>
#include <QSlider>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "app/studio/preset_picker.h"
#include "engine/attention/mask_policy.h"
#include "engine/model/builtin_model.h"
#include "engine/model/dit_config.h"
#include "engine/model/model_source.h"
#include "engine/pipeline/preset_request.h"

namespace longshot::studio {

namespace {
constexpr int kSliderSteps = 1000;
QString format_param(double v, bool integer) {
  return integer ? QString::number(static_cast<long long>(std::lround(v))) : QString::number(v, 'g', 4);
}
QString qs(const std::string& s) { return QString::fromStdString(s); }

bool is_builtin(const std::string& name) { return name.rfind("longshot-builtin", 0) == 0 || name == "builtin"; }

// The selected model's limits and what a generation would lack. Registered Wan configs bring no
// weights: their umT5 text encoder and VAE must be given as files (or the Wan2.1 folder opened).
ui::ModelLimits limits_of(const pipeline::GenerationRequest& r) {
  ui::ModelLimits m;
  m.name = r.model;
  const std::string name = model::resolve_builtin_name(r.model);
  model::DiTConfig c;
  if (model::has_config(name)) {
    c = model::find_config(name);
    m.known = true;
    if (c.text_dim == 4096) {  // umT5-XXL conditioning: the Wan configs
      if (r.text_encoder_file.empty() && r.text_embeddings.empty())
        m.missing.push_back("text encoder (umT5-XXL weights: set 'Text encoder' below or open a Wan2.1 folder)");
      if (r.vae_file.empty()) m.missing.push_back("VAE (Wan2.1_VAE.pth; without it the frames are a colour preview)");
      if (r.dit_file.empty() && c.default_weights.empty()) m.missing.push_back("DiT weights (random weights otherwise)");
    }
  } else if (!r.model.empty() && QFileInfo::exists(qs(r.model))) {
    try {
      const auto found = model::inspect_model(r.model);
      c = found.config;
      m.known = true;
      m.missing = found.missing;
    } catch (const std::exception& e) {
      m.missing.push_back(std::string("usable model: ") + e.what());
      return m;
    }
  } else {
    return m;
  }
  m.temporal_stride = c.temporal_stride;
  m.temporal_patch = static_cast<int>(c.patch[0]);
  m.unit_w = c.spatial_stride * static_cast<int>(c.patch[2]);
  m.unit_h = c.spatial_stride * static_cast<int>(c.patch[1]);
  return m;
}
}  // namespace

const char* GenerationDock::example_prompt() { return "a small red circle bounces left to right on a dark blue background"; }

// Number boxes, combos and sliders take the wheel only once focused: over an unfocused one the
// wheel scrolls the form, as in every other scrolling form.
bool GenerationDock::eventFilter(QObject* watched, QEvent* event) {
  if (event->type() == QEvent::Wheel) {
    auto* w = qobject_cast<QWidget*>(watched);
    if (w && !w->hasFocus()) {
      event->ignore();
      return true;  // not delivered to the box; Qt passes the ignored wheel on to the scroll area
    }
  }
  return QWidget::eventFilter(watched, event);
}

double GenerationDock::ParamSlider::to_value(int pos) const {
  if (integer) return pos;
  return min + (max - min) * pos / kSliderSteps;
}

int GenerationDock::ParamSlider::to_pos(double v) const {
  if (integer) return static_cast<int>(std::lround(v));
  return static_cast<int>(std::lround((v - min) / (max - min) * kSliderSteps));
}

GenerationDock::GenerationDock(QWidget* parent) : QWidget(parent) {
  auto* outer = new QVBoxLayout(this);
  outer->setContentsMargins(0, 0, 0, 0);
  auto* scroll = new QScrollArea;
  scroll->setWidgetResizable(true);
  scroll->setFrameShape(QFrame::NoFrame);
  scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  auto* form_widget = new QWidget;
  auto* form = new QFormLayout(form_widget);
  form->setRowWrapPolicy(QFormLayout::WrapLongRows);
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  scroll->setWidget(form_widget);
  outer->addWidget(scroll, 1);

  build_model_rows(form);
  build_request_rows(form);
  build_attention_rows(form);
  outer->addWidget(build_footer());
  connect_fields();
  set_request(pipeline::GenerationRequest{});
}

namespace {
QSpinBox* spin(int lo, int hi, int step, const char* tip) {
  auto* s = new QSpinBox;
  s->setRange(lo, hi);
  s->setSingleStep(step);
  s->setToolTip(tip);
  return s;
}
}  // namespace

// Prompt, negative prompt, model and (for models that are not built in) its component files.
void GenerationDock::build_model_rows(QFormLayout* form) {
  prompt_ = new QPlainTextEdit;
  prompt_->setPlaceholderText(example_prompt());
  prompt_->setFixedHeight(64);
  prompt_->setToolTip("What the video shows. The text encoder of the chosen model reads it.");
  form->addRow("Prompt", prompt_);
  negative_ = new QLineEdit;
  negative_->setToolTip("What the video should not show (classifier-free guidance's unconditional branch).");
  form->addRow("Negative", negative_);

  model_ = new QComboBox;
  model_->setEditable(true);
  // The built-in models first (they run as they are), then the rest; Wan configs say what they need.
  auto configs = model::registered_configs();
  std::stable_sort(configs.begin(), configs.end(), [](const model::DiTConfig& a, const model::DiTConfig& b) {
    auto rank = [](const std::string& n) { return is_builtin(n) ? 0 : n == "tiny" ? 1 : 2; };
    return rank(a.name) < rank(b.name);
  });
  for (const auto& c : configs) {
    model_->addItem(qs(c.name));
    QString tip = qs(c.summary);
    if (c.text_dim == 4096) tip += "\nNeeds its umT5 text encoder and VAE files (or open a Wan2.1 folder).";
    model_->setItemData(model_->count() - 1, tip, Qt::ToolTipRole);
  }
  model_->setToolTip("A registered model config or a checkpoint folder (File > Open model folder)");
  form->addRow("Model", model_);
  model_status_ = new QLabel;
  model_status_->setWordWrap(true);
  model_status_->setStyleSheet("color: #d9a441;");
  model_status_->hide();
  form->addRow(model_status_);
  // Component files (GenerationRequest::*_file): shown for models that are not built in.
  files_box_ = new QWidget;
  auto* files_form = new QFormLayout(files_box_);
  files_form->setContentsMargins(0, 0, 0, 0);
  auto file_row = [this, files_form](const char* label, const char* tip, const char* filter) {
    auto* row = new QHBoxLayout;
    auto* edit = new QLineEdit;
    edit->setToolTip(tip);
    edit->setPlaceholderText("none");
    auto* browse = new QToolButton;
    browse->setText("...");
    connect(browse, &QToolButton::clicked, this, [this, edit, label, filter] {
      const QString f = QFileDialog::getOpenFileName(this, QString("Choose the %1 file").arg(label), edit->text(), filter);
      if (!f.isEmpty()) edit->setText(f);
    });
    connect(edit, &QLineEdit::editingFinished, this, [this] { model_changed(false); });
    row->addWidget(edit, 1);
    row->addWidget(browse);
    files_form->addRow(label, row);
    return edit;
  };
  dit_file_ = file_row("DiT", "DiT weights (.safetensors or shard index); replaces the model's", "Weights (*.safetensors *.json)");
  text_encoder_file_ = file_row("Text encoder", "umT5-XXL encoder weights (.safetensors, index .json or .pth)",
                                "Weights (*.safetensors *.json *.pth)");
  vae_file_ = file_row("VAE", "Wan2.1 VAE weights (Wan2.1_VAE.pth or .safetensors)", "Weights (*.safetensors *.pth)");
  form->addRow(files_box_);
}

// Seed, frames, size, steps, guidance, each with the model's rule beside it.
void GenerationDock::build_request_rows(QFormLayout* form) {
  auto* seed_row = new QHBoxLayout;
  seed_ = new QSpinBox;
  seed_->setRange(0, std::numeric_limits<int>::max());
  seed_->setToolTip("Noise seed: the same seed, request and mode give the same video");
  auto* dice = new QToolButton;
  dice->setText("Dice");
  dice->setToolTip("A random seed");
  connect(dice, &QToolButton::clicked, this,
          [this] { seed_->setValue(static_cast<int>(QRandomGenerator::global()->bounded(std::numeric_limits<int>::max()))); });
  seed_row->addWidget(seed_, 1);
  seed_row->addWidget(dice);
  form->addRow("Seed", seed_row);

  // The boxes take any number, so a typed 5000 stays 5000 (a box whose maximum is the limit drops
  // the last digit: 500) and the check below names the limit (validate_request's, and the model's
  // rules: 4k+1 frames, multiples of 16), shown beside the box.
  constexpr int kTypeable = 999999;
  auto* frames_row = new QHBoxLayout;
  frames_ = spin(1, kTypeable, 4, "Video frames, 1-4096 (the Wan VAE needs 1 + 4k)");
  frames_hint_ = new QLabel;
  frames_hint_->setStyleSheet("color: gray;");
  frames_row->addWidget(frames_, 1);
  frames_row->addWidget(frames_hint_);
  form->addRow("Frames", frames_row);
  auto* size_row = new QHBoxLayout;
  width_ = spin(1, kTypeable, 16, "Width in pixels, 2-8192 (a multiple of the model's VAE stride x patch)");
  height_ = spin(1, kTypeable, 16, "Height in pixels, 2-8192 (a multiple of the model's VAE stride x patch)");
  size_hint_ = new QLabel;
  size_hint_->setStyleSheet("color: gray;");
  size_row->addWidget(width_, 1);
  size_row->addWidget(new QLabel("x"));
  size_row->addWidget(height_, 1);
  size_row->addWidget(size_hint_);
  form->addRow("Size", size_row);
  steps_ = spin(1, kTypeable, 1, "Denoising steps, 1-1000");
  form->addRow("Steps", steps_);
  guidance_ = new QDoubleSpinBox;
  guidance_->setRange(0, 30);
  guidance_->setSingleStep(0.5);
  guidance_->setToolTip("Classifier-free guidance scale; 1 disables the unconditional pass");
  form->addRow("Guidance", guidance_);
}

// The preset menu, the mode with one slider per parameter, dense warm-up, adapter, block size and
// the inspected layer / head.
void GenerationDock::build_attention_rows(QFormLayout* form) {
  preset_ = new PresetPicker;
  form->addRow("Preset", preset_);
  mode_ = new QComboBox;
  for (const auto& p : attention::registered_policies()) {
    mode_->addItem(QString::fromStdString(p.name));
    mode_->setItemData(mode_->count() - 1, QString::fromStdString(p.summary), Qt::ToolTipRole);
  }
  form->addRow("Attention", mode_);
  mode_summary_ = new QLabel;
  mode_summary_->setWordWrap(true);
  mode_summary_->setStyleSheet("color: gray;");
  form->addRow("", mode_summary_);
  params_box_ = new QWidget;
  params_form_ = new QFormLayout(params_box_);
  params_form_->setContentsMargins(0, 0, 0, 0);
  form->addRow(params_box_);
  // The motion regime (issue 25): "auto" asks the router, a name sets it; the calibration table's
  // parameters for it replace the sliders still at their defaults when the job starts.
  regime_ = new QComboBox;
  regime_->addItem("off", QString());
  regime_->setItemData(0, "The mode runs the sliders' parameters", Qt::ToolTipRole);
  regime_->addItem("auto (router)", QString("auto"));
  regime_->setItemData(1, "The semantic motion router picks static / slow / fast from the prompt; that regime's "
                          "calibrated parameters replace the sliders left at their defaults", Qt::ToolTipRole);
  for (const char* name : {"static", "slow", "fast"}) {
    regime_->addItem(name, QString(name));
    regime_->setItemData(regime_->count() - 1, QString("The %1 regime's calibrated parameters, whatever the prompt").arg(name),
                         Qt::ToolTipRole);
  }
  regime_->setToolTip("Motion regime (DynamicRad's lookup table and router; the model's shipped table or a preset's "
                      "'attention/calibration'). Applies when a job starts; a moved slider stays yours.");
  form->addRow("Motion regime", regime_);
  regime_result_ = new QLabel;
  regime_result_->setWordWrap(true);
  regime_result_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  regime_result_->setStyleSheet("color: gray;");
  regime_result_->hide();
  form->addRow("", regime_result_);
  warmup_ = spin(0, 200, 1, "The first steps run dense attention (the layout of a video settles early)");
  form->addRow("Dense warm-up", warmup_);
  adapter_ = new QCheckBox("use the model's adapter");
  adapter_->setToolTip("Mask-aware adapter (low-rank deltas on the sparse layers, distilled from dense) where the "
                       "model ships one for the mode; the built-in model has one for radial");
  form->addRow("Mask adapter", adapter_);
  block_size_ = spin(16, 256, 16, "Tokens per attention block (the mask's granularity)");
  form->addRow("Block size", block_size_);
  auto* inspect_row = new QHBoxLayout;
  inspect_layer_ = spin(0, 99, 1, "Layer whose attention the views show");
  inspect_head_ = spin(0, 99, 1, "Head whose attention the views show");
  inspect_row->addWidget(new QLabel("layer"));
  inspect_row->addWidget(inspect_layer_);
  inspect_row->addWidget(new QLabel("head"));
  inspect_row->addWidget(inspect_head_);
  form->addRow("Inspect", inspect_row);
}

// Footer, outside the scroll area: always visible, however many sliders a mode adds.
QWidget* GenerationDock::build_footer() {
  auto* footer = new QFrame;
  footer->setFrameShape(QFrame::StyledPanel);
  auto* fl = new QVBoxLayout(footer);
  fl->setContentsMargins(6, 4, 6, 6);
  problems_label_ = new QLabel;
  problems_label_->setWordWrap(true);
  problems_label_->hide();
  fl->addWidget(problems_label_);
  progress_ = new QProgressBar;
  progress_->setRange(0, 1);
  progress_->setValue(0);
  progress_->setFormat("step %v / %m");
  progress_->setTextVisible(true);
  fl->addWidget(progress_);
  progress_text_ = new QLabel("idle");
  progress_text_->setWordWrap(true);
  progress_text_->setStyleSheet("color: gray;");
  fl->addWidget(progress_text_);
  auto* buttons = new QHBoxLayout;
  generate_ = new QPushButton("Generate");
  generate_->setToolTip("Queue a job with these settings (Ctrl+Return)");
  generate_->setDefault(true);
  cancel_ = new QPushButton("Cancel");
  cancel_->setToolTip("Stop the running job and drop queued ones (Esc)");
  cancel_->setEnabled(false);
  buttons->addWidget(generate_, 1);
  buttons->addWidget(cancel_);
  fl->addLayout(buttons);
  return footer;
}

void GenerationDock::connect_fields() {
  connect(generate_, &QPushButton::clicked, this, [this] { Q_EMIT generate_requested(); });
  connect(cancel_, &QPushButton::clicked, this, [this] { Q_EMIT cancel_requested(); });
  connect(mode_, &QComboBox::currentTextChanged, this, [this](const QString& m) {
    if (loading_) return;
    preset_->show_chosen("");  // another mode by hand: no longer the preset's setting
    rebuild_params(m.toStdString(), {});
    emit_attention();
  });
  connect(preset_, &PresetPicker::chosen, this, [this](const attention::MethodPreset& p) { apply_method_preset(p); });
  // Picking another registered model brings its own defaults (steps, guidance, shift, size).
  connect(model_, &QComboBox::currentTextChanged, this, [this] {
    if (!loading_) model_changed(true);
  });
  for (auto* spin : findChildren<QAbstractSpinBox*>()) {
    spin->setFocusPolicy(Qt::StrongFocus);
    spin->installEventFilter(this);
  }
  for (auto* combo : findChildren<QComboBox*>()) {
    combo->setFocusPolicy(Qt::StrongFocus);
    combo->installEventFilter(this);
  }
  for (auto* spin : findChildren<QSpinBox*>())
    connect(spin, qOverload<int>(&QSpinBox::valueChanged), this, [this] { revalidate(); });
  connect(prompt_, &QPlainTextEdit::textChanged, this, [this] { revalidate(); });
  connect(generate_, &QPushButton::clicked, this, [this] { revalidate(); });
  connect(warmup_, qOverload<int>(&QSpinBox::valueChanged), this, [this] {
    if (!loading_) emit_attention();
  });
  connect(adapter_, &QCheckBox::toggled, this, [this] {
    if (!loading_) emit_attention();
  });
  connect(regime_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] {
    if (!loading_) emit_attention();
  });
}

void GenerationDock::set_routing(const QString& summary) {
  regime_result_->setText(summary.isEmpty() ? QString() : "Last job: " + summary);
  regime_result_->setVisible(!summary.isEmpty());
}

void GenerationDock::rebuild_params(const std::string& mode, const attention::ParamValues& values) {
  while (params_form_->rowCount() > 0) params_form_->removeRow(0);
  sliders_.clear();
  const attention::PolicyInfo* info = nullptr;
  for (const auto& p : attention::registered_policies())
    if (p.name == mode) info = &p;
  if (!info) {
    mode_summary_->setText(QString("unknown mode '%1'").arg(QString::fromStdString(mode)));
    return;
  }
  mode_summary_->setText(QString::fromStdString(info->summary));
  for (const auto& spec : info->params) {
    auto* row = new QWidget;
    auto* h = new QHBoxLayout(row);
    h->setContentsMargins(0, 0, 0, 0);
    ParamSlider ps{new QSlider(Qt::Horizontal), new QLabel, spec.min, spec.max, spec.integer, spec.default_value};
    if (spec.integer) ps.slider->setRange(static_cast<int>(std::ceil(spec.min)), static_cast<int>(std::floor(spec.max)));
    else ps.slider->setRange(spec.min_inclusive ? 0 : 1, spec.max_inclusive ? kSliderSteps : kSliderSteps - 1);
    const auto it = values.find(spec.name);
    const double v = it != values.end() ? it->second : spec.default_value;
    ps.slider->setValue(ps.to_pos(v));
    // The value as given (a preset's 1/3 stays 1/3), unless the slider could not show it.
    ps.exact = ps.slider->value() == ps.to_pos(v) ? v : ps.to_value(ps.slider->value());
    ps.value->setText(format_param(ps.exact, spec.integer));
    ps.value->setMinimumWidth(48);
    const QString tip = QString("%1\nrange %2 .. %3, default %4")
                            .arg(QString::fromStdString(spec.help))
                            .arg(spec.min)
                            .arg(spec.max)
                            .arg(spec.default_value);
    ps.slider->setToolTip(tip);
    ps.slider->setFocusPolicy(Qt::StrongFocus);
    ps.slider->installEventFilter(this);
    h->addWidget(ps.slider, 1);
    h->addWidget(ps.value);
    auto* label = new QLabel(QString::fromStdString(spec.name));
    label->setToolTip(tip);
    label->setWordWrap(true);
    params_form_->addRow(label, row);
    const std::string name = spec.name;
    sliders_[name] = ps;
    // Apply on release (or keyboard steps), not on every pixel of a drag: a running job takes
    // each change from its next step.
    connect(ps.slider, &QSlider::valueChanged, this, [this, name](int pos) {
      auto& s = sliders_.at(name);
      if (pos != s.to_pos(s.exact)) s.exact = s.to_value(pos);
      s.value->setText(format_param(s.exact, s.integer));
      if (!s.slider->isSliderDown() && !loading_) emit_attention();
    });
    connect(ps.slider, &QSlider::sliderReleased, this, [this] {
      if (!loading_) emit_attention();
    });
  }
}

void GenerationDock::emit_attention() { Q_EMIT attention_changed(request().attention); }

void GenerationDock::apply_method_preset(const attention::MethodPreset& preset) {
  auto r = request();
  pipeline::apply_preset(preset, r);  // what `longshot generate --preset` sets, field for field
  set_request(r);
  preset_->show_chosen(preset.name);
  spdlog::info("studio: preset {} ({}): {}", preset.name, preset.mode, preset.summary);
  emit_attention();
}

pipeline::GenerationRequest GenerationDock::request() const {
  pipeline::GenerationRequest r = hidden_;
  r.prompt = prompt_->toPlainText().toStdString();
  r.negative_prompt = negative_->text().toStdString();
  r.model = model_->currentText().toStdString();
  r.dit_file = dit_file_->text().trimmed().toStdString();
  r.text_encoder_file = text_encoder_file_->text().trimmed().toStdString();
  r.vae_file = vae_file_->text().trimmed().toStdString();
  r.seed = static_cast<uint64_t>(seed_->value());
  r.frames = frames_->value();
  r.width = width_->value();
  r.height = height_->value();
  r.steps = steps_->value();
  r.guidance = guidance_->value();
  r.attention.mode = mode_->currentText().toStdString();
  r.attention.params.clear();
  r.attention.regime = regime_->currentData().toString().toStdString();
  for (const auto& [name, s] : sliders_) {
    const double v = s.slider->value() == s.to_pos(s.exact) ? s.exact : s.to_value(s.slider->value());
    // With a regime, a slider at its default is the regime's to set (as a --param not given).
    if (!r.attention.regime.empty() && v == s.default_value) continue;
    r.attention.params[name] = v;
  }
  r.attention.dense_warmup_steps = warmup_->value();
  // A file chosen elsewhere (a preset) stays; the box switches between it / auto and none.
  if (!adapter_->isChecked()) r.attention.adapter = "none";
  else if (r.attention.adapter == "none") r.attention.adapter = "auto";
  r.attention.block_size = block_size_->value();
  r.inspect_layer = inspect_layer_->value();
  r.inspect_head = inspect_head_->value();
  return r;
}

void GenerationDock::set_request(const pipeline::GenerationRequest& r) {
  loading_ = true;
  preset_->show_chosen("");  // a request from elsewhere; apply_method_preset names its preset after
  hidden_ = r;
  prompt_->setPlainText(QString::fromStdString(r.prompt));
  negative_->setText(QString::fromStdString(r.negative_prompt));
  model_->setCurrentText(QString::fromStdString(r.model));
  dit_file_->setText(qs(r.dit_file));
  text_encoder_file_->setText(qs(r.text_encoder_file));
  vae_file_->setText(qs(r.vae_file));
  seed_->setValue(static_cast<int>(std::min<uint64_t>(r.seed, std::numeric_limits<int>::max())));
  frames_->setValue(r.frames);
  width_->setValue(r.width);
  height_->setValue(r.height);
  steps_->setValue(r.steps);
  guidance_->setValue(r.guidance);
  const int idx = mode_->findText(QString::fromStdString(r.attention.mode));
  mode_->setCurrentIndex(idx >= 0 ? idx : 0);
  rebuild_params(mode_->currentText().toStdString(), r.attention.params);
  int regime = regime_->findData(qs(r.attention.regime));
  if (regime < 0) {  // a regime of the user's own table (a preset's)
    regime_->addItem(qs(r.attention.regime), qs(r.attention.regime));
    regime = regime_->count() - 1;
  }
  regime_->setCurrentIndex(regime);
  warmup_->setValue(r.attention.dense_warmup_steps);
  adapter_->setChecked(r.attention.adapter != "none");
  block_size_->setValue(static_cast<int>(r.attention.block_size));
  inspect_layer_->setValue(r.inspect_layer);
  inspect_head_->setValue(r.inspect_head);
  loading_ = false;
  model_changed(false);
}

void GenerationDock::set_running(bool running) { cancel_->setEnabled(running); }

void GenerationDock::set_progress(int value, int maximum, const QString& text) {
  progress_->setVisible(maximum > 1 || value > 0);  // idle, an empty bar reads as a text field
  progress_->setRange(0, std::max(1, maximum));
  progress_->setValue(std::clamp(value, 0, std::max(1, maximum)));
  progress_text_->setText(text);
}

void GenerationDock::model_changed(bool apply_defaults) {
  const std::string text = model_->currentText().toStdString();
  const std::string name = model::resolve_builtin_name(text);
  if (apply_defaults && model::has_config(name)) {
    // The model's own recipe: steps, guidance, shift, and a size it was made for (Wan: 81 frames
    // at 832x480; the built-in and tiny models: the request's defaults, 32 frames at 64x64).
    const auto c = model::find_config(name);
    const pipeline::GenerationRequest plain;
    loading_ = true;
    steps_->setValue(c.default_steps);
    guidance_->setValue(c.default_guidance);
    hidden_.shift = c.default_shift;
    const bool wan = c.text_dim == 4096;
    frames_->setValue(wan ? 81 : plain.frames);
    width_->setValue(wan ? 832 : plain.width);
    height_->setValue(wan ? 480 : plain.height);
    if (negative_->text().isEmpty() || apply_defaults) negative_->setText(qs(c.default_negative_prompt));
    loading_ = false;
  }
  const bool builtin = is_builtin(text) || name == "tiny";
  files_box_->setVisible(!builtin);
  limits_for_.clear();
  revalidate();
  Q_EMIT model_picked();
}

void GenerationDock::revalidate() {
  if (loading_) return;
  const auto r = request();
  const std::string key = r.model + "|" + r.dit_file + "|" + r.text_encoder_file + "|" + r.vae_file;
  if (key != limits_for_) {
    limits_ = limits_of(r);
    limits_for_ = key;
    QString status;
    for (const auto& m : limits_.missing) status += (status.isEmpty() ? "Missing: " : "; ") + qs(m);
    model_status_->setText(status);
    model_status_->setVisible(!status.isEmpty());
    frames_hint_->setText(qs(ui::frames_rule(limits_)));
    frames_hint_->setToolTip(QString("Frames %1 can use: %2 (1-%3)").arg(qs(limits_.name), qs(ui::frames_rule(limits_))).arg(ui::kMaxFrames));
    size_hint_->setText(limits_.unit_w > 1 ? QString("%1n").arg(limits_.unit_w) : "");
    size_hint_->setToolTip(QString("Width and height: multiples of %1 (2-%2)").arg(limits_.unit_w).arg(ui::kMaxSide));
  }
  problems_ = ui::check_request(r, limits_);
  QString text;
  bool blocking = false;
  for (const auto& p : problems_) {
    if (!p.blocking) continue;  // warnings show beside the model
    blocking = true;
    text += QString("<div style='color:#e66'>%1 %2</div>").arg(qs(p.field), qs(p.message).toHtmlEscaped());
  }
  problems_label_->setText(text);
  problems_label_->setVisible(blocking);
  generate_->setEnabled(!blocking);
  generate_->setToolTip(blocking ? "Fix the request first (see above)" : "Queue a job with these settings (Ctrl+Return)");
}

}  // namespace longshot::studio

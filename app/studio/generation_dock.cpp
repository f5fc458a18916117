#include "app/studio/generation_dock.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
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
#include <cmath>

#include "engine/attention/mask_policy.h"
#include "engine/model/builtin_model.h"
#include "engine/model/dit_config.h"

namespace longshot::studio {

namespace {
constexpr int kSliderSteps = 1000;
QString format_param(double v, bool integer) {
  return integer ? QString::number(static_cast<long long>(std::lround(v))) : QString::number(v, 'g', 4);
}
}  // namespace

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
  auto* form = new QFormLayout;
  outer->addLayout(form);

  prompt_ = new QPlainTextEdit;
  prompt_->setPlaceholderText("a small red circle bounces left to right on a dark blue background");
  prompt_->setFixedHeight(64);
  prompt_->setToolTip("What the video shows. The text encoder of the chosen model reads it.");
  form->addRow("Prompt", prompt_);
  negative_ = new QLineEdit;
  negative_->setToolTip("What the video should not show (classifier-free guidance's unconditional branch).");
  form->addRow("Negative", negative_);

  model_ = new QComboBox;
  model_->setEditable(true);
  model::register_builtin_model();  // longshot-builtin and longshot-builtin-sparse are in the list
  for (const auto& c : model::registered_configs()) {
    model_->addItem(QString::fromStdString(c.name));
    model_->setItemData(model_->count() - 1, QString::fromStdString(c.summary), Qt::ToolTipRole);
  }
  model_->setToolTip("A registered model config or a checkpoint folder (File > Open model folder)");
  form->addRow("Model", model_);

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

  auto spin = [](int lo, int hi, int step, const char* tip) {
    auto* s = new QSpinBox;
    s->setRange(lo, hi);
    s->setSingleStep(step);
    s->setToolTip(tip);
    return s;
  };
  frames_ = spin(1, 1025, 4, "Video frames (Wan VAE: 4k+1; the tiny model: any)");
  form->addRow("Frames", frames_);
  auto* size_row = new QHBoxLayout;
  width_ = spin(16, 1920, 16, "Width in pixels (a multiple of the model's VAE stride × patch)");
  height_ = spin(16, 1088, 16, "Height in pixels (a multiple of the model's VAE stride × patch)");
  size_row->addWidget(width_);
  size_row->addWidget(new QLabel("x"));
  size_row->addWidget(height_);
  form->addRow("Size", size_row);
  steps_ = spin(1, 200, 1, "Denoising steps (flow-matching Euler)");
  form->addRow("Steps", steps_);
  guidance_ = new QDoubleSpinBox;
  guidance_->setRange(0, 30);
  guidance_->setSingleStep(0.5);
  guidance_->setToolTip("Classifier-free guidance scale; 1 disables the unconditional pass");
  form->addRow("Guidance", guidance_);

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
  warmup_ = spin(0, 200, 1, "The first steps run dense attention (the layout of a video settles early)");
  form->addRow("Dense warm-up", warmup_);
  adapter_ = new QCheckBox("use the model's adapter for this mode");
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

  auto* buttons = new QHBoxLayout;
  generate_ = new QPushButton("Generate");
  generate_->setToolTip("Queue a job with these settings (Ctrl+Return)");
  cancel_ = new QPushButton("Cancel");
  cancel_->setToolTip("Stop the running job and drop queued ones (Esc)");
  cancel_->setEnabled(false);
  buttons->addWidget(generate_);
  buttons->addWidget(cancel_);
  outer->addLayout(buttons);
  outer->addStretch(1);

  connect(generate_, &QPushButton::clicked, this, [this] { Q_EMIT generate_requested(); });
  connect(cancel_, &QPushButton::clicked, this, [this] { Q_EMIT cancel_requested(); });
  connect(mode_, &QComboBox::currentTextChanged, this, [this](const QString& m) {
    if (loading_) return;
    rebuild_params(m.toStdString(), {});
    emit_attention();
  });
  // Picking another registered model brings its own sampling defaults (steps, guidance, shift).
  connect(model_, &QComboBox::currentTextChanged, this, [this](const QString& m) {
    if (loading_) return;
    const std::string name = model::resolve_builtin_name(m.toStdString());
    if (!model::has_config(name)) return;  // a checkpoint path: its inferred config decides later
    const auto c = model::find_config(name);
    steps_->setValue(c.default_steps);
    guidance_->setValue(c.default_guidance);
    hidden_.shift = c.default_shift;
  });
  connect(warmup_, qOverload<int>(&QSpinBox::valueChanged), this, [this] {
    if (!loading_) emit_attention();
  });
  connect(adapter_, &QCheckBox::toggled, this, [this] {
    if (!loading_) emit_attention();
  });
  set_request(pipeline::GenerationRequest{});
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
    ParamSlider ps{new QSlider(Qt::Horizontal), new QLabel, spec.min, spec.max, spec.integer};
    if (spec.integer) ps.slider->setRange(static_cast<int>(std::ceil(spec.min)), static_cast<int>(std::floor(spec.max)));
    else ps.slider->setRange(spec.min_inclusive ? 0 : 1, spec.max_inclusive ? kSliderSteps : kSliderSteps - 1);
    const auto it = values.find(spec.name);
    const double v = it != values.end() ? it->second : spec.default_value;
    ps.slider->setValue(ps.to_pos(v));
    ps.value->setText(format_param(ps.to_value(ps.slider->value()), spec.integer));
    ps.value->setMinimumWidth(48);
    const QString tip = QString("%1\nrange %2 .. %3, default %4")
                            .arg(QString::fromStdString(spec.help))
                            .arg(spec.min)
                            .arg(spec.max)
                            .arg(spec.default_value);
    ps.slider->setToolTip(tip);
    h->addWidget(ps.slider, 1);
    h->addWidget(ps.value);
    auto* label = new QLabel(QString::fromStdString(spec.name));
    label->setToolTip(tip);
    params_form_->addRow(label, row);
    const std::string name = spec.name;
    sliders_[name] = ps;
    // Apply on release (or keyboard steps), not on every pixel of a drag: a running job takes
    // each change from its next step.
    connect(ps.slider, &QSlider::valueChanged, this, [this, name](int pos) {
      const auto& s = sliders_.at(name);
      s.value->setText(format_param(s.to_value(pos), s.integer));
      if (!s.slider->isSliderDown() && !loading_) emit_attention();
    });
    connect(ps.slider, &QSlider::sliderReleased, this, [this] {
      if (!loading_) emit_attention();
    });
  }
}

void GenerationDock::emit_attention() { Q_EMIT attention_changed(request().attention); }

pipeline::GenerationRequest GenerationDock::request() const {
  pipeline::GenerationRequest r = hidden_;
  r.prompt = prompt_->toPlainText().toStdString();
  r.negative_prompt = negative_->text().toStdString();
  r.model = model_->currentText().toStdString();
  r.seed = static_cast<uint64_t>(seed_->value());
  r.frames = frames_->value();
  r.width = width_->value();
  r.height = height_->value();
  r.steps = steps_->value();
  r.guidance = guidance_->value();
  r.attention.mode = mode_->currentText().toStdString();
  r.attention.params.clear();
  for (const auto& [name, s] : sliders_) r.attention.params[name] = s.to_value(s.slider->value());
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
  hidden_ = r;
  prompt_->setPlainText(QString::fromStdString(r.prompt));
  negative_->setText(QString::fromStdString(r.negative_prompt));
  model_->setCurrentText(QString::fromStdString(r.model));
  seed_->setValue(static_cast<int>(std::min<uint64_t>(r.seed, std::numeric_limits<int>::max())));
  frames_->setValue(r.frames);
  width_->setValue(r.width);
  height_->setValue(r.height);
  steps_->setValue(r.steps);
  guidance_->setValue(r.guidance);
  const int idx = mode_->findText(QString::fromStdString(r.attention.mode));
  mode_->setCurrentIndex(idx >= 0 ? idx : 0);
  rebuild_params(mode_->currentText().toStdString(), r.attention.params);
  warmup_->setValue(r.attention.dense_warmup_steps);
  adapter_->setChecked(r.attention.adapter != "none");
  block_size_->setValue(static_cast<int>(r.attention.block_size));
  inspect_layer_->setValue(r.inspect_layer);
  inspect_head_->setValue(r.inspect_head);
  loading_ = false;
}

void GenerationDock::set_running(bool running) { cancel_->setEnabled(running); }

}  // namespace longshot::studio

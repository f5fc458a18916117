#include "app/studio/preset_picker.h"

#include <QComboBox>
#include <QLabel>
#include <QVBoxLayout>

#include "ui/method_presets.h"

namespace longshot::studio {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }
constexpr const char* kNone = "(none)";
}  // namespace

PresetPicker::PresetPicker(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  combo_ = new QComboBox;
  combo_->setObjectName("preset_combo");
  combo_->addItem(kNone);
  info_ = new QLabel;
  info_->setWordWrap(true);
  info_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  info_->setStyleSheet("color: gray;");
  layout->addWidget(combo_);
  layout->addWidget(info_);
  try {
    presets_ = attention::shipped_presets();
  } catch (const std::exception& e) {
    // A broken preset file: the menu says so and the rest of the dock works.
    spdlog::warn("studio: presets not loaded: {}", e.what());
    info_->setText(QString("Presets not loaded: %1").arg(qs(e.what())));
    combo_->setEnabled(false);
  }
  for (const auto& p : presets_) {
    combo_->addItem(qs(p.name));
    combo_->setItemData(combo_->count() - 1, qs(p.summary + "\n\nSource: " + p.source), Qt::ToolTipRole);
  }
  if (presets_.empty() && combo_->isEnabled()) {
    info_->setText("No presets found (assets/presets/).");
    combo_->setEnabled(false);
  }
  combo_->setToolTip("A paper's published setting: mode, parameters, dense schedule, block, sampler, steps, "
                     "guidance and shift, as `longshot generate --preset NAME` sets them");
  connect(combo_, &QComboBox::currentIndexChanged, this, [this](int index) {
    describe(index);
    if (!quiet_ && index > 0) Q_EMIT chosen(presets_[static_cast<size_t>(index - 1)]);
  });
  describe(0);
}

void PresetPicker::describe(int index) {
  if (index <= 0 || static_cast<size_t>(index) > presets_.size()) {
    if (combo_->isEnabled()) info_->clear();
    info_->setVisible(!info_->text().isEmpty());
    return;
  }
  const auto& p = presets_[static_cast<size_t>(index - 1)];
  info_->setText(QString("<b>%1</b><br>%2<br><i>Source:</i> %3")
                     .arg(qs(p.summary).toHtmlEscaped(),
                          qs(ui::preset_settings_text(p)).toHtmlEscaped().replace("\n", "<br>"),
                          qs(p.source).toHtmlEscaped()));
  info_->setVisible(true);
}

void PresetPicker::show_chosen(const std::string& name) {
  quiet_ = true;
  const int i = name.empty() ? 0 : combo_->findText(qs(name));
  combo_->setCurrentIndex(i > 0 ? i : 0);
  quiet_ = false;
}

std::string PresetPicker::current() const {
  return combo_->currentIndex() > 0 ? combo_->currentText().toStdString() : std::string();
}

}  // namespace longshot::studio

// The dock's preset menu: the shipped attention-method presets (assets/presets/*.json, read by
// the engine's attention::shipped_presets, the parser `longshot generate --preset` uses), each
// with its summary and source as tooltip, and under the menu a read-out of the chosen one: what it
// sets and the paper's script it comes from. Choosing one emits `chosen`; the dock applies it.
#pragma once
#include <QWidget>
#include <vector>

#include "engine/attention/presets.h"

class QComboBox;
class QLabel;

namespace longshot::studio {

class PresetPicker : public QWidget {
  Q_OBJECT

 public:
  explicit PresetPicker(QWidget* parent = nullptr);
  const std::vector<attention::MethodPreset>& presets() const { return presets_; }
  // Shows `name` as chosen without emitting (a request loaded elsewhere); "" = none.
  void show_chosen(const std::string& name);
  // The name shown as chosen ("" = none).
  std::string current() const;
  QComboBox* combo() const { return combo_; }

 Q_SIGNALS:
  void chosen(const longshot::attention::MethodPreset& preset);

 private:
  void describe(int index);
  std::vector<attention::MethodPreset> presets_;
  QComboBox* combo_;
  QLabel* info_;
  bool quiet_ = false;
};

}  // namespace longshot::studio

// Compare ▸ Calibration: a calibration table's BO trace (`longshot calibrate`, issue 25) as error
// against sparsity per regime: every trial a dot, each regime's Pareto front a line, the chosen
// trial a ring, the mode's defaults a cross, the sparsity floor a dashed line. The shell reads the
// file (calibrate::read_trace) and hands the trace in; this tab only draws it.
#pragma once
#include <memory>
#include <set>
#include <string>

#include "ui/panels/panel.h"

namespace longshot::calibrate {
struct TableTrace;
struct HorizonTrace;
}  // namespace longshot::calibrate

namespace longshot::ui {

class CalibrationTab {
 public:
  // A new table (null: none, with `error` saying why when loading failed).
  void set_trace(std::shared_ptr<const calibrate::TableTrace> trace, std::string error);
  // Draws the tab; returns whether a trace drew.
  bool draw(PanelContext& ctx);

 private:
  void draw_plot(const calibrate::HorizonTrace& h, float height);

  std::shared_ptr<const calibrate::TableTrace> trace_;
  std::string error_;
  int horizon_ = 0;
  std::set<std::string> hidden_;  // regimes switched off in the legend
  // Refused trials drawn (and in the ranges): off zooms on the trials that met the floor, where the
  // front, the choices and the defaults crowd together.
  bool show_refused_ = true;
};

}  // namespace longshot::ui

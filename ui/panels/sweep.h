// Compare ▸ Sweep: one parameter of a mode over a range, each point a job of the dock's request
// and seed against a dense reference of the same seed, plotted as quality (PSNR vs dense) over
// time per step, with a table; a click on a point opens A vs B with its frames. PSNR/SSIM of a
// point are computed once per (reference, job) pair of finished clips, not every frame.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/attention/mask_policy.h"
#include "ui/panels/panel.h"

namespace longshot::ui {

struct SweepJobs {
  uint64_t reference = 0;      // the dense run
  std::vector<uint64_t> jobs;  // one per value, in value order
  std::string mode, param;
  std::vector<double> values;
};

class SweepTab {
 public:
  // A new sweep: its mode, parameter and range show in the controls on the next draw.
  void set_jobs(SweepJobs jobs);
  // Draws the tab; returns whether a point drew. A click on a point sets `pick_a` (the
  // reference) and `pick_b` (the point's job).
  bool draw(PanelContext& ctx, uint64_t& pick_a, uint64_t& pick_b);

 private:
  struct Point {
    double value = 0, step_ms = 0, sparsity = 0, psnr = 0, ssim = 0;
    uint64_t job = 0;
    bool done = false;
  };
  struct Quality {
    PayloadKey reference, run;  // the clips it was measured on
    double psnr = 0, ssim = 0;
  };
  const attention::PolicyInfo* sync_controls(ViewSettings& v);
  void draw_controls(PanelContext& ctx, const attention::PolicyInfo* info);
  std::vector<Point> gather(const StudioState& s);
  int draw_plot(const std::vector<Point>& points, double ref_ms, size_t done);
  int draw_table(const StudioState& s, const std::vector<Point>& points);

  SweepJobs sweep_;
  bool sync_ = false;       // the next draw shows sweep_'s mode, parameter and range
  int param_ = 0, points_ = 5;
  float from_ = 0.1f, to_ = 0.5f;
  std::string param_mode_;  // the mode from_ / to_ were set for
  std::map<uint64_t, Quality> quality_;  // by job id
};

}  // namespace longshot::ui

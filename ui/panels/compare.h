// Compare panel: three tabs. "A vs B" shows two runs of one recipe under two attention settings
// side by side with their difference, per-frame PSNR / SSIM and the speed-up; "Sweep" (SweepTab)
// plots a parameter sweep; "Calibration" (CalibrationTab) a calibration table's BO trace. The pair is the one the shell set (set_jobs) or, until then, the last
// two finished runs of one recipe. PSNR / SSIM are computed once per pair of clips (job, step).
#pragma once
#include <vector>

#include "ui/gl.h"
#include "ui/panels/calibration.h"
#include "ui/panels/panel.h"
#include "ui/panels/sweep.h"

namespace longshot::ui {

class ComparePanel : public Panel {
 public:
  const char* name() const override { return "Compare"; }
  bool draw(PanelContext& ctx) override;
  // The two jobs of an A/B comparison: the A vs B tab shows itself on the next draw.
  void set_jobs(uint64_t job_a, uint64_t job_b);
  void set_sweep(SweepJobs jobs);
  // A calibration table's trace (null: none, `error` saying why); `show`: select its tab.
  void set_calibration(std::shared_ptr<const calibrate::TableTrace> trace, std::string error, bool show);

 private:
  bool draw_ab(PanelContext& ctx);
  void draw_controls(PanelContext& ctx);
  // The pair to show, or false with a hint drawn saying why there is none.
  bool pick_pair(const StudioState& s, const RunRecord*& a, const RunRecord*& b);
  void draw_table(const RunRecord& a, const RunRecord& b);
  void draw_frames(const Video& va, const Video& vb, int frames);

  uint64_t job_a_ = 0, job_b_ = 0;
  bool show_ab_ = false, show_sweep_ = false, show_calibration_ = false;  // select that tab on the next draw
  gl::Texture a_tex_, b_tex_, diff_tex_;
  PayloadKey measured_a_, measured_b_;  // the clips psnr_ / ssim_ were computed on
  std::vector<float> psnr_, ssim_;
  int frame_ = 0, frame_drawn_ = -1;
  SweepTab sweep_;
  CalibrationTab calibration_;
};

}  // namespace longshot::ui

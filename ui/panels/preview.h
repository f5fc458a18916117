// Preview panel: the newest run's frames as they arrive (x0 previews, then the final clip), with
// play / pause / scrub / loop, and a click that picks the inspected query token. A new final clip
// plays twice on its own, then waits (no redraws while idle).
#pragma once
#include <imgui.h>

#include "ui/gl.h"
#include "ui/panels/panel.h"
#include "ui/playback.h"

namespace longshot::ui {

class PreviewPanel : public Panel {
 public:
  const char* name() const override { return "Preview"; }
  bool draw(PanelContext& ctx) override;
  // A clip is playing: the shell schedules the next frame.
  bool animating() const { return playback_.playing(); }

 private:
  void draw_query_marker(const RunRecord& r, int frames, ImVec2 p0, ImVec2 size);

  Playback playback_;
  gl::Texture texture_;
  PayloadKey uploaded_;          // the frames in texture_ ...
  int uploaded_frame_ = -1;      // ... and which of them
  uint64_t autoplayed_job_ = 0;  // the job whose final clip already started playing on its own
  int autoplay_wraps_ = -1;      // wraps of that autoplay so far (-1: not autoplaying)
  int last_frame_ = 0;
};

}  // namespace longshot::ui

#include "ui/playback.h"

#include <algorithm>
#include <cmath>

namespace longshot::ui {

void Playback::set_frame_count(int frames) {
  frames_ = std::max(0, frames);
  frame_ = std::clamp(frame_, 0, std::max(0, frames_ - 1));
  if (frames_ <= 1) playing_ = false;
}

void Playback::scrub(int frame) {
  frame_ = std::clamp(frame, 0, std::max(0, frames_ - 1));
  phase_ = 0;
}

void Playback::advance(double dt_seconds, double fps) {
  if (!playing_ || frames_ <= 1 || !(dt_seconds > 0) || !(fps > 0)) return;
  phase_ += dt_seconds * fps;
  const double whole = std::floor(phase_);
  phase_ -= whole;
  long next = frame_ + static_cast<long>(whole);
  if (next >= frames_) {
    if (loop_) {
      next %= frames_;
    } else {
      next = frames_ - 1;
      playing_ = false;
      phase_ = 0;
    }
  }
  frame_ = static_cast<int>(next);
}

}  // namespace longshot::ui

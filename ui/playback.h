// The Preview panel's clock: play / pause / scrub / loop over a clip whose frame count may grow
// while frames arrive. Pure: no Qt, no GL; time is passed in.
#pragma once

namespace longshot::ui {

class Playback {
 public:
  // Frames available now; the current frame is clamped into range.
  void set_frame_count(int frames);
  int frame_count() const { return frames_; }
  void play() { playing_ = frames_ > 1; }
  void pause() { playing_ = false; }
  void toggle() { playing_ ? pause() : play(); }
  bool playing() const { return playing_; }
  void set_loop(bool loop) { loop_ = loop; }
  bool loop() const { return loop_; }
  // Jumps to `frame` (clamped) and keeps the play state.
  void scrub(int frame);
  // Moves the clock by dt seconds at `fps`; without loop, stops on the last frame.
  void advance(double dt_seconds, double fps);
  int frame() const { return frame_; }

 private:
  int frames_ = 0;
  int frame_ = 0;
  double phase_ = 0;  // fraction of the current frame already shown
  bool playing_ = false;
  bool loop_ = true;
};

}  // namespace longshot::ui

// Video quality metrics that know the procedural world's ground truth: prompt adherence (find the
// named objects by colour), temporal health at long horizons (frozen / looping videos) and
// fidelity between two videos (PSNR, SSIM). Formulas: docs/builtin-model.md. Eval room: reads
// frames and captions; knows nothing of the model or the attention modes that made the frames.
#pragma once
#include <string>
#include <vector>

#include "engine/data/world.h"
#include "engine/io/video.h"

namespace longshot::eval {

// Pixels of one named object colour in one frame.
struct Detection {
  int pixels = 0;
  double x = 0.0, y = 0.0;  // centroid (pixels)
  bool touches_border = false;
};
// A pixel belongs to object colour c when c is its nearest object colour and lies within
// kColorRadius (RGB Euclidean, 0–255 scale); backgrounds are all far darker than any object colour.
constexpr double kColorRadius = 100.0;
Detection detect(const Video& video, int frame, int object_color);

struct Adherence {
  double accuracy = 0.0;  // mean of the three rates below, in [0, 1]
  double presence = 0.0;  // share of (frame, object) where the object's colour covers enough pixels
  double size = 0.0;      // share of (frame, object) where its size class matches the caption
  double motion = 0.0;    // share of (window, object) whose motion matches the caption's phrase
  int checks = 0;
};
// Throws ParameterError("prompt") when the prompt names no object of the caption grammar.
Adherence prompt_adherence(const Video& video, const std::string& prompt);
Adherence prompt_adherence(const Video& video, const data::CaptionInfo& caption);

struct TemporalHealth {
  double score = 0.0;             // energy_retention × (1 − loop), in [0, 1]
  double energy_retention = 0.0;  // late / early motion energy, capped at 1
  double loop = 0.0;              // strength of the best short-lag repeat in the late frames
  int loop_lag = 0;               // that lag, frames
  std::vector<double> energy;     // per frame pair: mean |f(t+1) − f(t)| in [0, 1]
};
// `training_frames`: the length the model was trained on; frames past it are the "late" segment
// (the second half when the video is not longer). Throws ParameterError for < 4 frames.
TemporalHealth temporal_health(const Video& video, int training_frames);

// Between two videos of equal shape (ShapeError otherwise). PSNR over all frames on the 0–255
// scale, capped at 100 dB for identical videos; SSIM with an 11×11 Gaussian window (σ = 1.5),
// averaged over channels, positions and frames.
double psnr(const Video& a, const Video& b);
double ssim(const Video& a, const Video& b);

}  // namespace longshot::eval

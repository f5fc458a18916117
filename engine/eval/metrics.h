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

// Loop / freeze score after LVSA's VQeval `loop_quality` (vqeval/evaluators/loop_quality.py:41-62,
// 87-250), on a feature that needs no network: each frame area-pooled by `pool` pixels (1 = raw
// pixels), the video's mean frame subtracted, so cosine similarity measures content, not
// brightness. With S the frames' cosine-similarity matrix and n frames:
//  - cycle: band means m_k = mean_i S(i, i+k), k = 1..n/2; the highest local maximum over
//    k >= max(3, n/10) (VQeval: the plain maximum, which any decaying band has at the start) as a
//    z-score over all m_k, /3, clamped to [0, 1]; at least 0.8 (0.5) when the mean off-diagonal
//    similarity exceeds 0.95 (0.90): a near-static video.
//  - duplicate: 3 × the share of pairs at gap >= max(3, n/10) with S > 0.97, clamped.
//  - periodicity: VQeval's optical-flow FFT with the mean |frame difference| as the motion signal:
//    the dominant non-DC power share p, (p − 0.3)/0.4 clamped.
//  - autocorrelation: d_t = ‖f_{t+1} − f_t‖ centred; its autocorrelation at lags >= 3 (VQeval's
//    index 2 on), the peak clamped to [0, 1]; 0.8 when nothing changes, 0 when the change is
//    perfectly steady (VQeval gives both 0.8).
//  severity = 0.35·cycle + 0.25·duplicate + 0.20·periodicity + 0.20·autocorrelation, and
//  score = 1 − severity (VQeval's weights; it reports 100 × score).
struct LoopScore {
  double score = 1.0, severity = 0.0;
  double cycle = 0.0, duplicate = 0.0, periodicity = 0.0, autocorrelation = 0.0;
  int cycle_period = 0;    // the peak band's offset, frames
  int longest_repeat = 0;  // longest run of i with S(i, i + p) > 0.97 for one p
};
// Throws ParameterError for fewer than 6 frames or pool < 1.
LoopScore loop_score(const Video& video, int pool = 8);

// Between two videos of equal shape (ShapeError otherwise). PSNR over all frames on the 0–255
// scale, capped at 100 dB for identical videos; SSIM with an 11×11 Gaussian window (σ = 1.5),
// averaged over channels, positions and frames.
double psnr(const Video& a, const Video& b);
double ssim(const Video& a, const Video& b);

}  // namespace longshot::eval

// The Compare panel's numbers: per-frame PSNR and SSIM between two videos of one seed under two modes, and
// an amplified absolute-difference image. Pure: no Qt, no GL.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/io/video.h"

namespace longshot::ui {

// PSNR in dB of two 8-bit buffers of n bytes (peak 255); +infinity when identical.
double psnr(const uint8_t* a, const uint8_t* b, size_t n);
// One PSNR per frame over the frames both videos have. Throws ShapeError naming the sizes when
// the frames differ in height or width.
std::vector<double> per_frame_psnr(const Video& a, const Video& b);
// Mean SSIM (Wang et al. 2004, C1 = (0.01·255)², C2 = (0.03·255)²) of two frames' luma over
// non-overlapping 8×8 windows (the frame's edge remainder ignored; frames under 8 px a side: one
// window). 1 = identical. Throws like per_frame_psnr.
double ssim(const Video& a, const Video& b, int frame);
std::vector<double> per_frame_ssim(const Video& a, const Video& b);
// `points` values spread evenly over [from, to] (ends included; one point: `from`), rounded to
// integers when `integer`, duplicates dropped. Throws ParameterError("points") for points < 1.
std::vector<double> sweep_values(double from, double to, int points, bool integer = false);
// |a − b| × gain per channel, clamped to 255, as RGB bytes of one frame. Throws like above, and
// ParameterError("frame", ...) for a frame outside both videos.
std::vector<uint8_t> difference_image(const Video& a, const Video& b, int frame, float gain = 4.f);

}  // namespace longshot::ui

// The Compare panel's numbers: per-frame PSNR between two videos of one seed under two modes, and
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
// |a − b| × gain per channel, clamped to 255, as RGB bytes of one frame. Throws like above, and
// ParameterError("frame", ...) for a frame outside both videos.
std::vector<uint8_t> difference_image(const Video& a, const Video& b, int frame, float gain = 4.f);

}  // namespace longshot::ui

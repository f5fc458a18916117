#include "ui/compare.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "engine/common/error.h"

namespace longshot::ui {

namespace {
void check_same_size(const Video& a, const Video& b) {
  if (a.height != b.height || a.width != b.width)
    throw ShapeError("compare: frames of " + std::to_string(a.width) + "x" + std::to_string(a.height) + " and " +
                     std::to_string(b.width) + "x" + std::to_string(b.height) + " differ in size");
  if (a.rgb.size() < a.frame_bytes() * a.frames || b.rgb.size() < b.frame_bytes() * b.frames)
    throw ShapeError("compare: a video holds fewer bytes than frames × height × width × 3");
}
}  // namespace

double psnr(const uint8_t* a, const uint8_t* b, size_t n) {
  if (n == 0) return std::numeric_limits<double>::infinity();
  double se = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    se += d * d;
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 * n / se);
}

std::vector<double> per_frame_psnr(const Video& a, const Video& b) {
  check_same_size(a, b);
  std::vector<double> out;
  for (int f = 0; f < std::min(a.frames, b.frames); ++f) out.push_back(psnr(a.frame(f), b.frame(f), a.frame_bytes()));
  return out;
}

double ssim(const Video& a, const Video& b, int frame) {
  check_same_size(a, b);
  if (frame < 0 || frame >= std::min(a.frames, b.frames))
    throw ParameterError("frame", std::to_string(frame) + " is outside the " +
                                      std::to_string(std::min(a.frames, b.frames)) + " frames both videos have");
  const int w = a.width, h = a.height;
  auto luma = [](const uint8_t* p) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; };
  const uint8_t* pa = a.frame(frame);
  const uint8_t* pb = b.frame(frame);
  const int win_w = std::min(8, w), win_h = std::min(8, h);
  constexpr double c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
  double total = 0;
  int windows = 0;
  for (int y0 = 0; y0 + win_h <= h; y0 += win_h)
    for (int x0 = 0; x0 + win_w <= w; x0 += win_w) {
      double ma = 0, mb = 0, va = 0, vb = 0, cov = 0;
      const int n = win_w * win_h;
      for (int y = y0; y < y0 + win_h; ++y)
        for (int x = x0; x < x0 + win_w; ++x) {
          const size_t i = (static_cast<size_t>(y) * w + x) * 3;
          ma += luma(pa + i);
          mb += luma(pb + i);
        }
      ma /= n;
      mb /= n;
      for (int y = y0; y < y0 + win_h; ++y)
        for (int x = x0; x < x0 + win_w; ++x) {
          const size_t i = (static_cast<size_t>(y) * w + x) * 3;
          const double da = luma(pa + i) - ma, db = luma(pb + i) - mb;
          va += da * da;
          vb += db * db;
          cov += da * db;
        }
      va /= n - (n > 1 ? 1 : 0);
      vb /= n - (n > 1 ? 1 : 0);
      cov /= n - (n > 1 ? 1 : 0);
      total += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      ++windows;
    }
  return windows ? total / windows : 1.0;
}

std::vector<double> per_frame_ssim(const Video& a, const Video& b) {
  check_same_size(a, b);
  std::vector<double> out;
  for (int f = 0; f < std::min(a.frames, b.frames); ++f) out.push_back(ssim(a, b, f));
  return out;
}

std::vector<double> sweep_values(double from, double to, int points, bool integer) {
  if (points < 1) throw ParameterError("points", "a sweep needs at least one point, got " + std::to_string(points));
  std::vector<double> out;
  for (int i = 0; i < points; ++i) {
    double v = points == 1 ? from : from + (to - from) * i / (points - 1);
    if (integer) v = std::round(v);
    if (out.empty() || std::abs(out.back() - v) > 1e-12) out.push_back(v);
  }
  return out;
}

std::vector<uint8_t> difference_image(const Video& a, const Video& b, int frame, float gain) {
  check_same_size(a, b);
  if (frame < 0 || frame >= std::min(a.frames, b.frames))
    throw ParameterError("frame", std::to_string(frame) + " is outside the " +
                                      std::to_string(std::min(a.frames, b.frames)) + " frames both videos have");
  std::vector<uint8_t> out(a.frame_bytes());
  const uint8_t* pa = a.frame(frame);
  const uint8_t* pb = b.frame(frame);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<uint8_t>(std::min(255.f, std::abs(static_cast<float>(pa[i]) - pb[i]) * gain));
  return out;
}

}  // namespace longshot::ui

// Metrics over 8-bit RGB videos. Adherence works on colour masks and their centroids; temporal
// health on frame differences; PSNR / SSIM on LibTorch tensors (SSIM's window is a convolution).
//
// Sections: [detect] · [adherence] · [temporal health] · [fidelity]
#include "engine/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/common/error.h"

namespace longshot::eval {

namespace {

double color_distance2(const uint8_t* p, const data::Rgb& c) {
  const double dr = p[0] - c.r, dg = p[1] - c.g, db = p[2] - c.b;
  return dr * dr + dg * dg + db * db;
}

void check_video(const Video& video, const char* name) {
  if (video.frames <= 0 || video.width <= 0 || video.height <= 0 ||
      video.rgb.size() != static_cast<size_t>(video.frames) * video.frame_bytes()) {
    throw ShapeError(std::string(name) + ": empty video or rgb buffer not frames*height*width*3 bytes");
  }
}

}  // namespace

// [detect] --------------------------------------------------------------------------------------

Detection detect(const Video& video, int frame, int object_color) {
  const auto& palette = data::object_colors();
  if (object_color < 0 || object_color >= static_cast<int>(palette.size())) {
    throw ParameterError("object_color", "index out of range");
  }
  if (frame < 0 || frame >= video.frames) throw ParameterError("frame", "index out of range");
  Detection d;
  const uint8_t* px = video.frame(frame);
  double sx = 0.0, sy = 0.0;
  const double radius2 = kColorRadius * kColorRadius;
  for (int y = 0; y < video.height; ++y) {
    for (int x = 0; x < video.width; ++x) {
      const uint8_t* p = px + (static_cast<size_t>(y) * video.width + x) * 3;
      const double mine = color_distance2(p, palette[object_color].rgb);
      if (mine > radius2) continue;
      bool nearest = true;
      for (size_t c = 0; c < palette.size() && nearest; ++c) {
        if (static_cast<int>(c) != object_color && color_distance2(p, palette[c].rgb) < mine) nearest = false;
      }
      if (!nearest) continue;
      ++d.pixels;
      sx += x + 0.5;
      sy += y + 0.5;
      if (x == 0 || y == 0 || x == video.width - 1 || y == video.height - 1) d.touches_border = true;
    }
  }
  if (d.pixels > 0) {
    d.x = sx / d.pixels;
    d.y = sy / d.pixels;
  }
  return d;
}

// [adherence] -----------------------------------------------------------------------------------
// Per object of the caption: presence and size every frame; motion over windows of 16 frames
// (32 for "grows and shrinks", at least half its period), stride 8 — long enough that even the
// slow top of a fall moves several pixels.

namespace {

struct Track {
  std::vector<Detection> det;
  std::vector<bool> usable;  // present and (in a panning scene) not split across the frame edge
  std::vector<double> radius;  // equivalent half-extent from the pixel count
};

bool motion_window_ok(const Track& tr, const data::CaptionObject& obj, data::Pan pan, int t0, int t1, int width,
                      double unit, bool first) {
  double sx = 0.0, sy = 0.0, net_x = 0.0, net_y = 0.0;
  int pairs = 0, usable_pairs = 0;
  for (int t = t0; t < t1; ++t) {
    ++pairs;
    if (!tr.usable[t] || !tr.usable[t + 1]) continue;
    ++usable_pairs;
    double dx = tr.det[t + 1].x - tr.det[t].x;
    if (pan != data::Pan::None) dx -= width * std::round(dx / width);  // wrap-around
    const double dy = tr.det[t + 1].y - tr.det[t].y;
    sx += std::abs(dx);
    sy += std::abs(dy);
    net_x += dx;
    net_y += dy;
  }
  if (usable_pairs * 2 < pairs) return false;  // object missing for most of the window
  // Path lengths are rescaled to the full window so a partly hidden object is judged alike.
  const double fill = static_cast<double>(pairs) / usable_pairs;
  sx *= fill;
  sy *= fill;
  const double min_move = 0.05 * unit * pairs / 16.0;
  using data::Motion;
  switch (obj.motion) {
    case Motion::BounceRight:
    case Motion::BounceLeft: {
      if (!(sx >= min_move && sx >= 2.0 * sy)) return false;
      if (first) return obj.motion == Motion::BounceRight ? net_x > 0.0 : net_x < 0.0;
      return true;
    }
    case Motion::BounceVertical:
    case Motion::Fall:
      return sy >= min_move && sy >= 2.0 * sx;
    case Motion::OrbitClockwise:
    case Motion::OrbitCounterclockwise: {
      if (sx + sy < min_move) return false;
      // Turning direction from successive 4-frame displacements; with y down, a positive cross
      // product turns clockwise on screen.
      double turn = 0.0;
      for (int t = t0; t + 8 <= t1; t += 4) {
        if (!tr.usable[t] || !tr.usable[t + 4] || !tr.usable[t + 8]) continue;
        const double ax = tr.det[t + 4].x - tr.det[t].x, ay = tr.det[t + 4].y - tr.det[t].y;
        const double bx = tr.det[t + 8].x - tr.det[t + 4].x, by = tr.det[t + 8].y - tr.det[t + 4].y;
        turn += ax * by - ay * bx;
      }
      return obj.motion == Motion::OrbitClockwise ? turn > 0.0 : turn < 0.0;
    }
    case Motion::Pulse: {
      double rmin = 1e30, rmax = 0.0;
      for (int t = t0; t <= t1; ++t) {
        if (!tr.usable[t]) continue;
        rmin = std::min(rmin, tr.radius[t]);
        rmax = std::max(rmax, tr.radius[t]);
      }
      const double base = data::size_fraction(obj.size) * unit;
      return rmax - rmin >= 0.15 * base && std::hypot(net_x, net_y) <= 0.1 * unit;
    }
    case Motion::Still:
      if (pan == data::Pan::None) return sx + sy < min_move;
      // The camera pans left → the scene slides right on screen.
      return sx >= min_move && sx >= 2.0 * sy && (pan == data::Pan::Left ? net_x > 0.0 : net_x < 0.0);
  }
  return false;
}

}  // namespace

Adherence prompt_adherence(const Video& video, const std::string& prompt) {
  const auto info = data::parse_caption(prompt);
  if (!info) {
    throw ParameterError("prompt", "names no object of the caption grammar (e.g. 'a small red circle bounces left to right')");
  }
  return prompt_adherence(video, *info);
}

Adherence prompt_adherence(const Video& video, const data::CaptionInfo& caption) {
  check_video(video, "video");
  if (caption.objects.empty()) throw ParameterError("prompt", "names no object");
  const double unit = std::min(video.width, video.height);
  const int T = video.frames;
  int presence_ok = 0, presence_n = 0, size_ok = 0, size_n = 0, motion_ok = 0, motion_n = 0;
  for (const data::CaptionObject& obj : caption.objects) {
    const double base = data::size_fraction(obj.size) * unit;
    const double factor = data::shape_area_factor(obj.shape);
    const double expected_area = factor * base * base;
    Track tr;
    tr.det.resize(T);
    tr.usable.resize(T);
    tr.radius.resize(T);
    for (int t = 0; t < T; ++t) {
      tr.det[t] = detect(video, t, obj.color);
      const bool present = tr.det[t].pixels >= std::max(4.0, 0.2 * expected_area);
      tr.usable[t] = present && !(caption.pan != data::Pan::None && tr.det[t].touches_border);
      tr.radius[t] = std::sqrt(tr.det[t].pixels / factor);
      ++presence_n;
      presence_ok += present;
    }
    // Size: the equivalent half-extent within the caption's class (neighbouring classes differ by
    // ≥ 1.48×). A pulsing object is judged by its median size, its swing by the motion check.
    std::vector<double> usable_r;
    for (int t = 0; t < T; ++t) {
      if (tr.usable[t]) usable_r.push_back(tr.radius[t]);
    }
    double median_r = 0.0;
    if (!usable_r.empty()) {
      std::nth_element(usable_r.begin(), usable_r.begin() + usable_r.size() / 2, usable_r.end());
      median_r = usable_r[usable_r.size() / 2];
    }
    for (int t = 0; t < T; ++t) {
      ++size_n;
      if (!tr.det[t].pixels) continue;
      if (caption.pan != data::Pan::None && tr.det[t].touches_border) {
        size_ok += 1;  // split across the frame edge: its visible area says nothing about its size
        continue;
      }
      const double r = obj.motion == data::Motion::Pulse ? median_r : tr.radius[t];
      const double ratio = r / base;
      size_ok += (ratio >= 0.78 && ratio <= 1.25);
    }
    // Motion windows.
    const int window = obj.motion == data::Motion::Pulse ? 32 : 16;
    const int w = std::min(window, T - 1);
    if (w < 4) continue;  // too short to judge motion
    for (int t0 = 0; t0 + w <= T - 1; t0 += 8) {
      ++motion_n;
      motion_ok += motion_window_ok(tr, obj, caption.pan, t0, t0 + w, video.width, unit, t0 == 0);
    }
  }
  Adherence a;
  a.presence = presence_n ? static_cast<double>(presence_ok) / presence_n : 0.0;
  a.size = size_n ? static_cast<double>(size_ok) / size_n : 0.0;
  a.motion = motion_n ? static_cast<double>(motion_ok) / motion_n : 0.0;
  const int parts = motion_n ? 3 : 2;
  a.accuracy = (a.presence + a.size + (motion_n ? a.motion : 0.0)) / parts;
  a.checks = presence_n + size_n + motion_n;
  return a;
}

// [temporal health] -----------------------------------------------------------------------------

namespace {

// Mean absolute difference of two frames on the [0, 1] scale.
double frame_mad(const Video& v, int a, int b) {
  const uint8_t* pa = v.frame(a);
  const uint8_t* pb = v.frame(b);
  const size_t n = v.frame_bytes();
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<uint64_t>(std::abs(static_cast<int>(pa[i]) - static_cast<int>(pb[i])));
  return static_cast<double>(sum) / (255.0 * n);
}

}  // namespace

TemporalHealth temporal_health(const Video& video, int training_frames) {
  check_video(video, "video");
  if (video.frames < 4) throw ParameterError("frames", "temporal health needs at least 4 frames");
  if (training_frames < 2) throw ParameterError("training_frames", "must be at least 2");
  const int T = video.frames;
  TemporalHealth h;
  for (int t = 0; t + 1 < T; ++t) h.energy.push_back(frame_mad(video, t, t + 1));
  // Early = the training window, late = what follows; a video no longer than the training window
  // is split in halves.
  const int split = T > training_frames ? training_frames : T / 2;
  auto mean_energy = [&](int from, int to) {  // pairs (t, t+1) with from <= t < to
    double s = 0.0;
    for (int t = from; t < to; ++t) s += h.energy[t];
    return to > from ? s / (to - from) : 0.0;
  };
  const double early = mean_energy(0, split - 1);
  const double late = mean_energy(split, T - 1);
  constexpr double kStill = 1e-4;  // below this a frame pair is numerically unchanged
  h.energy_retention = early < kStill ? 0.0 : std::min(1.0, late / early);

  // Loop: D(p) = mean over late frames t of MAD(f_t, f_{t−p}). Smooth non-repeating motion has
  // D(p) >= D(1) for every lag p up to the training length (the world's own periods are longer);
  // a video that replays itself with period p has D(p) << D(1).
  const int max_lag = std::min(training_frames, split);
  auto lag_distance = [&](int p) {
    double s = 0.0;
    int n = 0;
    for (int t = split; t < T; ++t) {
      if (t - p < 0) continue;
      s += frame_mad(video, t, t - p);
      ++n;
    }
    return n ? s / n : 0.0;
  };
  const double d1 = lag_distance(1);
  if (d1 < kStill) {
    h.loop = 1.0;  // nothing moves: a loop of period one
    h.loop_lag = 1;
  } else {
    for (int p = 2; p <= max_lag; ++p) {
      const double strength = std::clamp(1.0 - lag_distance(p) / d1, 0.0, 1.0);
      if (strength > h.loop) {
        h.loop = strength;
        h.loop_lag = p;
      }
    }
  }
  h.score = h.energy_retention * (1.0 - h.loop);
  return h;
}

// [fidelity] ------------------------------------------------------------------------------------

namespace {

void check_pair(const Video& a, const Video& b) {
  check_video(a, "video a");
  check_video(b, "video b");
  if (a.frames != b.frames || a.width != b.width || a.height != b.height) {
    throw ShapeError("videos differ in shape: " + std::to_string(a.frames) + "x" + std::to_string(a.height) + "x" +
                     std::to_string(a.width) + " vs " + std::to_string(b.frames) + "x" + std::to_string(b.height) + "x" +
                     std::to_string(b.width));
  }
}

// [T, 3, H, W] float on the 0–255 scale.
torch::Tensor frames_tensor(const Video& v) {
  auto bytes = torch::from_blob(const_cast<uint8_t*>(v.rgb.data()), {v.frames, v.height, v.width, 3}, torch::kUInt8);
  return bytes.permute({0, 3, 1, 2}).to(torch::kFloat64);
}

}  // namespace

double psnr(const Video& a, const Video& b) {
  check_pair(a, b);
  const double mse = (frames_tensor(a) - frames_tensor(b)).pow(2).mean().item<double>();
  if (mse <= 0.0) return 100.0;
  return std::min(100.0, 10.0 * std::log10(255.0 * 255.0 / mse));
}

double ssim(const Video& a, const Video& b) {
  check_pair(a, b);
  constexpr int kWindow = 11;
  constexpr double kSigma = 1.5;
  constexpr double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
  // Frames smaller than the window use a window as large as they are.
  const int win = std::min({kWindow, a.height, a.width});
  auto g = torch::arange(win, torch::kFloat64).sub((win - 1) / 2.0).pow(2).div(-2.0 * kSigma * kSigma).exp();
  g = g / g.sum();
  const auto kernel = torch::outer(g, g).view({1, 1, win, win}).repeat({3, 1, 1, 1});
  auto filter = [&](const torch::Tensor& x) {
    return torch::conv2d(x, kernel, torch::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, 3);
  };
  const auto x = frames_tensor(a), y = frames_tensor(b);
  const auto mx = filter(x), my = filter(y);
  const auto sxx = filter(x * x) - mx * mx, syy = filter(y * y) - my * my, sxy = filter(x * y) - mx * my;
  const auto ssim_map = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2));
  return ssim_map.mean().item<double>();
}

// ---- loop score (VQeval loop_quality on a pooled-pixel feature) --------------------------------

namespace {

using Features = std::vector<std::vector<double>>;

// Area means of pool×pool cells (ragged edge cells over their real pixels), 0–1, minus the mean
// over frames.
Features pooled_features(const Video& video, int pool) {
  const int n = video.frames, ph = (video.height + pool - 1) / pool, pw = (video.width + pool - 1) / pool;
  const size_t dim = size_t(ph) * pw * 3;
  Features f(size_t(n), std::vector<double>(dim, 0.0));
  std::vector<double> count(size_t(ph) * pw, 0.0);
  for (int y = 0; y < video.height; ++y)
    for (int x = 0; x < video.width; ++x) count[size_t(y / pool) * pw + x / pool] += 1.0;
  for (int t = 0; t < n; ++t) {
    const uint8_t* px = video.frame(t);
    for (int y = 0; y < video.height; ++y)
      for (int x = 0; x < video.width; ++x)
        for (int c = 0; c < 3; ++c)
          f[size_t(t)][(size_t(y / pool) * pw + x / pool) * 3 + c] += px[(size_t(y) * video.width + x) * 3 + c] / 255.0;
    for (size_t i = 0; i < dim; ++i) f[size_t(t)][i] /= count[i / 3];
  }
  std::vector<double> mean(dim, 0.0);
  for (const auto& v : f)
    for (size_t i = 0; i < dim; ++i) mean[i] += v[i] / n;
  for (auto& v : f)
    for (size_t i = 0; i < dim; ++i) v[i] -= mean[i];
  return f;
}

// Cosine similarity of every pair of frames; two zero features (frames equal to the mean frame)
// are identical, one zero feature is unlike any other.
struct Similarity {
  int n = 0;
  std::vector<double> S;
  double operator()(int a, int b) const { return S[size_t(a) * n + b]; }
};

Similarity similarity(const Features& f) {
  const int n = int(f.size());
  std::vector<double> norm(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) norm[size_t(t)] = std::sqrt(std::inner_product(f[t].begin(), f[t].end(), f[t].begin(), 0.0));
  Similarity sim{n, std::vector<double>(size_t(n) * n, 0.0)};
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      const double d = norm[size_t(a)] * norm[size_t(b)];
      const bool za = norm[size_t(a)] < 1e-9, zb = norm[size_t(b)] < 1e-9;
      sim.S[size_t(a) * n + b] = a == b || (za && zb) ? 1.0
                                 : d > 1e-18      ? std::inner_product(f[a].begin(), f[a].end(), f[b].begin(), 0.0) / d
                                                  : 0.0;
    }
  return sim;
}

// Cycle: the similarity band's local peak past min_gap, in band standard deviations; a video
// whose frames are all alike scores high too.
void score_cycle(const Similarity& sim, int min_gap, LoopScore& r) {
  const int n = sim.n;
  std::vector<double> band;
  for (int k = 1; k <= n / 2; ++k) {
    double m = 0;
    for (int i = 0; i + k < n; ++i) m += sim(i, i + k);
    band.push_back(m / (n - k));
  }
  const double bmean = std::accumulate(band.begin(), band.end(), 0.0) / band.size();
  double bvar = 0;
  for (double b : band) bvar += (b - bmean) * (b - bmean);
  const double bstd = std::sqrt(bvar / band.size());
  double peak = bmean;
  int peak_k = 0;
  // Only a local maximum of the band counts (VQeval takes the plain maximum, which a band that
  // merely decays with the offset — any smooth video — has at min_gap).
  for (int k = min_gap; k <= int(band.size()); ++k) {
    const double b = band[size_t(k - 1)];
    const bool local = b >= band[size_t(k - 2)] && (k == int(band.size()) || b >= band[size_t(k)]);
    if (local && (peak_k == 0 || b > peak)) peak = b, peak_k = k;
  }
  if (peak_k == 0) peak = bmean;
  r.cycle_period = peak_k;
  r.cycle = bstd > 0 ? std::clamp((peak - bmean) / bstd / 3.0, 0.0, 1.0) : std::clamp((bmean - 0.8) / 0.2, 0.0, 1.0);
  double off = 0;
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b)
      if (a != b) off += sim(a, b);
  off /= double(n) * (n - 1);
  if (off > 0.95) r.cycle = std::max(r.cycle, 0.8);
  else if (off > 0.90) r.cycle = std::max(r.cycle, 0.5);
}

// Near-duplicates and the longest repeat.
void score_repeats(const Similarity& sim, int min_gap, LoopScore& r) {
  const int n = sim.n;
  constexpr double kDuplicate = 0.97;
  int dup = 0, pairs = 0;
  for (int i = 0; i < n; ++i)
    for (int j = i + min_gap; j < n; ++j) ++pairs, dup += sim(i, j) > kDuplicate;
  r.duplicate = std::min(1.0, 3.0 * dup / std::max(1, pairs));
  for (int p = min_gap; p <= n / 2; ++p) {
    int streak = 0;
    for (int i = 0; i + p < n; ++i) {
      streak = sim(i, i + p) > kDuplicate ? streak + 1 : 0;
      r.longest_repeat = std::max(r.longest_repeat, streak);
    }
  }
}

std::vector<double> centred(std::vector<double> v) {
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  for (auto& x : v) x -= m;
  return v;
}

// Frame-difference signals: ‖f_{t+1} − f_t‖ (autocorrelation) and the mean |difference| (the
// motion signal standing in for VQeval's optical-flow magnitude).
void score_motion(const Features& f, LoopScore& r) {
  const int n = int(f.size());
  const size_t dim = f.front().size();
  std::vector<double> diff, motion;
  for (int t = 0; t + 1 < n; ++t) {
    double sq = 0, ab = 0;
    for (size_t i = 0; i < dim; ++i) {
      const double d = f[size_t(t + 1)][i] - f[size_t(t)][i];
      sq += d * d;
      ab += std::abs(d);
    }
    diff.push_back(std::sqrt(sq));
    motion.push_back(ab / double(dim));
  }
  // Periodicity: dominant share of the non-DC DFT power of the motion signal.
  {
    const auto m = centred(motion);
    const int L = int(m.size());
    double total = 0, top = 0;
    for (int k = 1; k <= L / 2; ++k) {
      double re = 0, im = 0;
      for (int t = 0; t < L; ++t) re += m[t] * std::cos(2 * M_PI * k * t / L), im -= m[t] * std::sin(2 * M_PI * k * t / L);
      const double pw2 = re * re + im * im;
      total += pw2;
      top = std::max(top, pw2);
    }
    r.periodicity = total > 1e-12 ? std::clamp((top / total - 0.3) / 0.4, 0.0, 1.0) : 0.0;
  }
  // Autocorrelation.
  const auto d = centred(diff);
  const double energy = std::inner_product(d.begin(), d.end(), d.begin(), 0.0);
  const double change = std::accumulate(diff.begin(), diff.end(), 0.0);
  if (change < 1e-9) {
    r.autocorrelation = 0.8;  // nothing changes (VQeval's value)
  } else if (energy < 1e-12) {
    r.autocorrelation = 0.0;  // perfectly steady change: nothing repeats (VQeval would say 0.8)
  } else {
    double best = -1;
    const int max_lag = int(d.size()) / 2;
    for (int lag = std::min(3, max_lag); lag <= max_lag; ++lag) {
      double c = 0;
      for (size_t t = 0; t + lag < d.size(); ++t) c += d[t] * d[t + lag];
      best = std::max(best, c / energy);
    }
    r.autocorrelation = std::clamp(best, 0.0, 1.0);
  }
}

}  // namespace

LoopScore loop_score(const Video& video, int pool) {
  check_video(video, "video");
  if (video.frames < 6) throw ParameterError("frames", "the loop score needs at least 6 frames");
  if (pool < 1) throw ParameterError("pool", "must be at least 1, got " + std::to_string(pool));
  const auto f = pooled_features(video, pool);
  const auto sim = similarity(f);
  const int min_gap = std::max(3, video.frames / 10);
  LoopScore r;
  score_cycle(sim, min_gap, r);
  score_repeats(sim, min_gap, r);
  score_motion(f, r);
  r.severity = 0.35 * r.cycle + 0.25 * r.duplicate + 0.20 * r.periodicity + 0.20 * r.autocorrelation;
  r.score = std::max(0.0, 1.0 - r.severity);
  return r;
}

}  // namespace longshot::eval

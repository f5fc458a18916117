// The procedural world: sampling, closed-form motion laws, supersampled rendering and the caption
// grammar (both directions).
//
// Sections: [rng] · [palette] · [sampling] · [simulation] · [rendering] · [caption] · [parse]
#include "engine/data/world.h"

#include <cmath>
#include <sstream>

#include "engine/common/error.h"
#include "engine/data/tokenizer.h"

namespace longshot::data {

namespace {

constexpr double kPi = 3.14159265358979323846;

// [rng] splitmix64: tiny, fast, and the same sequence everywhere (std:: distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed ^ 0x6a09e667f3bcc909ULL) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53; }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  bool chance(double p) { return uniform(0.0, 1.0) < p; }

 private:
  uint64_t state_;
};

// Position on a segment of length `length` bouncing elastically at both ends (a triangle wave).
double reflect(double s, double length) {
  if (length <= 0.0) return 0.0;
  double m = std::fmod(s, 2.0 * length);
  if (m < 0.0) m += 2.0 * length;
  return m < length ? m : 2.0 * length - m;
}

}  // namespace

// [palette] -------------------------------------------------------------------------------------

const std::vector<NamedColor>& object_colors() {
  static const std::vector<NamedColor> colors = {
      {"red", {225, 40, 40}},     {"green", {60, 210, 70}},   {"blue", {60, 110, 255}},
      {"yellow", {245, 225, 50}}, {"white", {245, 245, 245}}, {"orange", {255, 140, 20}},
      {"purple", {175, 70, 235}}, {"cyan", {40, 225, 230}},
  };
  return colors;
}

const std::vector<NamedColor>& background_colors() {
  static const std::vector<NamedColor> colors = {
      {"black", {12, 12, 14}},      {"dark blue", {16, 24, 72}},   {"dark gray", {50, 50, 54}},
      {"dark green", {14, 56, 30}}, {"dark purple", {48, 18, 60}}, {"brown", {70, 44, 22}},
  };
  return colors;
}

std::string to_string(Shape shape) {
  switch (shape) {
    case Shape::Circle: return "circle";
    case Shape::Square: return "square";
    case Shape::Triangle: return "triangle";
    case Shape::Diamond: return "diamond";
  }
  return "circle";
}

std::string to_string(Size size) {
  switch (size) {
    case Size::Small: return "small";
    case Size::Medium: return "medium";
    case Size::Large: return "large";
  }
  return "medium";
}

std::string to_string(BackgroundKind kind) {
  switch (kind) {
    case BackgroundKind::Plain: return "plain";
    case BackgroundKind::Gradient: return "gradient";
    case BackgroundKind::Checkered: return "checkered";
  }
  return "plain";
}

std::string motion_phrase(Motion motion) {
  switch (motion) {
    case Motion::BounceRight: return "bounces left to right";
    case Motion::BounceLeft: return "bounces right to left";
    case Motion::BounceVertical: return "bounces up and down";
    case Motion::Fall: return "falls and bounces";
    case Motion::OrbitClockwise: return "orbits clockwise";
    case Motion::OrbitCounterclockwise: return "orbits counterclockwise";
    case Motion::Pulse: return "grows and shrinks";
    case Motion::Still: return "stays still";
  }
  return "stays still";
}

// Neighbouring sizes differ by ≥ 1.5× so a size check can tell them apart even while pulsing ±25 %.
double size_fraction(Size size) {
  switch (size) {
    case Size::Small: return 0.075;
    case Size::Medium: return 0.115;
    case Size::Large: return 0.17;
  }
  return 0.115;
}

double shape_area_factor(Shape shape) {
  switch (shape) {
    case Shape::Circle: return kPi;
    case Shape::Square: return 4.0;
    case Shape::Triangle: return 2.0;
    case Shape::Diamond: return 2.0 * 1.2 * 1.2;
  }
  return kPi;
}

// [sampling] ------------------------------------------------------------------------------------
// Every period is longer than 32 frames (the training length), so a loop detector looking at lags
// up to the training length never mistakes the world's own periodic physics for a looping model.

namespace {

constexpr int kMotionCount = 7;  // every motion but Still

void sample_conditions(ObjectSpec& o, Rng& rng) {
  const double r = size_fraction(o.size);
  // Normalised extents: positions are fractions of the frame, r a fraction of min(W, H); with the
  // square frames the model trains on these coincide, wider frames keep objects inside anyway.
  switch (o.motion) {
    case Motion::BounceRight:
    case Motion::BounceLeft: {
      o.speed = rng.uniform(0.015, 0.035);
      const double travel = 1.0 - 2.0 * r;
      // Start in the 40 % of the travel behind the object, so the first frames show the caption's
      // direction before the first wall.
      const double s = rng.uniform(0.0, 0.4) * travel;
      o.x0 = o.motion == Motion::BounceRight ? r + s : 1.0 - r - s;
      o.y0 = rng.uniform(r, 1.0 - r);
      break;
    }
    case Motion::BounceVertical:
      o.speed = rng.uniform(0.015, 0.035) * (rng.chance(0.5) ? 1.0 : -1.0);
      o.x0 = rng.uniform(r, 1.0 - r);
      o.y0 = rng.uniform(r, 1.0 - r);
      break;
    case Motion::Fall:
      o.x0 = rng.uniform(r, 1.0 - r);
      o.y0 = rng.uniform(r, 0.45);  // top of the arc
      o.period = rng.uniform(36.0, 56.0);
      break;
    case Motion::OrbitClockwise:
    case Motion::OrbitCounterclockwise:
      o.orbit_radius = rng.uniform(0.15, 0.25);
      o.x0 = rng.uniform(o.orbit_radius + r, 1.0 - o.orbit_radius - r);
      o.y0 = rng.uniform(o.orbit_radius + r, 1.0 - o.orbit_radius - r);
      o.period = rng.uniform(40.0, 80.0);
      o.phase = rng.uniform(0.0, 2.0 * kPi);
      break;
    case Motion::Pulse: {
      const double rmax = r * (1.0 + kPulseAmplitude);
      o.x0 = rng.uniform(rmax, 1.0 - rmax);
      o.y0 = rng.uniform(rmax, 1.0 - rmax);
      o.period = rng.uniform(36.0, 64.0);
      o.phase = rng.uniform(0.0, 2.0 * kPi);
      break;
    }
    case Motion::Still:
      o.x0 = rng.uniform(0.0, 1.0);
      o.y0 = rng.uniform(r, 1.0 - r);
      break;
  }
}

std::vector<int> distinct_colors(Rng& rng, int count) {
  std::vector<int> pool(object_colors().size());
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<int>(i);
  std::vector<int> out;
  for (int i = 0; i < count; ++i) {
    const int k = rng.below(static_cast<int>(pool.size()));
    out.push_back(pool[k]);
    pool.erase(pool.begin() + k);
  }
  return out;
}

}  // namespace

ClipSpec sample_clip(uint64_t seed, const WorldOptions& options) {
  if (options.min_objects < 1 || options.max_objects < options.min_objects || options.max_objects > 3) {
    throw ParameterError("objects", "need 1 <= min_objects <= max_objects <= 3");
  }
  Rng rng(seed);
  ClipSpec spec;
  const int count = options.min_objects + rng.below(options.max_objects - options.min_objects + 1);
  const bool pan = options.allow_pan && rng.chance(0.15);
  const std::vector<int> colors = distinct_colors(rng, count);
  for (int i = 0; i < count; ++i) {
    ObjectSpec o;
    o.shape = static_cast<Shape>(rng.below(4));
    o.color = colors[i];
    o.size = static_cast<Size>(rng.below(3));
    o.motion = pan ? Motion::Still : static_cast<Motion>(rng.below(kMotionCount));
    sample_conditions(o, rng);
    spec.objects.push_back(o);
  }
  spec.background_color = rng.below(static_cast<int>(background_colors().size()));
  if (options.allow_textures) {
    const double u = rng.uniform(0.0, 1.0);
    spec.background = u < 0.5 ? BackgroundKind::Plain : (u < 0.75 ? BackgroundKind::Gradient : BackgroundKind::Checkered);
  }
  if (pan) {
    spec.pan = rng.chance(0.5) ? Pan::Left : Pan::Right;
    spec.pan_speed = rng.uniform(0.008, 0.02);
  }
  return spec;
}

ClipSpec spec_for_caption(const CaptionInfo& info, uint64_t seed) {
  Rng rng(seed ^ 0x51ed2701f3a5c9b1ULL);
  ClipSpec spec;
  for (const CaptionObject& c : info.objects) {
    ObjectSpec o;
    o.shape = c.shape;
    o.color = c.color;
    o.size = c.size;
    o.motion = c.motion;
    sample_conditions(o, rng);
    spec.objects.push_back(o);
  }
  spec.background = info.background;
  spec.background_color = info.background_color.value_or(rng.below(static_cast<int>(background_colors().size())));
  spec.pan = info.pan;
  if (spec.pan != Pan::None) spec.pan_speed = rng.uniform(0.008, 0.02);
  return spec;
}

// [simulation] ----------------------------------------------------------------------------------

std::vector<std::vector<ObjectState>> simulate(const ClipSpec& spec, int frames, int width, int height) {
  if (frames <= 0) throw ParameterError("frames", "must be positive, got " + std::to_string(frames));
  if (width <= 0 || height <= 0) {
    throw ParameterError("size", "width and height must be positive, got " + std::to_string(width) + "x" +
                                     std::to_string(height));
  }
  const double unit = std::min(width, height);
  const double pan_dir = spec.pan == Pan::Left ? 1.0 : (spec.pan == Pan::Right ? -1.0 : 0.0);
  std::vector<std::vector<ObjectState>> out(frames, std::vector<ObjectState>(spec.objects.size()));
  for (size_t k = 0; k < spec.objects.size(); ++k) {
    const ObjectSpec& o = spec.objects[k];
    const double r = size_fraction(o.size) * unit;
    for (int t = 0; t < frames; ++t) {
      ObjectState s;
      s.x = o.x0 * width;
      s.y = o.y0 * height;
      s.radius = r;
      switch (o.motion) {
        case Motion::BounceRight:
        case Motion::BounceLeft: {
          const double v = o.speed * unit * (o.motion == Motion::BounceRight ? 1.0 : -1.0);
          s.x = r + reflect(s.x - r + v * t, width - 2.0 * r);
          break;
        }
        case Motion::BounceVertical:
          s.y = r + reflect(s.y - r + o.speed * unit * t, height - 2.0 * r);
          break;
        case Motion::Fall: {
          // From rest at the top of the arc to the floor in half a period, elastic bounce.
          const double top = s.y, floor = height - r;
          const double half = o.period / 2.0;
          const double g = 2.0 * std::max(0.0, floor - top) / (half * half);
          double u = std::fmod(static_cast<double>(t), o.period);
          const double tau = u - half;
          s.y = top + 0.5 * g * (half * half - tau * tau);
          break;
        }
        case Motion::OrbitClockwise:
        case Motion::OrbitCounterclockwise: {
          // y points down, so a growing angle turns clockwise on screen.
          const double dir = o.motion == Motion::OrbitClockwise ? 1.0 : -1.0;
          const double a = o.phase + dir * 2.0 * kPi * t / o.period;
          s.x += o.orbit_radius * unit * std::cos(a);
          s.y += o.orbit_radius * unit * std::sin(a);
          break;
        }
        case Motion::Pulse:
          s.radius = r * (1.0 + kPulseAmplitude * std::sin(o.phase + 2.0 * kPi * t / o.period));
          break;
        case Motion::Still:
          break;
      }
      if (pan_dir != 0.0) {
        s.x = std::fmod(s.x + pan_dir * spec.pan_speed * width * t, static_cast<double>(width));
        if (s.x < 0.0) s.x += width;
      }
      out[t][k] = s;
    }
  }
  return out;
}

// [rendering] -----------------------------------------------------------------------------------

namespace {

bool inside(Shape shape, double dx, double dy, double r) {
  switch (shape) {
    case Shape::Circle: return dx * dx + dy * dy <= r * r;
    case Shape::Square: return std::abs(dx) <= r && std::abs(dy) <= r;
    case Shape::Triangle: return dy <= r && std::abs(dx) * 2.0 <= dy + r;  // apex up, base 2r, height 2r
    case Shape::Diamond: return std::abs(dx) + std::abs(dy) <= r * 1.2;
  }
  return false;
}

Rgb scale(Rgb c, double f, double add) {
  auto ch = [&](uint8_t v) { return static_cast<uint8_t>(std::clamp(v * f + add, 0.0, 255.0)); };
  return {ch(c.r), ch(c.g), ch(c.b)};
}

}  // namespace

Video render(const ClipSpec& spec, int frames, int width, int height, double fps) {
  const auto traj = simulate(spec, frames, width, height);
  if (spec.background_color < 0 || spec.background_color >= static_cast<int>(background_colors().size())) {
    throw ParameterError("background_color", "index out of range");
  }
  for (const ObjectSpec& o : spec.objects) {
    if (o.color < 0 || o.color >= static_cast<int>(object_colors().size())) {
      throw ParameterError("color", "object colour index out of range");
    }
  }
  Video video;
  video.frames = frames;
  video.width = width;
  video.height = height;
  video.fps = fps;
  video.rgb.assign(static_cast<size_t>(frames) * width * height * 3, 0);

  const Rgb base = background_colors()[spec.background_color].rgb;
  const Rgb light = scale(base, 1.5, 15.0), dark = scale(base, 0.5, 0.0);
  const Rgb check = scale(base, 1.35, 12.0);
  const double unit = std::min(width, height);
  const double cell = 0.125 * unit;
  const double pan_dir = spec.pan == Pan::Left ? 1.0 : (spec.pan == Pan::Right ? -1.0 : 0.0);
  // 2×2 supersampling: soft edges make motion between frames continuous rather than pixel-stepped.
  const double offsets[2] = {0.25, 0.75};

  for (int t = 0; t < frames; ++t) {
    const double scroll = pan_dir * spec.pan_speed * width * t;
    uint8_t* px = video.frame(t);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        double acc[3] = {0, 0, 0};
        for (double oy : offsets) {
          for (double ox : offsets) {
            const double sx = x + ox, sy = y + oy;
            Rgb c = base;
            if (spec.background == BackgroundKind::Gradient) {
              const double f = sy / height;
              c = {static_cast<uint8_t>(light.r + (dark.r - light.r) * f), static_cast<uint8_t>(light.g + (dark.g - light.g) * f),
                   static_cast<uint8_t>(light.b + (dark.b - light.b) * f)};
            } else if (spec.background == BackgroundKind::Checkered) {
              const long cx = static_cast<long>(std::floor((sx - scroll) / cell));
              const long cy = static_cast<long>(std::floor(sy / cell));
              if (((cx + cy) & 1) != 0) c = check;
            }
            for (size_t k = 0; k < spec.objects.size(); ++k) {
              const ObjectState& s = traj[t][k];
              const double dy = sy - s.y;
              bool hit = false;
              // Objects of a panning scene wrap around horizontally: draw their copies too.
              for (int w = -1; w <= 1 && !hit; ++w) {
                if (w != 0 && pan_dir == 0.0) continue;
                hit = inside(spec.objects[k].shape, sx - (s.x + w * width), dy, s.radius);
              }
              if (hit) c = object_colors()[spec.objects[k].color].rgb;
            }
            acc[0] += c.r;
            acc[1] += c.g;
            acc[2] += c.b;
          }
        }
        uint8_t* p = px + (static_cast<size_t>(y) * width + x) * 3;
        for (int ch = 0; ch < 3; ++ch) p[ch] = static_cast<uint8_t>(std::lround(acc[ch] / 4.0));
      }
    }
  }
  return video;
}

Clip generate_clip(uint64_t seed, int frames, int width, int height, const WorldOptions& options) {
  Clip clip;
  clip.spec = sample_clip(seed, options);
  clip.caption = caption(clip.spec);
  clip.trajectory = simulate(clip.spec, frames, width, height);
  clip.video = render(clip.spec, frames, width, height);
  return clip;
}

torch::Tensor object_footprint(const ClipSpec& spec, const std::vector<std::vector<ObjectState>>& trajectory, int width,
                               int height, double margin) {
  if (width <= 0 || height <= 0) throw ParameterError("size", "footprint needs a positive width and height");
  const int frames = static_cast<int>(trajectory.size());
  auto out = torch::zeros({frames, height, width}, torch::kFloat32);
  float* px = out.data_ptr<float>();
  for (int t = 0; t < frames; ++t) {
    if (trajectory[t].size() != spec.objects.size()) {
      throw ShapeError("footprint: frame " + std::to_string(t) + " has " + std::to_string(trajectory[t].size()) +
                       " object states, the clip has " + std::to_string(spec.objects.size()) + " objects");
    }
    for (const ObjectState& s : trajectory[t]) {
      const double r = s.radius * 1.2 + margin;  // 1.2: the diamond's reach (see inside())
      const int y0 = std::max(0, static_cast<int>(std::floor(s.y - r)));
      const int y1 = std::min(height - 1, static_cast<int>(std::ceil(s.y + r)));
      // A panning scene wraps objects around horizontally: mark the copy on the other side too.
      for (int w = spec.pan == Pan::None ? 0 : -1; w <= (spec.pan == Pan::None ? 0 : 1); ++w) {
        const double cx = s.x + w * width;
        const int x0 = std::max(0, static_cast<int>(std::floor(cx - r)));
        const int x1 = std::min(width - 1, static_cast<int>(std::ceil(cx + r)));
        for (int y = y0; y <= y1; ++y) {
          for (int x = x0; x <= x1; ++x) px[(static_cast<size_t>(t) * height + y) * width + x] = 1.0f;
        }
      }
    }
  }
  return out;
}

torch::Tensor video_to_tensor(const Video& video) {
  if (video.rgb.size() != static_cast<size_t>(video.frames) * video.frame_bytes() || video.frames <= 0) {
    throw ShapeError("video: rgb buffer holds " + std::to_string(video.rgb.size()) + " bytes, expected frames*height*width*3");
  }
  // One plain pass (HWC bytes → planar floats): the tensor-op chain cost as much as rendering.
  auto out = torch::empty({3, video.frames, video.height, video.width}, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  const size_t plane = static_cast<size_t>(video.frames) * video.height * video.width;
  const uint8_t* src = video.rgb.data();
  for (size_t i = 0; i < plane; ++i) {
    for (size_t c = 0; c < 3; ++c) dst[c * plane + i] = static_cast<float>(src[i * 3 + c]) / 127.5f - 1.0f;
  }
  return out;
}

Video tensor_to_video(const torch::Tensor& pixels, double fps) {
  if (pixels.dim() != 4 || pixels.size(0) != 3) {
    throw ShapeError("pixels: expected [3, T, H, W], got " + std::to_string(pixels.dim()) + "-d tensor");
  }
  auto bytes = pixels.detach().to(torch::kCPU, torch::kFloat32).add(1.0).mul(127.5).round().clamp(0, 255)
                   .to(torch::kUInt8).permute({1, 2, 3, 0}).contiguous();
  Video video;
  video.frames = static_cast<int>(pixels.size(1));
  video.height = static_cast<int>(pixels.size(2));
  video.width = static_cast<int>(pixels.size(3));
  video.fps = fps;
  video.rgb.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  return video;
}

// [caption] -------------------------------------------------------------------------------------

std::string caption(const ClipSpec& spec) {
  std::ostringstream out;
  for (size_t k = 0; k < spec.objects.size(); ++k) {
    const ObjectSpec& o = spec.objects[k];
    if (k > 0) out << " and ";
    out << "a " << to_string(o.size) << " " << object_colors()[o.color].name << " " << to_string(o.shape) << " "
        << motion_phrase(o.motion);
  }
  out << " on a " << background_colors()[spec.background_color].name;
  if (spec.background != BackgroundKind::Plain) out << " " << to_string(spec.background);
  out << " background";
  if (spec.pan == Pan::Left) out << " as the camera pans left";
  if (spec.pan == Pan::Right) out << " as the camera pans right";
  return out.str();
}

// [parse] ---------------------------------------------------------------------------------------

namespace {

// Matches the (possibly multi-word) `phrase` at words[i]; returns its word count or 0.
size_t match(const std::vector<std::string>& words, size_t i, const std::string& phrase) {
  const auto p = split_words(phrase);
  if (i + p.size() > words.size()) return 0;
  for (size_t j = 0; j < p.size(); ++j) {
    if (words[i + j] != p[j]) return 0;
  }
  return p.size();
}

// Longest palette name at words[i]: (index, words used) or (-1, 0).
std::pair<int, size_t> match_color(const std::vector<std::string>& words, size_t i, const std::vector<NamedColor>& palette) {
  std::pair<int, size_t> best{-1, 0};
  for (size_t c = 0; c < palette.size(); ++c) {
    const size_t n = match(words, i, palette[c].name);
    if (n > best.second) best = {static_cast<int>(c), n};
  }
  return best;
}

}  // namespace

std::optional<CaptionInfo> parse_caption(const std::string& prompt) {
  const auto words = split_words(prompt);
  CaptionInfo info;
  size_t i = 0;
  while (i < words.size()) {
    const std::string& w = words[i];
    if (w == "on") {
      size_t j = i + 1;
      if (j < words.size() && (words[j] == "a" || words[j] == "an")) ++j;
      const auto [bg, n] = match_color(words, j, background_colors());
      if (bg >= 0) {
        info.background_color = bg;
        j += n;
        for (BackgroundKind kind : {BackgroundKind::Gradient, BackgroundKind::Checkered, BackgroundKind::Plain}) {
          if (match(words, j, to_string(kind))) {
            info.background = kind;
            ++j;
          }
        }
        i = j;
        continue;
      }
    }
    if (w == "pans" && i + 1 < words.size()) {
      if (words[i + 1] == "left") info.pan = Pan::Left;
      if (words[i + 1] == "right") info.pan = Pan::Right;
      i += 2;
      continue;
    }
    // An object: [size] colour shape [motion phrase].
    size_t j = i;
    CaptionObject obj;
    for (Size s : {Size::Small, Size::Medium, Size::Large}) {
      if (match(words, j, to_string(s))) {
        obj.size = s;
        ++j;
        break;
      }
    }
    const auto [color, n] = match_color(words, j, object_colors());
    if (color >= 0) {
      j += n;
      bool shaped = false;
      for (Shape s : {Shape::Circle, Shape::Square, Shape::Triangle, Shape::Diamond}) {
        if (j < words.size() && (words[j] == to_string(s) || words[j] == to_string(s) + "s")) {
          obj.shape = s;
          shaped = true;
          ++j;
          break;
        }
      }
      if (shaped) {
        obj.color = color;
        size_t best = 0;
        for (int m = 0; m <= static_cast<int>(Motion::Still); ++m) {
          const size_t used = match(words, j, motion_phrase(static_cast<Motion>(m)));
          if (used > best) {
            best = used;
            obj.motion = static_cast<Motion>(m);
          }
        }
        info.objects.push_back(obj);
        i = j + best;
        continue;
      }
    }
    ++i;
  }
  if (info.objects.empty()) return std::nullopt;
  return info;
}

}  // namespace longshot::data

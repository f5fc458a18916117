// The procedural "physics" world the built-in model learns from and the metrics judge against:
// seeded clips of 1–3 coloured shapes under simple motion laws, their captions and ground truth.
// Data room: knows video frames and tensors, nothing of the model, the sampler or the UI.
//
// Sections: [palette] named colours and sizes · [spec] what a clip is · [world] sampling,
// simulation, rendering · [caption] the grammar both ways.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/io/video.h"

namespace longshot::data {

// [palette] -------------------------------------------------------------------------------------

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

struct NamedColor {
  std::string name;  // may be two words ("dark blue")
  Rgb rgb;
};

// Bright, saturated object colours and dark background colours: far apart in RGB, so a metric can
// find an object by its colour alone.
const std::vector<NamedColor>& object_colors();
const std::vector<NamedColor>& background_colors();

enum class Shape { Circle, Square, Triangle, Diamond };
enum class Size { Small, Medium, Large };
enum class Motion {
  BounceRight,     // constant horizontal velocity, starts to the right, elastic wall bounces
  BounceLeft,      // same, starts to the left
  BounceVertical,  // constant vertical velocity with floor / ceiling bounces ("up and down")
  Fall,            // gravity from rest, elastic floor bounce
  OrbitClockwise,  // circle around a centre, clockwise on screen
  OrbitCounterclockwise,
  Pulse,           // stays in place, radius oscillates ("grows and shrinks")
  Still,           // no own motion (used with a camera pan)
};
enum class BackgroundKind { Plain, Gradient, Checkered };
enum class Pan { None, Left, Right };  // camera pans left → the scene moves right on screen

std::string to_string(Shape shape);
std::string to_string(Size size);
std::string to_string(BackgroundKind kind);
// The caption's verb phrase for a motion ("bounces left to right").
std::string motion_phrase(Motion motion);
// Half-extent of an object of this size, as a fraction of min(width, height).
double size_fraction(Size size);
// Area of a shape of half-extent r is shape_area_factor(shape) · r².
double shape_area_factor(Shape shape);
// Pulse: the radius swings ±25 % around the named size.
constexpr double kPulseAmplitude = 0.25;

// [spec] ----------------------------------------------------------------------------------------

// One object: what the caption names and the hidden initial conditions. Positions and lengths are
// in normalised frame units (x, y in [0, 1], y down; lengths are fractions of min(width, height)),
// speeds per frame, so a clip renders identically in content at any resolution.
struct ObjectSpec {
  Shape shape = Shape::Circle;
  int color = 0;  // index into object_colors()
  Size size = Size::Medium;
  Motion motion = Motion::BounceRight;
  double x0 = 0.5, y0 = 0.5;  // start centre (orbit: orbit centre)
  double speed = 0.02;        // |velocity| per frame for bounces (fraction of min(width, height))
  double orbit_radius = 0.2;  // Orbit
  double period = 48.0;       // Fall / Orbit / Pulse: frames per cycle (Fall: gravity follows)
  double phase = 0.0;         // Orbit / Pulse: start phase in radians
};

struct ClipSpec {
  std::vector<ObjectSpec> objects;  // 1–3, distinct colours
  BackgroundKind background = BackgroundKind::Plain;
  int background_color = 0;  // index into background_colors()
  Pan pan = Pan::None;
  double pan_speed = 0.0;    // normalised units per frame (objects wrap around horizontally)
};

// Ground truth of one object in one frame, in pixels of the rendered size.
struct ObjectState {
  double x = 0.0, y = 0.0;  // centre
  double radius = 0.0;      // half-extent
};

// [world] ---------------------------------------------------------------------------------------

struct WorldOptions {
  int min_objects = 1;
  int max_objects = 3;
  bool allow_pan = true;
  bool allow_textures = true;
};

// A random clip description; the same seed gives the same clip on every machine (own PRNG, no
// std:: distributions, whose output is implementation-defined).
ClipSpec sample_clip(uint64_t seed, const WorldOptions& options = {});

// Per frame, per object ground truth for `frames` frames of a width×height rendering. Any number of
// frames: the motion laws are closed-form or energy-conserving, so clips never settle or drift.
std::vector<std::vector<ObjectState>> simulate(const ClipSpec& spec, int frames, int width, int height);

// Renders the clip (2×2 supersampled edges). Throws ParameterError for non-positive sizes.
Video render(const ClipSpec& spec, int frames, int width, int height, double fps = 16.0);

struct Clip {
  ClipSpec spec;
  std::string caption;
  std::vector<std::vector<ObjectState>> trajectory;  // [frame][object]
  Video video;
};
Clip generate_clip(uint64_t seed, int frames, int width, int height, const WorldOptions& options = {});

// Where the clip's objects are, for a loss that weights them: [frames, height, width] float, 1 on
// pixels within `margin` pixels of an object's box (its half-extent around the ground-truth centre,
// horizontal copies of a panning scene included), 0 elsewhere. `trajectory` is simulate()'s output
// for this size. Throws ShapeError when it does not match the frame count or the spec's objects.
torch::Tensor object_footprint(const ClipSpec& spec, const std::vector<std::vector<ObjectState>>& trajectory, int width,
                               int height, double margin);

// Video ↔ the model's pixel space: float [3, T, H, W] in [-1, 1].
torch::Tensor video_to_tensor(const Video& video);
Video tensor_to_video(const torch::Tensor& pixels, double fps = 16.0);

// [caption] -------------------------------------------------------------------------------------

// "a small red circle bounces left to right and a large yellow square falls and bounces on a dark
// blue checkered background as the camera pans left".
std::string caption(const ClipSpec& spec);

// What a prompt in the caption grammar asks for; no initial conditions. parse_caption reads the
// grammar back (case and punctuation are ignored); it returns nullopt when the prompt names no
// object it understands, and skips words it does not know.
struct CaptionObject {
  Shape shape = Shape::Circle;
  int color = 0;
  Size size = Size::Medium;
  Motion motion = Motion::Still;
};
struct CaptionInfo {
  std::vector<CaptionObject> objects;
  std::optional<int> background_color;
  BackgroundKind background = BackgroundKind::Plain;
  Pan pan = Pan::None;
};
std::optional<CaptionInfo> parse_caption(const std::string& prompt);

// A clip that fits a parsed caption: random initial conditions from `seed`, named attributes kept.
ClipSpec spec_for_caption(const CaptionInfo& info, uint64_t seed);

}  // namespace longshot::data

// Proxy (b) of the calibration (issue 25): Q/K/V of a model's own self-attention layers, captured
// while it generates world clips of each motion regime, for calibrate::calibrate. Pipeline room:
// model + sampler + the world's captions; the search itself is the calibration room's.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/calibrate/calibration.h"
#include "engine/calibrate/router.h"

namespace longshot::pipeline {

struct CaptureSpec {
  std::string model = "longshot-builtin";  // a model a GenerationRequest can name
  int frames = 48;                         // 48 frames at 32 px: 24 × 8 × 8 = 1,536 tokens of the built-in model
  int width = 32, height = 32;
  int steps = 10;                          // the sampling schedule the capture step belongs to
  int capture_step = -1;                   // the step whose conditional forward is captured; −1 = steps / 2
  std::vector<int> layers;                 // captured layers; empty = every layer but the first (dense in dynamicrad)
  int prompts_per_regime = 2;
  uint64_t seed = 0;                       // prompts (world_prompts) and noise
  double guidance = -1;                    // −1: the model's default
  std::string device = "cpu";              // cpu, cuda or auto; Q/K/V stay on it (fp32)
  // The prompts: the first `prompts_per_regime` of each regime in this list (a Wan model's:
  // assets/wan-motion-prompts.tsv, calibrate::read_labelled_prompts); empty = the world's captions.
  std::vector<calibrate::LabelledPrompt> labelled;
};

// Runs the model dense from seeded noise on `prompts_per_regime` prompts of each regime (the world's
// captions, or `labelled`; a Wan model reads them with its umT5) up to
// the capture step and stacks the chosen layers' Q/K/V of every prompt as heads: [1, P·L·H, N, D]
// in raster order. Throws ParameterError naming a bad size, step, layer or regime (regimes must be
// the router's: static, slow, fast), and what resolving or loading the model throws.
using CaptureProgress = std::function<void(const std::string& regime, const std::string& prompt)>;
std::vector<calibrate::CapturedProxy> capture_regime_proxies(const CaptureSpec& spec,
                                                             const std::vector<calibrate::Regime>& regimes,
                                                             const CaptureProgress& progress = nullptr);

}  // namespace longshot::pipeline

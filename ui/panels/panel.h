// One panel of the studio's views (ImHex's views/view_*.cpp pattern): each panel is a class that
// keeps its own state and texture caches, keyed by job and step ids (never by the address of a
// payload, which a freed and reallocated buffer can reuse). Panels read a StudioState, draw with
// Dear ImGui + OpenGL 3 inside the window Views gives them, and report requests as PanelActions.
// No Qt, no engine calls.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ui/colormap.h"
#include "ui/settings.h"
#include "ui/studio_state.h"
#include "ui/views.h"

namespace longshot::ui {

class ColormapPass;

// A payload of one run as the views cache it: which job, and which step published it
// (kFinalFrames: the decoded clip). Invalid (job 0) until something was drawn.
struct PayloadKey {
  static constexpr int kNone = -2, kFinalFrames = -1;
  uint64_t job = 0;
  int step = kNone;
  bool operator==(const PayloadKey& o) const { return job == o.job && step == o.step; }
  bool operator!=(const PayloadKey& o) const { return !(*this == o); }
  bool valid() const { return job != 0 && step != kNone; }
};
// The keys of a run's current payloads (invalid when the run has none).
PayloadKey frames_key(const RunRecord* r);
PayloadKey heatmap_key(const RunRecord* r);
PayloadKey mask_key(const RunRecord* r);

// What every panel gets for one frame: the state to read, the settings it may edit, the shared
// colormap pass and map, and where to put what the user asked for.
struct PanelContext {
  const StudioState& state;
  ViewSettings& view;
  double dt_seconds = 0;
  PanelActions& actions;
  ColormapPass& pass;
  Colormap& colormap;  // the views' current map (resolve_colormap keeps it in step with view.colormap)
  unsigned target_fbo = 0;  // QOpenGLWidget's framebuffer, rebound after offscreen passes
  const std::vector<std::string>& modes;
};

class Panel {
 public:
  virtual ~Panel() = default;
  virtual const char* name() const = 0;
  // Draws into the current ImGui window; returns whether it had data to show.
  virtual bool draw(PanelContext& ctx) = 0;
};

}  // namespace longshot::ui

// What the studio shows, folded from the Generator's events: one record per run (steps, timings,
// sparsity per layer, mode switches, the latest heatmap / mask / frames as shared buffers). The UI
// thread drains the queue once per frame and never waits on the engine. Pure: no Qt, no GL.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "engine/pipeline/events.h"

namespace longshot::ui {

enum class RunStatus { Running, Finished, Failed, Cancelled };
const char* to_string(RunStatus status);

struct StepRecord {
  int step = 0;
  std::string mode;
  attention::ParamValues mode_params;
  bool mode_changed = false;
  bool dense_step = false;
  double step_ms = 0, attention_ms = 0, mask_ms = 0;
  double mean_sparsity = 0;
  double recall_estimate = -1;
  std::vector<float> layer_sparsity;  // mean over heads, one per layer
};

struct ModeSwitch {
  int step = 0;  // first step that ran with the new mode
  std::string from, to;
};

// A mask the run published, kept for File > Export mask trace (shared, not copied).
struct MaskSample {
  int step = 0, layer = 0;
  attention::BlockMaskPtr mask;
};

struct RunRecord {
  uint64_t job_id = 0;
  pipeline::GenerationRequest request;
  attention::TokenGrid grid;
  int num_layers = 0, num_heads = 0, num_steps = 0;
  RunStatus status = RunStatus::Running;
  std::string error;
  std::vector<StepRecord> steps;
  std::vector<ModeSwitch> mode_switches;
  pipeline::HeatmapPtr heatmap;
  attention::BlockMaskPtr mask;
  bool mask_from_cache = false;
  int mask_layer = 0, mask_head = 0;
  // Every published mask, oldest first (at most kMaxMasks): all layers' when the job recorded
  // them (request.record_masks), else the inspected layer's.
  std::vector<MaskSample> masks;
  static constexpr size_t kMaxMasks = 65536;
  VideoPtr preview;  // latest x0 preview
  VideoPtr video;    // final frames
  // The step that published the current heatmap / mask / preview: with the job id, the key the
  // views cache their textures by.
  int heatmap_step = -1, mask_step = -1, preview_step = -1;
  double total_ms = 0, attention_ms = 0, mean_sparsity = 0;
  std::chrono::steady_clock::time_point started;

  // Final frames when decoded, else the latest preview (may be null).
  VideoPtr frames() const { return video ? video : preview; }
};

class StudioState {
 public:
  using Clock = std::chrono::steady_clock;
  // Keeps the last `history` runs.
  explicit StudioState(size_t history = 16) : history_(history) {}

  void apply(const pipeline::Event& event, Clock::time_point now = Clock::now());
  // Applies a batch drained from the Generator's EventQueue (the caller drains, so this library
  // needs no Generator implementation); returns how many it applied.
  size_t apply_all(const std::vector<pipeline::Event>& events);

  const std::deque<RunRecord>& runs() const { return runs_; }
  const RunRecord* find(uint64_t job_id) const;
  // The newest run (running or not); null before the first.
  const RunRecord* current() const { return runs_.empty() ? nullptr : &runs_.back(); }
  // The newest finished run before current(), for the overlay; null if none.
  const RunRecord* previous() const;
  bool running() const { return current() && current()->status == RunStatus::Running; }

  // Seconds per step over the last few steps → iterations per second and remaining time.
  double steps_per_second() const;
  double eta_seconds() const;
  // Every mode switch seen in any run's events (the self-test checks this).
  size_t mode_switch_count() const;
  size_t events_applied() const { return events_applied_; }
  // Error texts of failed jobs not yet shown; clears them.
  std::vector<std::string> take_errors();
  // Bumped whenever a run's heatmap / mask / frames change: views re-upload textures only then.
  uint64_t revision() const { return revision_; }
  // Jobs queued behind the current one (the shell's job list knows; the views say "queued").
  void set_queued(size_t n) { queued_ = n; }
  size_t queued() const { return queued_; }

 private:
  RunRecord* find_mut(uint64_t job_id);
  size_t history_;
  std::deque<RunRecord> runs_;
  std::vector<std::string> errors_;
  size_t events_applied_ = 0;
  uint64_t revision_ = 0;
  size_t queued_ = 0;
};

}  // namespace longshot::ui

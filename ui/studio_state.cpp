#include "ui/studio_state.h"

#include <algorithm>
#include <numeric>
#include <type_traits>

namespace longshot::ui {

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::Running: return "running";
    case RunStatus::Finished: return "finished";
    case RunStatus::Failed: return "failed";
    case RunStatus::Cancelled: return "cancelled";
  }
  return "?";
}

RunRecord* StudioState::find_mut(uint64_t job_id) {
  for (auto it = runs_.rbegin(); it != runs_.rend(); ++it)
    if (it->job_id == job_id) return &*it;
  return nullptr;
}

const RunRecord* StudioState::find(uint64_t job_id) const {
  return const_cast<StudioState*>(this)->find_mut(job_id);
}

const RunRecord* StudioState::previous() const {
  for (size_t i = runs_.size(); i-- > 1;) {
    const RunRecord& r = runs_[i - 1];
    if (r.status == RunStatus::Finished) return &r;
  }
  return nullptr;
}

void StudioState::apply(const pipeline::Event& event, Clock::time_point now) {
  ++events_applied_;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, pipeline::JobStarted>) {
          RunRecord r;
          r.job_id = e.job_id;
          r.request = e.request;
          r.grid = e.grid;
          r.num_layers = e.num_layers;
          r.num_heads = e.num_heads;
          r.num_steps = e.request.steps;
          r.started = now;
          runs_.push_back(std::move(r));
          while (runs_.size() > history_) runs_.pop_front();
          ++revision_;
          return;
        }
        RunRecord* r = find_mut(e.job_id);
        if (!r) {
          // An event of a job whose start we never saw (history trimmed): only errors matter.
          if constexpr (std::is_same_v<E, pipeline::JobFailed>) errors_.push_back(e.message);
          return;
        }
        if constexpr (std::is_same_v<E, pipeline::StepFinished>) {
          StepRecord s;
          s.step = e.step;
          s.mode = e.mode;
          s.mode_params = e.mode_params;
          s.mode_changed = e.mode_changed;
          s.dense_step = e.dense_step;
          s.step_ms = e.step_ms;
          s.attention_ms = e.attention_ms;
          s.mask_ms = e.mask_ms;
          s.mean_sparsity = e.mean_sparsity;
          s.recall_estimate = e.recall_estimate;
          if (r->num_layers > 0 && r->num_heads > 0 &&
              e.sparsity.size() == static_cast<size_t>(r->num_layers) * r->num_heads) {
            s.layer_sparsity.resize(r->num_layers);
            for (int l = 0; l < r->num_layers; ++l) {
              const auto* row = e.sparsity.data() + static_cast<size_t>(l) * r->num_heads;
              s.layer_sparsity[l] = std::accumulate(row, row + r->num_heads, 0.f) / r->num_heads;
            }
          }
          if (e.mode_changed && !r->steps.empty())
            r->mode_switches.push_back({e.step, r->steps.back().mode, e.mode});
          r->num_steps = e.num_steps;
          r->steps.push_back(std::move(s));
          if (e.heatmap) {
            r->heatmap = e.heatmap;
            r->heatmap_step = e.step;
          }
          if (e.mask) {
            r->mask = e.mask;
            r->mask_step = e.step;
            r->mask_from_cache = e.mask_from_cache;
            r->mask_layer = e.mask_layer;
            r->mask_head = e.mask_head;
            if (e.layer_masks.empty() && r->masks.size() < RunRecord::kMaxMasks)
              r->masks.push_back({e.step, e.mask_layer, e.mask});
          }
          for (size_t l = 0; l < e.layer_masks.size(); ++l)
            if (e.layer_masks[l] && r->masks.size() < RunRecord::kMaxMasks)
              r->masks.push_back({e.step, static_cast<int>(l), e.layer_masks[l]});
          if (e.preview) {
            r->preview = e.preview;
            r->preview_step = e.step;
          }
          ++revision_;
        } else if constexpr (std::is_same_v<E, pipeline::FramesDecoded>) {
          if (e.video) r->video = e.video;
          ++revision_;
        } else if constexpr (std::is_same_v<E, pipeline::JobFinished>) {
          r->status = RunStatus::Finished;
          r->total_ms = e.total_ms;
          r->attention_ms = e.attention_ms;
          r->mean_sparsity = e.mean_sparsity;
          if (e.video) r->video = e.video;
          ++revision_;
        } else if constexpr (std::is_same_v<E, pipeline::JobFailed>) {
          r->status = RunStatus::Failed;
          r->error = e.message;
          errors_.push_back(e.message);
        } else if constexpr (std::is_same_v<E, pipeline::JobCancelled>) {
          r->status = RunStatus::Cancelled;
        }
      },
      event);
}

size_t StudioState::apply_all(const std::vector<pipeline::Event>& events) {
  const auto now = Clock::now();
  for (const auto& e : events) apply(e, now);
  return events.size();
}

double StudioState::steps_per_second() const {
  const RunRecord* r = current();
  if (!r || r->steps.empty()) return 0;
  const size_t n = std::min<size_t>(5, r->steps.size());
  double ms = 0;
  for (size_t i = r->steps.size() - n; i < r->steps.size(); ++i) ms += r->steps[i].step_ms;
  return ms > 0 ? 1000.0 * n / ms : 0;
}

double StudioState::eta_seconds() const {
  const RunRecord* r = current();
  const double sps = steps_per_second();
  if (!r || r->status != RunStatus::Running || sps <= 0) return 0;
  return std::max(0, r->num_steps - static_cast<int>(r->steps.size())) / sps;
}

size_t StudioState::mode_switch_count() const {
  size_t n = 0;
  for (const auto& r : runs_) n += r.mode_switches.size();
  return n;
}

std::vector<std::string> StudioState::take_errors() {
  std::vector<std::string> out;
  out.swap(errors_);
  return out;
}

}  // namespace longshot::ui

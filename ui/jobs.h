// The studio's job bookkeeping: the queue as the user sees it (queued / running / finished /
// failed / cancelled, folded from the Generator's events, so a dropped or failed job never stays
// "queued"), the seed a new job gets, the history of finished jobs kept as JSON between sessions,
// and the request checks the dock shows before Generate. Pure: no Qt, no GL, no engine calls.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/pipeline/events.h"

namespace longshot::ui {

enum class JobStatus { Queued, Running, Finished, Failed, Cancelled };
const char* to_string(JobStatus status);

struct JobEntry {
  uint64_t id = 0;  // the Generator's job id (0 for jobs read back from an earlier session)
  pipeline::GenerationRequest request;
  JobStatus status = JobStatus::Queued;
  std::string error;           // failed: the engine's message
  int steps_done = 0, num_steps = 0;
  double total_ms = 0, mean_step_ms = 0, mean_sparsity = 0;
  int64_t peak_memory_bytes = -1;  // CUDA peak of the job; -1 on the CPU or not known
  std::string finished_at;     // UTC, ISO 8601, set when the job ends
  std::string output;          // the last file this job was exported to

  bool active() const { return status == JobStatus::Queued || status == JobStatus::Running; }
};

class JobList {
 public:
  // A new job asks for `seed`: it gets it unless a queued or running job already has it (three
  // clicks on Generate make three different videos), else the next seed no active job uses.
  uint64_t free_seed(uint64_t seed) const;
  void add(uint64_t id, const pipeline::GenerationRequest& request);
  // Status from the Generator's events; events of jobs not in the list are ignored.
  void apply(const pipeline::Event& event, const std::string& now_utc = {});
  // Finished, failed and cancelled jobs of earlier sessions, oldest first (before this session's).
  void restore(std::vector<JobEntry> history);
  bool remove(size_t index);  // only ended jobs can be removed; returns whether it was
  void set_output(uint64_t id, const std::string& path);

  const std::vector<JobEntry>& entries() const { return entries_; }
  const JobEntry* find(uint64_t id) const;
  size_t queued() const;
  size_t active() const;
  // The ended jobs, newest last, at most `limit` (what the history file keeps).
  std::vector<JobEntry> history(size_t limit = kHistoryLimit) const;
  static constexpr size_t kHistoryLimit = 100;

 private:
  JobEntry* find_mut(uint64_t id);
  std::vector<JobEntry> entries_;
};

// History file: {"version": 1, "jobs": [{... "request": {preset JSON}}, ...]}.
std::string history_to_json(const std::vector<JobEntry>& jobs);
// Entries that cannot be read are skipped with a warning naming them; a file that is no history
// at all throws ParameterError("history", ...).
std::vector<JobEntry> history_from_json(const std::string& text, std::vector<std::string>* warnings = nullptr);
// $XDG_DATA_HOME/longshot/studio-history.json (default ~/.local/share/longshot/...); "" when
// neither XDG_DATA_HOME nor HOME is set.
std::string default_history_path();
// Missing file: empty history. Unreadable or malformed: empty history and a warning.
std::vector<JobEntry> load_history(const std::string& path, std::vector<std::string>* warnings = nullptr);
// Writes through a temporary file and a rename; creates the folder. Throws IoError naming the path.
void save_history(const std::string& path, const std::vector<JobEntry>& jobs);

// What the selected model asks of a request, from its config (the shell reads the engine).
struct ModelLimits {
  std::string name;
  bool known = false;        // false: a path not inspected yet, nothing but the generic limits apply
  int temporal_stride = 1;   // frames must be 1 + k * temporal_stride (1: any count)
  int temporal_patch = 1;    // and the latent frame count a multiple of this (the DiT's patch t)
  int unit_w = 1, unit_h = 1;  // width / height multiples (VAE stride x patch)
  std::vector<std::string> missing;  // components a generation would lack, shown as warnings
};
// The generic limits of validate_request, shown in the dock's tooltips.
inline constexpr int kMaxFrames = 4096, kMaxSide = 8192, kMaxSteps = 1000;
struct RequestProblem {
  std::string field;    // "prompt", "frames", "width", ...
  std::string message;  // says the limit and the value
  bool blocking = true; // false: a warning, Generate still allowed
};
std::vector<RequestProblem> check_request(const pipeline::GenerationRequest& request, const ModelLimits& limits);
// What makes two requests more than "one recipe under two attention settings" (prompt, seed,
// model, frames, size, steps, guidance, shift, sampler), one readable line each; empty = comparable.
std::vector<std::string> request_differences(const pipeline::GenerationRequest& a, const pipeline::GenerationRequest& b);
// Whether `frames` makes a latent clip the model can patch (latent_shape's rule), the nearest
// count that does, and the rule in a few words ("4n+1", "2n", "any").
bool frames_fit(int frames, const ModelLimits& limits);
int snap_frames(int frames, const ModelLimits& limits);
std::string frames_rule(const ModelLimits& limits);
int snap_side(int side, int unit);

}  // namespace longshot::ui

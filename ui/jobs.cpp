// [SECTION] index
//   JobList   statuses from events, seeds, history selection
//   history   JSON text, the XDG path, load / save
//   checks    the dock's request checks and snapping
#include "ui/jobs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "ui/settings.h"

namespace longshot::ui {

const char* to_string(JobStatus status) {
  switch (status) {
    case JobStatus::Queued: return "queued";
    case JobStatus::Running: return "running";
    case JobStatus::Finished: return "finished";
    case JobStatus::Failed: return "failed";
    case JobStatus::Cancelled: return "cancelled";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// [SECTION] JobList
JobEntry* JobList::find_mut(uint64_t id) {
  if (id == 0) return nullptr;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
    if (it->id == id) return &*it;
  return nullptr;
}

const JobEntry* JobList::find(uint64_t id) const { return const_cast<JobList*>(this)->find_mut(id); }

uint64_t JobList::free_seed(uint64_t seed) const {
  auto taken = [&](uint64_t s) {
    return std::any_of(entries_.begin(), entries_.end(), [&](const JobEntry& e) { return e.active() && e.request.seed == s; });
  };
  while (taken(seed)) ++seed;
  return seed;
}

void JobList::add(uint64_t id, const pipeline::GenerationRequest& request) {
  JobEntry e;
  e.id = id;
  e.request = request;
  e.num_steps = request.steps;
  entries_.push_back(std::move(e));
}

void JobList::apply(const pipeline::Event& event, const std::string& now_utc) {
  std::visit(
      [&](const auto& ev) {
        using E = std::decay_t<decltype(ev)>;
        JobEntry* e = find_mut(ev.job_id);
        if (!e) return;
        if constexpr (std::is_same_v<E, pipeline::JobStarted>) {
          e->status = JobStatus::Running;
        } else if constexpr (std::is_same_v<E, pipeline::StepFinished>) {
          e->status = JobStatus::Running;
          e->steps_done = ev.step + 1;
          e->num_steps = ev.num_steps;
          e->mean_step_ms += (ev.step_ms - e->mean_step_ms) / e->steps_done;
        } else if constexpr (std::is_same_v<E, pipeline::JobFinished>) {
          e->status = JobStatus::Finished;
          e->total_ms = ev.total_ms;
          e->mean_sparsity = ev.mean_sparsity;
          e->peak_memory_bytes = ev.peak_memory_bytes;
          e->finished_at = now_utc;
        } else if constexpr (std::is_same_v<E, pipeline::JobFailed>) {
          e->status = JobStatus::Failed;
          e->error = ev.message;
          e->finished_at = now_utc;
        } else if constexpr (std::is_same_v<E, pipeline::JobCancelled>) {
          e->status = JobStatus::Cancelled;
          e->finished_at = now_utc;
        }
      },
      event);
}

void JobList::restore(std::vector<JobEntry> history) {
  for (auto& e : history) {
    e.id = 0;  // ids belong to this session's Generator
    if (e.active()) e.status = JobStatus::Cancelled;  // never finished in its own session
  }
  entries_.insert(entries_.begin(), std::make_move_iterator(history.begin()), std::make_move_iterator(history.end()));
}

bool JobList::remove(size_t index) {
  if (index >= entries_.size() || entries_[index].active()) return false;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(index));
  return true;
}

void JobList::set_output(uint64_t id, const std::string& path) {
  if (JobEntry* e = find_mut(id)) e->output = path;
}

size_t JobList::queued() const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const JobEntry& e) { return e.status == JobStatus::Queued; }));
}

size_t JobList::active() const {
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(), [](const JobEntry& e) { return e.active(); }));
}

std::vector<JobEntry> JobList::history(size_t limit) const {
  std::vector<JobEntry> out;
  for (const auto& e : entries_)
    if (!e.active()) out.push_back(e);
  if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(limit));
  return out;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] history
namespace {
JobStatus status_from(const std::string& s) {
  for (auto st : {JobStatus::Queued, JobStatus::Running, JobStatus::Finished, JobStatus::Failed, JobStatus::Cancelled})
    if (s == to_string(st)) return st;
  throw ParameterError("status", "unknown job status '" + s + "'");
}
}  // namespace

std::string history_to_json(const std::vector<JobEntry>& jobs) {
  nlohmann::json j = {{"version", 1}, {"jobs", nlohmann::json::array()}};
  for (const auto& e : jobs) {
    nlohmann::json x = nlohmann::json::object();
    x["status"] = to_string(e.status);
    if (!e.error.empty()) x["error"] = e.error;
    x["steps_done"] = e.steps_done;
    x["num_steps"] = e.num_steps;
    x["total_ms"] = e.total_ms;
    x["mean_step_ms"] = e.mean_step_ms;
    x["mean_sparsity"] = e.mean_sparsity;
    if (e.peak_memory_bytes >= 0) x["peak_memory_bytes"] = e.peak_memory_bytes;
    if (!e.finished_at.empty()) x["finished_at"] = e.finished_at;
    if (!e.output.empty()) x["output"] = e.output;
    x["request"] = nlohmann::json::parse(request_to_json(e.request));
    j["jobs"].push_back(std::move(x));
  }
  return j.dump(1);
}

std::vector<JobEntry> history_from_json(const std::string& text, std::vector<std::string>* warnings) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw ParameterError("history", std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("jobs") || !j["jobs"].is_array())
    throw ParameterError("history", "expected an object with a 'jobs' array");
  std::vector<JobEntry> out;
  size_t index = 0;
  for (const auto& x : j["jobs"]) {
    try {
      if (!x.is_object() || !x.contains("request") || !x["request"].is_object())
        throw ParameterError("history", "not an object with a 'request' object");
      JobEntry e;
      e.request = request_from_json(x["request"].dump());
      e.status = status_from(x.value("status", std::string("finished")));
      e.error = x.value("error", std::string());
      e.steps_done = x.value("steps_done", 0);
      e.num_steps = x.value("num_steps", e.request.steps);
      e.total_ms = x.value("total_ms", 0.0);
      e.mean_step_ms = x.value("mean_step_ms", 0.0);
      e.mean_sparsity = x.value("mean_sparsity", 0.0);
      e.peak_memory_bytes = x.value("peak_memory_bytes", static_cast<int64_t>(-1));
      e.finished_at = x.value("finished_at", std::string());
      e.output = x.value("output", std::string());
      out.push_back(std::move(e));
    } catch (const std::exception& err) {
      if (warnings) warnings->push_back("history entry " + std::to_string(index) + " skipped: " + err.what());
    }
    ++index;
  }
  return out;
}

std::string default_history_path() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  std::string base;
  if (xdg && *xdg) base = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home) base = std::string(home) + "/.local/share";
  else return {};
  return base + "/longshot/studio-history.json";
}

std::vector<JobEntry> load_history(const std::string& path, std::vector<std::string>* warnings) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return {};
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) {
    if (warnings) warnings->push_back("cannot read the history file '" + path + "'");
    return {};
  }
  try {
    return history_from_json(ss.str(), warnings);
  } catch (const std::exception& e) {
    if (warnings) warnings->push_back("history file '" + path + "' ignored: " + e.what());
    return {};
  }
}

void save_history(const std::string& path, const std::vector<JobEntry>& jobs) {
  namespace fs = std::filesystem;
  if (path.empty()) throw IoError("history: no path (neither XDG_DATA_HOME nor HOME is set)");
  std::error_code ec;
  const fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << history_to_json(jobs);
    if (!out) throw IoError("history: cannot write '" + tmp + "'");
  }
  fs::rename(tmp, p, ec);
  if (ec) throw IoError("history: cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
}

// ---------------------------------------------------------------------------------------------
// [SECTION] checks
int snap_side(int side, int unit) {
  unit = std::max(1, unit);
  return std::max(unit, static_cast<int>(std::lround(static_cast<double>(side) / unit)) * unit);
}

bool frames_fit(int frames, const ModelLimits& m) {
  const int ts = std::max(1, m.temporal_stride), pt = std::max(1, m.temporal_patch);
  if (frames < 1 || frames > kMaxFrames || (frames - 1) % ts != 0) return false;
  const int latent = ts == 1 ? frames : 1 + (frames - 1) / ts;
  return latent % pt == 0;
}

int snap_frames(int frames, const ModelLimits& m) {
  frames = std::clamp(frames, 1, kMaxFrames);
  for (int d = 0; d < kMaxFrames; ++d) {
    if (frames_fit(frames - d, m)) return frames - d;
    if (frames_fit(frames + d, m)) return frames + d;
  }
  return 1;
}

std::string frames_rule(const ModelLimits& m) {
  const int ts = std::max(1, m.temporal_stride), pt = std::max(1, m.temporal_patch);
  if (ts == 1) return pt == 1 ? "any" : std::to_string(pt) + "n";
  if (pt == 1) return std::to_string(ts) + "n+1";
  return std::to_string(ts) + "n+1, latent " + std::to_string(pt) + "n";
}

std::vector<RequestProblem> check_request(const pipeline::GenerationRequest& r, const ModelLimits& m) {
  std::vector<RequestProblem> out;
  auto add = [&](const char* field, std::string why, bool blocking = true) { out.push_back({field, std::move(why), blocking}); };
  bool blank = true;
  for (char c : r.prompt) blank = blank && std::isspace(static_cast<unsigned char>(c));
  if (blank) add("prompt", "is empty: describe the video (the grey text is only an example)");
  if (r.frames < 1 || r.frames > kMaxFrames)
    add("frames", std::to_string(r.frames) + " is outside 1-" + std::to_string(kMaxFrames));
  else if (!frames_fit(r.frames, m))
    add("frames", std::to_string(r.frames) + ": " + m.name + " needs " + frames_rule(m) + " frames (nearest " +
                      std::to_string(snap_frames(r.frames, m)) + ")");
  auto side = [&](const char* field, int v, int unit) {
    if (v < 2 || v > kMaxSide) add(field, std::to_string(v) + " is outside 2-" + std::to_string(kMaxSide));
    else if (unit > 1 && v % unit != 0)
      add(field, std::to_string(v) + ": " + m.name + " needs a multiple of " + std::to_string(unit) + " (nearest " +
                     std::to_string(snap_side(v, unit)) + ")");
  };
  side("width", r.width, m.unit_w);
  side("height", r.height, m.unit_h);
  if (r.steps < 1 || r.steps > kMaxSteps) add("steps", std::to_string(r.steps) + " is outside 1-" + std::to_string(kMaxSteps));
  if (r.model.empty()) add("model", "is empty: pick a model or open a model folder");
  for (const auto& miss : m.missing) add("model", m.name + " lacks its " + miss, false);
  return out;
}

std::vector<std::string> request_differences(const pipeline::GenerationRequest& a, const pipeline::GenerationRequest& b) {
  std::vector<std::string> out;
  auto num = [&](const char* what, double x, double y) {
    if (x != y) {
      std::ostringstream os;
      os << what << ": " << x << " vs " << y;
      out.push_back(os.str());
    }
  };
  auto text = [&](const char* what, const std::string& x, const std::string& y) {
    if (x != y) out.push_back(std::string(what) + ": '" + x.substr(0, 40) + "' vs '" + y.substr(0, 40) + "'");
  };
  text("prompt", a.prompt, b.prompt);
  text("negative prompt", a.negative_prompt, b.negative_prompt);
  text("model", a.model, b.model);
  num("seed", static_cast<double>(a.seed), static_cast<double>(b.seed));
  num("frames", a.frames, b.frames);
  num("width", a.width, b.width);
  num("height", a.height, b.height);
  num("steps", a.steps, b.steps);
  num("guidance", a.guidance, b.guidance);
  num("shift", a.shift, b.shift);
  text("sampler", a.sampler, b.sampler);
  return out;
}

}  // namespace longshot::ui

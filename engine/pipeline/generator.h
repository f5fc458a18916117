// Runs generation jobs on its own worker thread and publishes Events into a thread-safe queue.
// Knows nothing of Qt or GL. Destruction cancels the running job, wakes the worker and joins it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/pipeline/events.h"
#include "engine/pipeline/job.h"

namespace longshot::pipeline {

// Mutex-guarded FIFO between the worker and whoever drains it (UI thread once per frame, CLI loop).
class EventQueue {
 public:
  void push(Event event);
  // Everything queued now, in order; never blocks on the producer.
  std::vector<Event> drain();
  // Waits up to timeout_ms for one event.
  std::optional<Event> wait_pop(int timeout_ms);
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
};

class Generator {
 public:
  Generator();
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Queues a job; returns its id. Throws ParameterError for an invalid request.
  uint64_t submit(GenerationRequest request);
  // Cancels the running job (takes effect within one layer) and drops queued ones.
  void cancel();
  // Mode / parameter change for the running job, applied from its next step.
  void set_attention(AttentionSettings settings);
  // Which layer/head/query the running job's heatmap and mask show, applied from its next step.
  void set_inspect(InspectTarget target);
  bool busy() const;
  EventQueue& events() { return events_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  EventQueue events_;
};

}  // namespace longshot::pipeline

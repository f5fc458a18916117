// EventQueue and the Generator's worker thread. The worker takes one job at a time from its
// queue; cancel() raises an atomic flag the model checks before every layer.
#include "engine/pipeline/generator.h"

#include "engine/common/error.h"
#include "engine/common/threads.h"
#include "engine/pipeline/run_job.h"

namespace longshot::pipeline {

void EventQueue::push(Event event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

std::vector<Event> EventQueue::drain() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Event> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

std::optional<Event> EventQueue::wait_pop(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

size_t EventQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_.size();
}

struct Generator::Impl {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::pair<uint64_t, GenerationRequest>> jobs;
  std::optional<AttentionSettings> pending_settings;
  std::optional<InspectTarget> pending_inspect;
  std::atomic<bool> cancel{false};
  std::atomic<bool> running{false};
  bool stop = false;
  uint64_t next_id = 1;
  ModelCache cache;
  std::thread worker;
};

Generator::Generator() : impl_(std::make_unique<Impl>()) {
  impl_->worker = std::thread([this] {
    init_cpu_threads();  // per OS thread with LibTorch's OpenMP backend
    Impl& s = *impl_;
    for (;;) {
      std::pair<uint64_t, GenerationRequest> job;
      {
        std::unique_lock<std::mutex> lock(s.mutex);
        s.cv.wait(lock, [&] { return s.stop || !s.jobs.empty(); });
        if (s.stop) return;
        job = std::move(s.jobs.front());
        s.jobs.pop_front();
        s.pending_settings.reset();
        s.pending_inspect.reset();
        s.cancel = false;
        s.running = true;
      }
      JobContext ctx;
      ctx.job_id = job.first;
      ctx.publish = [this](Event e) { events_.push(std::move(e)); };
      ctx.cancel = &s.cancel;
      ctx.cache = &s.cache;
      ctx.take_settings = [&s]() {
        std::lock_guard<std::mutex> lock(s.mutex);
        auto out = std::move(s.pending_settings);
        s.pending_settings.reset();
        return out;
      };
      ctx.take_inspect = [&s]() {
        std::lock_guard<std::mutex> lock(s.mutex);
        auto out = std::move(s.pending_inspect);
        s.pending_inspect.reset();
        return out;
      };
      run_job(job.second, ctx);
      s.running = false;
    }
  });
}

Generator::~Generator() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
    impl_->jobs.clear();
  }
  impl_->cancel = true;
  impl_->cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

uint64_t Generator::submit(GenerationRequest request) {
  validate_request(request);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const uint64_t id = impl_->next_id++;
  impl_->jobs.emplace_back(id, std::move(request));
  impl_->cv.notify_all();
  return id;
}

void Generator::cancel() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  for (const auto& j : impl_->jobs) events_.push(JobCancelled{j.first, 0});
  impl_->jobs.clear();
  impl_->cancel = true;
}

void Generator::set_attention(AttentionSettings settings) {
  // Validate now so the caller hears about a bad mode, not the job.
  attention::resolve_params(attention::find_policy(settings.mode), settings.params);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->pending_settings = std::move(settings);
}

void Generator::set_inspect(InspectTarget target) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->pending_inspect = target;
}

bool Generator::busy() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->running || !impl_->jobs.empty();
}

}  // namespace longshot::pipeline

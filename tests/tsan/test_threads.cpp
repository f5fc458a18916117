// The threading code under ThreadSanitizer (longshot_tsan_threads, CI's TSan subset): the
// EventQueue with several producers and consumers, the real Generator (submit from several
// threads, cancel while its worker runs, set_attention / set_inspect mid-job, destruction with
// events pending) over the fake job of fake_run_job.cpp, the studio's UI-thread pattern (drain
// once per frame into StudioState, read the shared payloads while the worker goes on using the
// cached mask), and BlockMask's deferred columns and device-copy cache read from many threads.
// Assertions run on the main thread; other threads only record what they saw.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <variant>

#include "engine/attention/block_mask.h"
#include "engine/common/error.h"
#include "engine/pipeline/generator.h"
#include "tests/tsan/fake_job.h"
#include "ui/studio_state.h"

using namespace longshot;
using pipeline::Event;
using pipeline::EventQueue;
using pipeline::Generator;
using pipeline::GenerationRequest;
using pipeline::StepFinished;
using Clock = std::chrono::steady_clock;

namespace {

GenerationRequest request(int steps, const std::string& prompt = "p") {
  GenerationRequest r;
  r.prompt = prompt;
  r.steps = steps;
  r.frames = 2;
  return r;
}

StepFinished tagged(uint64_t producer, int i) {
  StepFinished s;
  s.job_id = producer;
  s.step = i;
  auto h = std::make_shared<pipeline::AttentionHeatmap>();
  h->values.assign(8, static_cast<float>(i));  // written on the producer, read by the consumer
  s.heatmap = std::move(h);
  return s;
}

uint64_t job_of(const Event& e) {
  return std::visit([](const auto& x) { return x.job_id; }, e);
}

// Waits (wait_pop) until `done` says so or `seconds` pass; returns every event seen, in order.
std::vector<Event> collect_until(EventQueue& q, const std::function<bool(const std::vector<Event>&)>& done,
                                 double seconds = 20) {
  std::vector<Event> seen;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (!done(seen) && Clock::now() < end) {
    if (auto e = q.wait_pop(50)) seen.push_back(std::move(*e));
  }
  return seen;
}

template <class E>
size_t count_of(const std::vector<Event>& events) {
  size_t n = 0;
  for (const Event& e : events) n += std::holds_alternative<E>(e);
  return n;
}

}  // namespace

// ---- EventQueue --------------------------------------------------------------------------------

TEST(EventQueueThreads, ManyProducersOneWaitPopConsumerKeepPerProducerOrder) {
  EventQueue q;
  constexpr int kProducers = 4, kEach = 1500;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&q, p] {
      for (int i = 0; i < kEach; ++i) q.push(tagged(static_cast<uint64_t>(p), i));
    });
  std::vector<int> next(kProducers, 0);
  int received = 0;
  bool payload_ok = true;
  while (received < kProducers * kEach) {
    auto e = q.wait_pop(5000);
    ASSERT_TRUE(e.has_value()) << "wait_pop timed out after " << received << " events";
    const auto& s = std::get<StepFinished>(*e);
    ASSERT_EQ(s.step, next[s.job_id]) << "producer " << s.job_id << " out of order";
    ++next[s.job_id];
    payload_ok = payload_ok && s.heatmap->values.front() == static_cast<float>(s.step);
    ++received;
  }
  for (auto& t : producers) t.join();
  EXPECT_TRUE(payload_ok);
  EXPECT_FALSE(q.wait_pop(5).has_value());
  EXPECT_EQ(q.size(), 0u);
}

TEST(EventQueueThreads, DrainAndWaitPopConsumersCompeteWithoutLossOrDuplicates) {
  EventQueue q;
  constexpr int kProducers = 3, kEach = 1500, kTotal = kProducers * kEach;
  std::atomic<int> taken{0};
  std::vector<std::vector<std::pair<uint64_t, int>>> got(2);
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p)
    threads.emplace_back([&q, p] {
      for (int i = 0; i < kEach; ++i) q.push(tagged(static_cast<uint64_t>(p), i));
    });
  threads.emplace_back([&] {  // the UI: drains once per "frame"
    while (taken.load() < kTotal) {
      for (const Event& e : q.drain()) {
        const auto& s = std::get<StepFinished>(e);
        got[0].emplace_back(s.job_id, s.step);
        ++taken;
      }
      std::this_thread::yield();
    }
  });
  threads.emplace_back([&] {  // the CLI: waits for one event at a time
    while (taken.load() < kTotal) {
      if (auto e = q.wait_pop(2)) {
        const auto& s = std::get<StepFinished>(*e);
        got[1].emplace_back(s.job_id, s.step);
        ++taken;
      }
    }
  });
  std::atomic<bool> stop_sizer{false};
  std::thread sizer([&] {  // size() polled from a fourth side
    while (!stop_sizer.load()) (void)q.size();
  });
  for (auto& t : threads) t.join();
  stop_sizer = true;
  sizer.join();
  std::set<std::pair<uint64_t, int>> all;
  for (const auto& g : got)
    for (const auto& k : g) EXPECT_TRUE(all.insert(k).second) << "duplicate " << k.first << "/" << k.second;
  EXPECT_EQ(all.size(), static_cast<size_t>(kTotal));
  EXPECT_TRUE(q.drain().empty());
}

TEST(EventQueueThreads, WaitPopTimesOutThenWakesOnALatePush) {
  EventQueue q;
  std::atomic<bool> go{false};
  std::thread late([&] {
    while (!go.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    q.push(tagged(9, 3));
  });
  const auto t0 = Clock::now();
  EXPECT_FALSE(q.wait_pop(20).has_value());  // nothing yet: times out
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(20));
  go = true;
  const auto t1 = Clock::now();
  auto e = q.wait_pop(30000);  // woken by the push, not by the timeout
  const auto waited = Clock::now() - t1;
  late.join();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(std::get<StepFinished>(*e).step, 3);
  EXPECT_LT(waited, std::chrono::seconds(10));
}

// ---- Generator (real worker loop, fake job) ---------------------------------------------------

TEST(GeneratorThreads, SubmitFromSeveralThreadsRunsEveryJobOnceInOrder) {
  tsan_test::step_sleep_us = 100;
  Generator g;
  constexpr int kThreads = 3, kEach = 4, kSteps = 3;
  std::vector<std::vector<uint64_t>> ids(kThreads);
  std::atomic<bool> stop{false};
  std::thread poller([&] {  // busy() from another thread while jobs are queued, taken and run
    while (!stop.load()) (void)g.busy();
  });
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t)
    submitters.emplace_back([&g, &ids, t] {
      for (int i = 0; i < kEach; ++i) {
        ids[t].push_back(g.submit(request(kSteps)));
        (void)g.busy();  // the studio asks right after Generate
      }
    });
  for (auto& t : submitters) t.join();
  const auto events = collect_until(g.events(), [](const std::vector<Event>& seen) {
    return count_of<pipeline::JobFinished>(seen) == static_cast<size_t>(kThreads * kEach);
  });
  stop = true;
  poller.join();
  std::set<uint64_t> submitted;
  for (const auto& v : ids) submitted.insert(v.begin(), v.end());
  EXPECT_EQ(submitted.size(), static_cast<size_t>(kThreads * kEach)) << "ids must be unique";
  std::map<uint64_t, std::vector<size_t>> per_job;  // event kinds (variant index) per job, in order
  for (const Event& e : events) per_job[job_of(e)].push_back(e.index());
  ASSERT_EQ(per_job.size(), submitted.size());
  const std::vector<size_t> expected = {0, 1, 1, 1, 2, 3};  // started, 3 steps, frames, finished
  for (const auto& [id, kinds] : per_job) {
    EXPECT_TRUE(submitted.count(id)) << "events of job " << id << " nobody submitted";
    EXPECT_EQ(kinds, expected) << "job " << id;
  }
  // Jobs run one at a time in queue order: job ids start in ascending order.
  uint64_t last_started = 0;
  for (const Event& e : events)
    if (const auto* s = std::get_if<pipeline::JobStarted>(&e)) {
      EXPECT_GT(s->job_id, last_started);
      last_started = s->job_id;
    }
  // The worker clears `running` just after the job's last event: idle within moments.
  const auto end = Clock::now() + std::chrono::seconds(10);
  while (g.busy() && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(g.busy());
}

TEST(GeneratorThreads, CancelFromAnotherThreadStopsTheRunningJobAndDropsTheQueue) {
  tsan_test::step_sleep_us = 1000;
  Generator g;
  const uint64_t running = g.submit(request(100000));
  const uint64_t queued_a = g.submit(request(5));
  const uint64_t queued_b = g.submit(request(5));
  auto first = collect_until(g.events(), [](const std::vector<Event>& seen) {
    return count_of<StepFinished>(seen) >= 2;  // the worker is inside the running job
  });
  ASSERT_GE(count_of<StepFinished>(first), 2u);
  std::thread canceller([&g] { g.cancel(); });
  canceller.join();
  auto rest = collect_until(g.events(), [](const std::vector<Event>& seen) {
    return count_of<pipeline::JobCancelled>(seen) == 3;
  });
  std::map<uint64_t, int> cancelled;
  for (const Event& e : rest) {
    EXPECT_FALSE(std::holds_alternative<pipeline::JobFinished>(e));
    if (const auto* c = std::get_if<pipeline::JobCancelled>(&e)) cancelled[c->job_id] = c->completed_steps;
  }
  ASSERT_EQ(cancelled.size(), 3u);
  EXPECT_GT(cancelled[running], 0);
  EXPECT_LT(cancelled[running], 100000);
  EXPECT_EQ(cancelled[queued_a], 0);
  EXPECT_EQ(cancelled[queued_b], 0);
  // The flag is reset for the next job: it runs to the end.
  tsan_test::step_sleep_us = 100;
  const uint64_t after = g.submit(request(2));
  auto next = collect_until(g.events(), [](const std::vector<Event>& seen) {
    return count_of<pipeline::JobFinished>(seen) == 1;
  });
  ASSERT_EQ(count_of<pipeline::JobFinished>(next), 1u);
  EXPECT_EQ(job_of(next.back()), after);
}

TEST(GeneratorThreads, SettingsAndInspectChangesFromOtherThreadsReachTheRunningJob) {
  tsan_test::step_sleep_us = 500;
  Generator g;
  g.submit(request(100000));
  collect_until(g.events(), [](const std::vector<Event>& seen) { return count_of<StepFinished>(seen) >= 1; });
  std::thread a([&g] {
    for (int i = 0; i < 200; ++i) g.set_inspect({i % 2, 1, -1});
    g.set_inspect({1, 1, -1});
  });
  std::thread b([&g] {
    pipeline::AttentionSettings s;
    for (int i = 0; i < 200; ++i) {
      s.mode = i % 2 ? "dense" : "fake-sparse";
      g.set_attention(s);
    }
    s.mode = "fake-sparse";
    g.set_attention(s);
  });
  a.join();
  b.join();
  // A bad mode is refused on the caller's thread, the job untouched.
  pipeline::AttentionSettings bad;
  bad.mode = "no-such-mode";
  EXPECT_THROW(g.set_attention(bad), ParameterError);
  auto seen = collect_until(g.events(), [](const std::vector<Event>& events) {
    for (const Event& e : events)
      if (const auto* s = std::get_if<StepFinished>(&e))
        if (s->mode == "fake-sparse" && s->mask_layer == 1 && s->mask_head == 1) return true;
    return false;
  });
  bool reached = false;
  for (const Event& e : seen)
    if (const auto* s = std::get_if<StepFinished>(&e)) reached = s->mode == "fake-sparse" && s->mask_layer == 1;
  EXPECT_TRUE(reached) << "the last settings and inspect target never reached the job";
  EXPECT_THROW(g.submit(request(0)), ParameterError);
  g.cancel();
}

TEST(GeneratorThreads, DestructionWithARunningJobAndPendingEventsJoinsTheWorker) {
  tsan_test::step_sleep_us = 300;
  const int returned_before = tsan_test::jobs_returned.load();
  pipeline::HeatmapPtr kept_heatmap;
  attention::BlockMaskPtr kept_mask;
  const auto t0 = Clock::now();
  {
    Generator g;
    g.submit(request(100000));
    g.submit(request(3));
    g.submit(request(3, "fail"));
    // A consumer thread holds payloads published by the worker past the Generator's end.
    std::thread consumer([&] {
      const auto end = Clock::now() + std::chrono::seconds(20);
      while (!kept_mask && Clock::now() < end) {
        if (auto e = g.events().wait_pop(50))
          if (const auto* s = std::get_if<StepFinished>(&*e)) {
            kept_heatmap = s->heatmap;
            kept_mask = s->mask;
          }
      }
    });
    consumer.join();
    // Let events pile up unread, then destroy while the job runs and the queue is not empty.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_GT(g.events().size(), 0u);
  }
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(20));
  EXPECT_EQ(tsan_test::jobs_returned.load(), returned_before + 1) << "only the running job ran; queued ones dropped";
  ASSERT_TRUE(kept_heatmap && kept_mask);
  EXPECT_EQ(kept_heatmap->values.size(), 128u);
  EXPECT_EQ(kept_mask->cols().size(), static_cast<size_t>(kept_mask->kept_blocks()));
  // Idle and just-started workers: construction racing destruction.
  for (int i = 0; i < 30; ++i) {
    Generator g;
    if (i % 2) g.submit(request(2));
  }
}

// ---- The studio's UI-thread pattern ------------------------------------------------------------

TEST(StudioStateThreads, UiThreadFoldsDrainedEventsWhileTheWorkerUsesTheCachedMask) {
  tsan_test::step_sleep_us = 200;
  Generator g;
  ui::StudioState state;
  constexpr int kSteps = 40;
  g.submit(request(kSteps));
  g.submit(request(kSteps / 2));
  g.submit(request(2, "fail"));
  uint64_t checksum = 0;
  double sparsity_sum = 0;
  int device_copies_seen = 0;
  const auto end = Clock::now() + std::chrono::seconds(30);
  // The UI thread: drain once per frame, fold, read what the views draw (heatmap values, the
  // mask's columns and its device copy, the preview frame) while the worker keeps going.
  while (Clock::now() < end && (g.busy() || g.events().size() > 0)) {
    state.apply_all(g.events().drain());
    if (const ui::RunRecord* r = state.current()) {
      if (r->heatmap) checksum += static_cast<uint64_t>(r->heatmap->values.back());
      if (r->mask) {
        checksum += r->mask->cols().size();
        device_copies_seen += static_cast<bool>(r->mask->attached_device_copy());
        sparsity_sum += r->mask->block_sparsity();  // reads the offsets
      }
      if (auto f = r->frames()) checksum += f->rgb.front();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  state.apply_all(g.events().drain());
  // The failing job fails before JobStarted (as a model that cannot load does): no run, an error.
  ASSERT_EQ(state.runs().size(), 2u);
  EXPECT_EQ(state.runs()[0].status, ui::RunStatus::Finished);
  EXPECT_EQ(state.runs()[0].steps.size(), static_cast<size_t>(kSteps));
  EXPECT_EQ(state.runs()[1].status, ui::RunStatus::Finished);
  EXPECT_EQ(state.runs()[1].steps.size(), static_cast<size_t>(kSteps / 2));
  EXPECT_EQ(state.take_errors(), std::vector<std::string>{"fake failure"});
  EXPECT_GT(checksum, 0u);
  EXPECT_GE(sparsity_sum, 0.0);
  EXPECT_GT(device_copies_seen, 0);
}

// ---- BlockMask shared between threads ----------------------------------------------------------

TEST(BlockMaskThreads, DeferredColumnsAreFetchedOnceWhoeverReadsFirst) {
  for (int round = 0; round < 20; ++round) {
    auto mask = std::make_shared<attention::BlockMask>(attention::BlockMask::full(256, 32, 2));
    std::vector<int32_t> cols = std::move(mask->col_indices);
    mask->col_indices.clear();
    const auto expected = cols;
    std::atomic<int> fetches{0};
    mask->deferred_cols = std::make_shared<attention::DeferredColumns>(
        [cols, &fetches] {
          ++fetches;
          return cols;
        },
        static_cast<int64_t>(cols.size()));
    const attention::BlockMaskPtr shared = mask;
    std::vector<int> same(4, 0);
    std::vector<std::thread> readers;
    std::atomic<int> ready{0};
    for (int t = 0; t < 4; ++t)
      readers.emplace_back([&shared, &expected, &same, &ready, t] {
        // All four reach cols() together: nothing but DeferredColumns' own lock orders them.
        ++ready;
        while (ready.load() < 4) std::this_thread::yield();
        const bool first = shared->cols() == expected;
        const attention::BlockMask copy = *shared;  // a copy shares the fetch
        same[t] = first && copy.cols() == expected;
      });
    for (auto& t : readers) t.join();
    EXPECT_EQ(fetches.load(), 1) << "round " << round;
    for (int t = 0; t < 4; ++t) EXPECT_EQ(same[t], 1) << "reader " << t;
  }
}

TEST(BlockMaskThreads, DeviceCopyAttachedWhileOtherThreadsLookItUp) {
  const auto mask = std::make_shared<const attention::BlockMask>(attention::BlockMask::full(256, 32, 2));
  std::atomic<bool> stop{false};
  std::vector<int> hits(3, 0);
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t)
    readers.emplace_back([&, t] {
      while (!stop.load()) {
        if (mask->device_copy(0, 2)) ++hits[t];
        const attention::BlockMask copy = *mask;  // copying reads the cache under its lock
        (void)copy.attached_device_copy();
      }
    });
  for (int i = 0; i < 3000; ++i) {
    mask->attach_device_copy(std::make_shared<int>(i), 0, 2);
    if (i % 3 == 0) mask->clear_device_copy();
  }
  mask->attach_device_copy(std::make_shared<int>(-1), 0, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_TRUE(mask->device_copy(0, 2));
  EXPECT_FALSE(mask->device_copy(1, 2)) << "another device must miss";
  int total = 0;
  for (int h : hits) total += h;
  EXPECT_GT(total, 0);
}

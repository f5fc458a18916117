// EventQueue: the hand-off between the worker and the UI thread. Draining returns everything in
// FIFO order without waiting; a concurrent producer loses and duplicates nothing.
#include <gtest/gtest.h>

#include <thread>
#include <variant>

#include "engine/pipeline/generator.h"

using longshot::pipeline::Event;
using longshot::pipeline::EventQueue;
using longshot::pipeline::StepFinished;

namespace {
StepFinished step(int i) {
  StepFinished s;
  s.job_id = 1;
  s.step = i;
  return s;
}
}  // namespace

TEST(EventQueue, DrainReturnsAllInOrderAndEmpties) {
  EventQueue q;
  EXPECT_TRUE(q.drain().empty());
  for (int i = 0; i < 5; ++i) q.push(step(i));
  EXPECT_EQ(q.size(), 5u);
  const auto events = q.drain();
  ASSERT_EQ(events.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(std::get<StepFinished>(events[i]).step, i);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(q.drain().empty());
}

TEST(EventQueue, WaitPopTimesOutWhenEmpty) {
  EventQueue q;
  EXPECT_FALSE(q.wait_pop(5).has_value());
  q.push(step(7));
  const auto e = q.wait_pop(5);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(std::get<StepFinished>(*e).step, 7);
}

TEST(EventQueue, ConcurrentProducerDrainedPerFrameLosesNothing) {
  EventQueue q;
  constexpr int kEvents = 20000;
  std::thread producer([&] {
    for (int i = 0; i < kEvents; ++i) q.push(step(i));
  });
  int expected = 0;
  // The UI's pattern: drain once per "frame" until everything arrived.
  while (expected < kEvents) {
    for (const Event& e : q.drain()) {
      ASSERT_EQ(std::get<StepFinished>(e).step, expected);
      ++expected;
    }
    std::this_thread::yield();
  }
  producer.join();
  EXPECT_EQ(expected, kEvents);
  EXPECT_TRUE(q.drain().empty());
}

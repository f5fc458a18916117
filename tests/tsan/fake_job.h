// The test double behind longshot_tsan_threads: run_job and the few engine calls generator.cpp
// makes, so the real Generator (worker loop, job queue, cancel flag, EventQueue) runs under TSan
// without LibTorch's model. Knows nothing of the tests; the tests steer it through these knobs.
#pragma once
#include <atomic>
#include <cstdint>

namespace longshot::tsan_test {

// How long each fake step sleeps (microseconds): a long job gives cancel() a worker to interrupt.
extern std::atomic<int> step_sleep_us;
// run_job calls that returned (finished, failed or cancelled), and deferred column fetches made
// by the masks the fake publishes (one per mask, whichever thread reads first).
extern std::atomic<int> jobs_returned;
extern std::atomic<int> column_fetches;

// The fake model: 2 layers x 2 heads on a 1x4x32 token grid, block size 32 (4 blocks).
inline constexpr int kLayers = 2, kHeads = 2;
inline constexpr int64_t kSeqLen = 128, kBlock = 32;

}  // namespace longshot::tsan_test

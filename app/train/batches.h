// Training data: batches of on-the-fly procedural clips (engine/data's world), rendered ahead of
// the optimizer on a worker thread. Knows the data room and the options; nothing of the model,
// the loss or the optimiser.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include <torch/types.h>

#include "app/train/trainer.h"
#include "engine/data/tokenizer.h"

namespace longshot::train {

struct Batch {
  torch::Tensor x0;      // [B, 3, T, S, S] in [−1, 1]
  torch::Tensor ids;     // [B, L] int64
  torch::Tensor weight;  // [B, 1, T, S, S] loss weight per pixel: 1 + object_weight · footprint
};

// Samples first .. first + batch − 1 of the run; sample i is clip mix(seed, i), so the data stream
// is the same after a resume. `threads` plain threads render it.
Batch make_batch(int64_t first, const TrainOptions& o, const data::Tokenizer& tok, int64_t text_len, int threads);

// Produces batches ahead of the optimizer on its own thread (rendering is CPU work, the step may
// be GPU work). The destructor stops and joins it.
class Prefetcher {
 public:
  Prefetcher(const TrainOptions& o, int64_t first_sample, int64_t text_len);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  // The next batch; rethrows the worker's exception when it failed.
  Batch pop();
  // Seconds the optimizer waited for data, and seconds spent rendering, since the last call.
  std::pair<double, double> take_times();

 private:
  void run();

  const TrainOptions o_;
  const int render_threads_;
  int64_t next_;
  int64_t len_;
  data::Tokenizer tok_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  double wait_s_ = 0.0, render_s_ = 0.0;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace longshot::train

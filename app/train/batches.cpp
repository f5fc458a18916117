// Training data: clips rendered on plain threads, a prefetching worker. See batches.h.
#include "app/train/batches.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "engine/data/world.h"

namespace longshot::train {

namespace {

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

Batch make_batch(int64_t first, const TrainOptions& o, const data::Tokenizer& tok, int64_t text_len, int threads) {
  Batch b;
  b.x0 = torch::empty({o.batch, 3, o.frames, o.size, o.size});
  b.ids = torch::empty({o.batch, text_len}, torch::kInt64);
  b.weight = torch::empty({o.batch, 1, o.frames, o.size, o.size});
  // Plain threads, clip i on thread i mod n: at::parallel_for ran serially on this (non-main)
  // thread with the GPU LibTorch's OpenMP backend, which starved the GPU (72% data wait).
  auto render = [&](int64_t begin, int64_t stride) {
    for (int64_t i = begin; i < o.batch; i += stride) {
      const uint64_t seed = mix(o.seed, static_cast<uint64_t>(first + i));
      const data::Clip clip = data::generate_clip(seed, o.frames, o.size, o.size);
      b.x0[i].copy_(data::video_to_tensor(clip.video));
      b.weight[i][0].copy_(data::object_footprint(clip.spec, clip.trajectory, o.size, o.size, o.object_margin)
                               .mul_(o.object_weight)
                               .add_(1.0));
      const bool drop = static_cast<double>(mix(seed, 7) % 10000) < o.cfg_drop * 10000.0;
      const auto ids = tok.encode(drop ? std::string() : clip.caption, text_len);
      std::copy(ids.begin(), ids.end(), b.ids[i].data_ptr<int64_t>());
    }
  };
  const int64_t n = std::clamp<int64_t>(threads, 1, o.batch);
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  for (int64_t t = 1; t < n; ++t) {
    pool.emplace_back([&, t] {
      try {
        render(t, n);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    });
  }
  try {
    render(0, n);
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return b;
}

Prefetcher::Prefetcher(const TrainOptions& o, int64_t first_sample, int64_t text_len)
    : o_(o),
      // Every core but one (the optimizer's) renders; --threads overrides.
      render_threads_(o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1)),
      next_(first_sample),
      len_(text_len) {
  worker_ = std::thread([this] { run(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

Batch Prefetcher::pop() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto t0 = std::chrono::steady_clock::now();
  cv_.wait(lock, [&] { return !queue_.empty() || error_; });
  wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (queue_.empty()) std::rethrow_exception(error_);
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  cv_.notify_all();
  return b;
}

std::pair<double, double> Prefetcher::take_times() {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto t = std::make_pair(wait_s_, render_s_);
  wait_s_ = render_s_ = 0.0;
  return t;
}

void Prefetcher::run() {
  try {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || queue_.size() < 4; });
        if (stop_) return;
      }
      const auto t0 = std::chrono::steady_clock::now();
      Batch b = make_batch(next_, o_, tok_, len_, render_threads_);
      next_ += o_.batch;
      std::lock_guard<std::mutex> lock(mutex_);
      render_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      queue_.push_back(std::move(b));
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
    cv_.notify_all();
  }
}

}  // namespace longshot::train

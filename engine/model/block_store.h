// Where the DiT blocks' weights live between uses and how they reach the compute device (issue 20's
// memory plan). fp8 linear weights (ComfyUI's fp8_e4m3fn files) stay as their bits, 1 byte a
// weight, and are up-cast (scale applied) one block at a time when the block runs; with offload,
// every tensor of every block stays in host memory (pinned when the compute device is a GPU) and is
// copied to the GPU one block ahead on a side stream, then dropped once the block has run.
// Model room: tensors and CUDA streams only — no file format, no pipeline, no UI.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace longshot::model {

class BlockStore {
 public:
  // How a parameter is stored: its float values, or fp8 bits (kByte) to decode.
  enum class Form { Float, E4M3, E5M2 };

  BlockStore();
  ~BlockStore();
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  // From now on `param` (a parameter of block `block`, shared handle) holds `stored` between uses.
  // `name`: its name inside the block ("self_attn.q.weight"), for acquire's filter and messages.
  // fp8: `stored` is kByte with the parameter's shape; the value is decode(bits) × scale.
  void add(int64_t block, const std::string& name, torch::Tensor param, torch::Tensor stored, Form form,
           float scale = 1.f);
  bool holds(const torch::Tensor& param) const;
  bool empty() const { return count_ == 0; }
  int64_t fp8_tensors() const;
  // Bytes of every stored tensor (fp8: 1 a weight).
  int64_t stored_bytes() const;

  // Where the blocks compute (device, dtype), and whether the stored tensors live in host memory
  // (offload) or on that device. Moves every stored tensor there (host memory is pinned when the
  // device is CUDA) and puts it back into its parameter.
  void place(const torch::Device& device, torch::ScalarType dtype, bool offload);
  bool offload() const { return offload_; }
  const torch::Device& device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }

  // Block `block`'s tensors whose names start with one of `only` (all when empty) in their compute
  // form (device, dtype) in the parameters until release(block). Uses the prefetched copy when
  // prefetch() was asked for the same block and filter. ParameterError with autograd on: stored
  // weights serve inference only.
  void acquire(int64_t block, const std::vector<std::string>& only = {});
  // With offload on a CUDA device: starts block `block`'s copy on the side stream (an event orders
  // its use after the copy). Elsewhere nothing: acquire builds the tensors when asked.
  void prefetch(int64_t block, const std::vector<std::string>& only = {});
  // The parameters hold their stored tensors again; the compute copies are freed (the caching
  // allocator keeps a GPU block until the work queued on it is done).
  void release(int64_t block);
  // acquire() calls that built tensors, and those that used a prefetched copy (tests, benchmarks).
  int64_t built() const { return built_; }
  int64_t prefetched() const { return prefetched_; }
  int64_t placements() const { return placements_; }  // place() calls: one per load, not per block

 private:
  struct Entry {
    std::string name;
    torch::Tensor param, stored, table;  // table: fp8 lookup (values × scale) on the device
    Form form = Form::Float;
    float scale = 1.f;
    bool in_use = false;
  };
  struct Pending;  // a prefetch in flight (CUDA only)

  std::vector<size_t> select(int64_t block, const std::vector<std::string>& only) const;
  torch::Tensor compute_form(const Entry& e) const;
  void drop_pending();

  std::vector<std::vector<Entry>> blocks_;
  int64_t count_ = 0;
  torch::Device device_ = torch::kCPU;
  torch::ScalarType dtype_ = torch::kFloat;
  bool offload_ = false;
  std::unique_ptr<Pending> pending_;
  int64_t built_ = 0, prefetched_ = 0, placements_ = 0;
};

}  // namespace longshot::model

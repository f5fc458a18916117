// BlockStore (block_store.h). Sections: [entries] · [placement] · [use: acquire, prefetch, release]
//
// A parameter keeps its identity (the module's handle) while its data changes: set_data() points it
// at the compute copy for the block's run and back at the stored tensor afterwards, so the model's
// code reads its weights as usual and caches keyed on the stored tensors (TextKVCache) stay valid.
#include "engine/model/block_store.h"

#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/io/fp8.h"

// Only a CUDA LibTorch has usable c10/cuda headers (see engine/common/cuda_memory.cpp).
#if defined(LONGSHOT_TORCH_CUDA) && LONGSHOT_TORCH_CUDA
#include <c10/core/Event.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define LONGSHOT_BLOCK_STREAMS 1
#endif

namespace longshot::model {

// A prefetch in flight: the block's compute copies, made on the side stream, and the event the
// compute stream waits on before it reads them.
struct BlockStore::Pending {
  int64_t block = -1;
  std::vector<std::string> only;
  std::vector<torch::Tensor> tensors;  // one per select(block, only) entry, in that order
#ifdef LONGSHOT_BLOCK_STREAMS
  // c10::Event (device-generic, the same API in LibTorch 1.x and 2.x) rather than CUDAEvent,
  // whose header moved between versions.
  c10::Event ready{c10::DeviceType::CUDA};
#endif
};

BlockStore::BlockStore() = default;
BlockStore::~BlockStore() = default;

// ---- [entries] ----------------------------------------------------------------------------------

void BlockStore::add(int64_t block, const std::string& name, torch::Tensor param, torch::Tensor stored, Form form,
                     float scale) {
  if (block < 0) throw ShapeError("block store: block index " + std::to_string(block) + " for '" + name + "'");
  if (form != Form::Float && (stored.scalar_type() != torch::kByte || stored.sizes() != param.sizes()))
    throw ShapeError("block " + std::to_string(block) + ": fp8 tensor '" + name + "' must be uint8 bits shaped " +
                     c10::str(param.sizes()) + ", got " + c10::toString(stored.scalar_type()) + " " +
                     c10::str(stored.sizes()));
  if (holds(param)) throw ShapeError("block " + std::to_string(block) + ": '" + name + "' is stored twice");
  if (size_t(block) >= blocks_.size()) blocks_.resize(size_t(block) + 1);
  torch::NoGradGuard no_grad;
  c10::InferenceMode normal_tensors(false);
  Entry e;
  e.name = name;
  e.param = std::move(param);
  e.stored = std::move(stored);
  e.form = form;
  e.scale = scale;
  if (form != Form::Float) e.table = io::fp8_lookup(form == Form::E5M2, scale, dtype_, device_);
  // Stored weights serve inference only (acquire refuses autograd), and a parameter that requires
  // grad may not hold the uint8 bits.
  e.param.set_requires_grad(false);
  e.param.set_data(e.stored);
  blocks_[size_t(block)].push_back(std::move(e));
  ++count_;
}

bool BlockStore::holds(const torch::Tensor& param) const {
  for (const auto& b : blocks_)
    for (const auto& e : b)
      if (e.param.is_same(param)) return true;
  return false;
}

int64_t BlockStore::fp8_tensors() const {
  int64_t n = 0;
  for (const auto& b : blocks_)
    for (const auto& e : b) n += e.form != Form::Float;
  return n;
}

int64_t BlockStore::stored_bytes() const {
  int64_t n = 0;
  for (const auto& b : blocks_)
    for (const auto& e : b) n += int64_t(e.stored.nbytes());
  return n;
}

// ---- [placement] --------------------------------------------------------------------------------

namespace {

// Each stored tensor's slot in the pinned arena starts on a 256-byte boundary (any dtype's view).
int64_t aligned(int64_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

void BlockStore::place(const torch::Device& device, torch::ScalarType dtype, bool offload) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16 && dtype != torch::kHalf)
    throw ParameterError("dtype", std::string("the DiT's blocks compute in float32, bfloat16 or float16, not ") +
                                      c10::toString(dtype));
  drop_pending();
  torch::NoGradGuard no_grad;
  c10::InferenceMode normal_tensors(false);
  device_ = device;
  dtype_ = dtype;
  offload_ = offload;
  ++placements_;
  // Offloaded copies only overlap the compute from pinned pages (pageable ones copy synchronously).
  // One pinned arena holds them all: LibTorch's pinned allocator rounds every allocation up to a
  // power of two, which per tensor would cost up to twice the weights in host memory.
  torch::Tensor arena;
  int64_t offset = 0;
  if (offload && device.is_cuda()) {
    int64_t total = 0;
    for (const auto& b : blocks_)
      for (const auto& e : b)
        total += aligned(e.stored.numel() * int64_t(e.form == Form::Float ? c10::elementSize(dtype) : 1));
    arena = torch::empty({total}, torch::TensorOptions().dtype(torch::kByte).pinned_memory(true));
  }
  for (auto& b : blocks_) {
    for (auto& e : b) {
      auto t = e.form == Form::Float ? e.stored.to(dtype) : e.stored;
      if (arena.defined()) {
        const int64_t bytes = t.numel() * int64_t(t.element_size());
        auto slot = arena.narrow(0, offset, bytes).view(t.scalar_type()).view(t.sizes());
        slot.copy_(t);
        offset += aligned(bytes);
        t = slot;
      } else {
        t = offload ? t.to(torch::kCPU) : t.to(device);
      }
      e.stored = t;
      if (e.form != Form::Float) e.table = io::fp8_lookup(e.form == Form::E5M2, e.scale, dtype, device);
      if (!e.in_use) e.param.set_data(e.stored);
    }
  }
}

// ---- [use: acquire, prefetch, release] ----------------------------------------------------------

std::vector<size_t> BlockStore::select(int64_t block, const std::vector<std::string>& only) const {
  std::vector<size_t> out;
  if (block < 0 || size_t(block) >= blocks_.size()) return out;
  const auto& b = blocks_[size_t(block)];
  for (size_t i = 0; i < b.size(); ++i) {
    bool take = only.empty();
    for (const auto& prefix : only) take = take || b[i].name.rfind(prefix, 0) == 0;
    if (take) out.push_back(i);
  }
  return out;
}

// The entry's values on the compute device in the compute dtype. From pinned pages the copy is
// asynchronous on the current stream; stored tensors already there in that dtype are used as they are.
torch::Tensor BlockStore::compute_form(const Entry& e) const {
  if (e.form == Form::Float) return e.stored.to(device_, dtype_, /*non_blocking=*/true);
  return io::decode_fp8_with(e.stored.to(device_, torch::kByte, /*non_blocking=*/true), e.table);
}

void BlockStore::acquire(int64_t block, const std::vector<std::string>& only) {
  const auto idx = select(block, only);
  if (idx.empty()) return;
  if (torch::GradMode::is_enabled())
    throw ParameterError("DiT weights", "fp8 or offloaded block weights serve inference only (autograd is on)");
  torch::NoGradGuard no_grad;
  c10::InferenceMode normal_tensors(false);  // parameters cannot take an inference tensor's data
  auto& b = blocks_[size_t(block)];
  std::vector<torch::Tensor> ready;
  if (pending_ && pending_->block == block && pending_->only == only) {
#ifdef LONGSHOT_BLOCK_STREAMS
    // The compute stream waits for the copy; each copy is marked as used by it, so the caching
    // allocator does not hand its memory to the side stream's next copy before the block has run.
    const auto compute = c10::cuda::getCurrentCUDAStream(device_.index());
    pending_->ready.block(compute);
    for (auto& t : pending_->tensors) t.record_stream(compute);
#endif
    ready = std::move(pending_->tensors);
    pending_.reset();
    ++prefetched_;
  } else {
    drop_pending();
    for (size_t i : idx) ready.push_back(compute_form(b[i]));
    ++built_;
  }
  for (size_t k = 0; k < idx.size(); ++k) {
    auto& e = b[idx[k]];
    e.param.set_data(ready[k]);
    e.in_use = true;
  }
}

void BlockStore::prefetch(int64_t block, const std::vector<std::string>& only) {
#ifdef LONGSHOT_BLOCK_STREAMS
  if (!offload_ || !device_.is_cuda()) return;
  const auto idx = select(block, only);
  if (idx.empty()) return;
  drop_pending();
  torch::NoGradGuard no_grad;
  c10::InferenceMode normal_tensors(false);
  auto p = std::make_unique<Pending>();
  p->block = block;
  p->only = only;
  const auto side = c10::cuda::getStreamFromPool(false, device_.index());
  {
    // The side stream starts after what the compute stream has queued so far (the previous
    // block's kernels; the lookup tables place() copied): the copy of this block then overlaps
    // the block that is about to compute, and at most two blocks are on the device at once.
    c10::Event queued(c10::DeviceType::CUDA);
    queued.record(c10::cuda::getCurrentCUDAStream(device_.index()));
    queued.block(side);
    // Copies (and fp8 decodes) run on the side stream.
    c10::cuda::CUDAStreamGuard on_side(side);
    for (size_t i : idx) p->tensors.push_back(compute_form(blocks_[size_t(block)][i]));
    p->ready.record(side);
  }
  pending_ = std::move(p);
#else
  (void)block, (void)only;
#endif
}

void BlockStore::release(int64_t block) {
  if (block < 0 || size_t(block) >= blocks_.size()) return;
  torch::NoGradGuard no_grad;
  c10::InferenceMode normal_tensors(false);
  for (auto& e : blocks_[size_t(block)]) {
    if (!e.in_use) continue;
    e.param.set_data(e.stored);
    e.in_use = false;
  }
}

void BlockStore::drop_pending() {
  // Unused copies were made and are freed on the side stream alone: nothing else waits on them.
  pending_.reset();
}

}  // namespace longshot::model

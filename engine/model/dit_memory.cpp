// WanDiT's memory plan (dit.h, block_store.h): placing the model with or without offload, and the
// per-block use of stored weights that forward() and the text K/V pass go through.
#include <spdlog/spdlog.h>

#include "engine/common/error.h"
#include "engine/model/block_store.h"
#include "engine/model/dit.h"

namespace longshot::model {

BlockStore& WanDiTImpl::block_store() {
  if (!store_) store_ = std::make_shared<BlockStore>();
  return *store_;
}

const BlockStore* WanDiTImpl::stored_blocks() const { return store_ && !store_->empty() ? store_.get() : nullptr; }

bool WanDiTImpl::has_stored_blocks() const { return stored_blocks() != nullptr; }

void WanDiTImpl::place(const torch::Device& device, torch::ScalarType dtype, bool offload) {
  if (!offload && !has_stored_blocks()) {
    to(device, dtype);
    return;
  }
  torch::NoGradGuard no_grad;
  c10::InferenceMode normal_tensors(false);
  auto& store = block_store();
  for (size_t l = 0; l < blocks->size(); ++l) {
    for (auto& item : blocks[l]->named_parameters()) {
      if (store.holds(item.value())) continue;
      // Offload: every block tensor joins the store; its current data becomes the stored copy.
      if (offload) store.add(int64_t(l), item.key(), item.value(), item.value().detach(), BlockStore::Form::Float);
    }
  }
  // Everything outside the store (embeddings, head; the blocks' norms and biases when only fp8
  // weights are stored) goes to the device as Module::to would move it.
  for (auto& p : parameters()) {
    if (store.holds(p)) continue;
    p.set_data(p.to(device, dtype));
  }
  for (auto& b : buffers()) b.set_data(b.is_floating_point() ? b.to(device, dtype) : b.to(device));
  // The device as the tensors report it ("cuda" becomes "cuda:0"): BlockInUse compares the two.
  store.place(patch_embedding->weight.device(), dtype, offload);
  linears_.clear();  // their tied buffers belonged to the old placement
  text_cache_.clear();
}

WanDiTImpl::BlockInUse::BlockInUse(WanDiTImpl& model, int64_t layer, std::vector<std::string> only)
    : model_(model), layer_(layer) {
  if (!model.has_stored_blocks()) return;
  auto& store = *model.store_;
  // The model may have moved since the store was placed (load_weights, then Module::to): follow it.
  const auto& anchor = model.patch_embedding->weight;  // a tensor's device always has its index
  if (store.device() != anchor.device() || store.dtype() != anchor.scalar_type())
    store.place(anchor.device(), anchor.scalar_type(), store.offload());
  store.acquire(layer, only);
  active_ = true;
  // The next block's copy starts now, on the side stream, while this one computes.
  try {
    if (layer + 1 < int64_t(model.blocks->size())) store.prefetch(layer + 1, only);
  } catch (...) {
    store.release(layer);  // the destructor of a half-built guard does not run
    throw;
  }
}

WanDiTImpl::BlockInUse::~BlockInUse() {
  if (!active_) return;
  try {
    model_.store_->release(layer_);
    // The tied buffers hold this block's compute copies: they go with the block.
    auto& lin = model_.linears(layer_);
    for (auto* f : {&lin.self_qkv, &lin.self_o, &lin.cross_q, &lin.cross_kv, &lin.cross_o, &lin.ffn_up, &lin.ffn_down})
      f->drop();
  } catch (const std::exception& e) {
    spdlog::error("DiT block {}: releasing its weights failed: {}", layer_, e.what());
  }
}

}  // namespace longshot::model

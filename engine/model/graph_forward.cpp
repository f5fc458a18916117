// GraphForward (graph_forward.h). Sections: [refusal] · [masks and keys] · [GraphForward]
//
// What a capture must not meet, and how the forward avoids it here: host copies from pageable
// memory (RoPE tables and position planes come from the model's device_constant cache, filled by
// the warm-up forward), host syncs (measure_time off in the captured plan; probes refused), masks
// built or uploaded per call (the step's masks are built before the capture and handed to the
// forward by FixedMasks; the warm-up uploads their device copies, the graph reads those), and the
// text K/V cache (the graph's text buffer is an inference tensor, which the cache skips, so the
// K/V are computed inside the graph from whatever text the buffer holds at replay).
#include "engine/model/graph_forward.h"

#include <set>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "engine/common/error.h"

#if LONGSHOT_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/cuda.h>
#define LONGSHOT_CUDA_GRAPHS 1
#endif

namespace longshot::model {

// ---- [refusal] ----------------------------------------------------------------------------------

bool cuda_graphs_supported() {
#ifdef LONGSHOT_CUDA_GRAPHS
  return true;
#else
  return false;
#endif
}

std::string cuda_graph_refusal(const WanDiTImpl& dit, const torch::Tensor& latents, const AttentionPlan& plan,
                               const AttentionProbe& probe) {
  // What the forward is asked first (testable anywhere), then what this build and device allow.
  if (torch::GradMode::is_enabled() || plan.differentiable) return "autograd is on";
  if (probe.layer >= 0 || probe.keep_masks || probe.on_qkv)
    return "a probe reads this forward's tensors on the host (inspected layer, recorded masks or a Q/K hook)";
  if (dit.op_marker) return "an op marker times each op";
  if (dit.has_stored_blocks()) return "block weights are stored (fp8 or offloaded) and come to the device per block";
  if (dit.linear_precision() != LinearPrecision::Native) return "fp8 linear layers are not verified under capture";
  if (plan.use_adapter && dit.adapter) return "the mask adapter is not verified under capture";
  const bool sparse_step = plan.policy && !plan.dense_step;
  if (sparse_step && plan.policy->needs_qk())
    return "mode '" + plan.policy->name() +
           "' builds its masks from each step's Q/K (scored on the GPU, sizes read back on the host)";
  if (sparse_step && plan.policy->ordering() != attention::OrderingKind::Raster)
    return "mode '" + plan.policy->name() + "' permutes the tokens";
  if (!cuda_graphs_supported()) return "this build's LibTorch has no CUDA";
  if (!latents.defined() || !latents.is_cuda()) return "the latents are not on a CUDA device";
  if (latents.dim() != 5) return "the latents are not [B, C, F, H, W]";
  return "";
}

// ---- [masks and keys] ---------------------------------------------------------------------------

namespace {

// Hands every layer the mask built for it before the capture: the warm-up attaches their device
// copies, the capture reads them, so no mask is built or uploaded inside the graph.
class FixedMasks : public attention::MaskPolicy {
 public:
  FixedMasks(const attention::MaskPolicy* inner, std::vector<attention::BlockMaskPtr> masks)
      : name_(inner ? inner->name() : "dense"), params_(inner ? inner->params() : attention::ParamValues{}),
        masks_(std::move(masks)) {}
  std::string name() const override { return name_; }
  attention::BlockMaskPtr build(const attention::MaskRequest& r) override {
    if (r.layer < 0 || size_t(r.layer) >= masks_.size() || !masks_[size_t(r.layer)])
      throw ShapeError("cuda graphs: no mask was built for layer " + std::to_string(r.layer));
    return masks_[size_t(r.layer)];
  }
  attention::ParamValues params() const override { return params_; }
  bool last_mask_cached() const override { return true; }

 private:
  std::string name_;
  attention::ParamValues params_;
  std::vector<attention::BlockMaskPtr> masks_;
};

// The masks the eager forward would build at this step (null for its dense layers), with the
// same request (layer_mask_request) minus Q/K, which cuda_graph_refusal made sure no mode reads.
[[maybe_unused]] std::vector<attention::BlockMaskPtr> step_masks(const WanDiTImpl& dit, const AttentionPlan& plan,
                                                const attention::TokenGrid& grid, const torch::Device& device) {
  const auto& c = dit.config();
  std::vector<attention::BlockMaskPtr> masks(size_t(c.num_layers));
  if (!plan.policy || plan.dense_step) return masks;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (l < plan.dense_first_layers || l >= c.num_layers - plan.dense_last_layers) continue;
    auto mask = plan.policy->build(layer_mask_request(plan, c, int(l), grid, device));
    if (!mask)
      throw ShapeError("mode '" + plan.policy->name() + "' returned no mask for layer " + std::to_string(l));
    masks[size_t(l)] = std::move(mask);
  }
  return masks;
}

// Equal masks select the same blocks: one pointer (a policy's cache), else the same arrays.
bool same_mask(const attention::BlockMaskPtr& a, const attention::BlockMaskPtr& b) {
  if (a == b) return true;
  if (!a || !b) return false;
  return a->seq_len == b->seq_len && a->block_size == b->block_size && a->num_heads == b->num_heads &&
         a->num_q_blocks == b->num_q_blocks && a->num_k_blocks == b->num_k_blocks && a->ordering == b->ordering &&
         a->row_offsets == b->row_offsets && a->cols() == b->cols();
}

std::string describe(const torch::Tensor& t) {
  return std::string(c10::str(t.sizes())) + c10::toString(t.scalar_type()) + t.device().str();
}

// Shapes, dtypes and the plan's settings (the masks are compared on their own), plus where the
// weights live: a graph reads them by address, so a moved model never matches an old graph.
[[maybe_unused]] std::string graph_key(const WanDiTImpl& dit, const torch::Tensor& latents, const torch::Tensor& timesteps,
                      const torch::Tensor& text, const AttentionPlan& plan) {
  std::string key = describe(latents) + "|" + describe(timesteps) + "|" + describe(text);
  key += "|" + std::to_string(plan.riflex) + std::to_string(plan.dense_step) + " " +
         std::to_string(plan.dense_first_layers) + " " + std::to_string(plan.dense_last_layers) + " " +
         std::to_string(plan.block_size) + " " + std::to_string(int(plan.backend));
  key += "|" + std::to_string(reinterpret_cast<uintptr_t>(dit.patch_embedding->weight.data_ptr()));
  return key;
}

}  // namespace

// ---- [GraphForward] -----------------------------------------------------------------------------

struct GraphForward::Impl {
  struct Entry {
    std::string key;
    std::vector<attention::BlockMaskPtr> masks;  // kept alive: the graph reads their device copies
    torch::Tensor x, t, text, out;               // static inputs and output
    AttentionStats stats;
    std::vector<torch::Tensor> constants;        // the model's RoPE tables / planes the graph reads
#ifdef LONGSHOT_CUDA_GRAPHS
    std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
  };

  WanDiT dit;
  int max_graphs;
  std::vector<std::unique_ptr<Entry>> entries;
  std::set<std::string> failed;  // keys whose capture threw: eager from then on
  std::set<std::string> logged;  // eager reasons already logged
  bool last_replayed = false;
  std::string last_reason;
  int captures = 0, replays = 0;
#ifdef LONGSHOT_CUDA_GRAPHS
  decltype(at::cuda::graph_pool_handle()) pool{};
  bool has_pool = false;
#endif

  Impl(WanDiT d, int max) : dit(std::move(d)), max_graphs(max) {}

  DiTOutput eager(const std::string& why, const torch::Tensor& latents, const torch::Tensor& timesteps,
                  const torch::Tensor& text, const AttentionPlan& plan, const AttentionProbe& probe) {
    last_replayed = false;
    last_reason = why;
    if (logged.insert(why).second) spdlog::info("cuda graphs: eager forward: {}", why);
    return dit->forward_with_stats(latents, timesteps, text, plan, probe);
  }

  Entry* find(const std::string& key, const std::vector<attention::BlockMaskPtr>& masks) {
    for (auto& e : entries) {
      if (e->key != key || e->masks.size() != masks.size()) continue;
      bool same = true;
      for (size_t l = 0; l < masks.size() && same; ++l) same = same_mask(e->masks[l], masks[l]);
      if (same) return e.get();
    }
    return nullptr;
  }

#ifdef LONGSHOT_CUDA_GRAPHS
  static void copy_inputs(Entry& e, const torch::Tensor& latents, const torch::Tensor& timesteps,
                          const torch::Tensor& text) {
    e.x.copy_(latents);
    e.t.copy_(timesteps);
    const c10::InferenceMode inference;  // e.text is an inference tensor (see the file comment)
    e.text.copy_(text);
  }

  // Static buffers, one eager warm-up forward on a side stream, then the capture on it.
  std::unique_ptr<Entry> capture(std::string key, std::vector<attention::BlockMaskPtr> masks,
                                 const AttentionPlan& plan, const torch::Tensor& latents,
                                 const torch::Tensor& timesteps, const torch::Tensor& text) {
    auto e = std::make_unique<Entry>();
    e->key = std::move(key);
    e->masks = std::move(masks);
    const auto device = latents.device();
    e->x = torch::empty(latents.sizes(), latents.options());
    e->t = torch::empty(timesteps.sizes(), timesteps.options().device(device));
    {
      const c10::InferenceMode inference;
      e->text = torch::empty(text.sizes(), text.options().device(device));
    }
    copy_inputs(*e, latents, timesteps, text);
    torch::cuda::synchronize(device.index());  // the side stream reads what the current one wrote
    auto side = c10::cuda::getStreamFromPool(false, device.index());
    {
      const c10::cuda::CUDAStreamGuard on_side(side);
      dit->forward_with_stats(e->x, e->t, e->text, plan);  // caches, mask uploads, library handles
      side.synchronize();
      // The warm-up's activations stay cached for the side stream, which nothing uses again; give
      // them back before the graph takes its own pool (else a long video holds both).
      c10::cuda::CUDACachingAllocator::emptyCache();
      if (!has_pool) pool = at::cuda::graph_pool_handle(), has_pool = true;
      e->graph = std::make_unique<at::cuda::CUDAGraph>();
      e->graph->capture_begin(pool);
      try {
        auto out = dit->forward_with_stats(e->x, e->t, e->text, plan);
        e->graph->capture_end();
        e->out = out.velocity;
        e->stats = std::move(out.stats);
      } catch (...) {
        try {
          e->graph->capture_end();  // leave the stream usable, whatever broke the capture
        } catch (...) {
        }
        cudaGetLastError();
        throw;
      }
    }
    torch::cuda::synchronize(device.index());
    e->constants = dit->device_constants();
    e->stats.attention_ms = e->stats.mask_ms = 0;
    return e;
  }
#endif
};

GraphForward::GraphForward(WanDiT dit, int max_graphs) : impl_(std::make_unique<Impl>(std::move(dit), max_graphs)) {
  if (max_graphs < 1) throw ParameterError("max_graphs", "must be at least 1, got " + std::to_string(max_graphs));
}

GraphForward::~GraphForward() = default;

bool GraphForward::last_replayed() const { return impl_->last_replayed; }
const std::string& GraphForward::last_eager_reason() const { return impl_->last_reason; }
int GraphForward::captures() const { return impl_->captures; }
int GraphForward::replays() const { return impl_->replays; }

void GraphForward::clear() {
  impl_->entries.clear();
  impl_->failed.clear();
}

DiTOutput GraphForward::forward_with_stats(const torch::Tensor& latents, const torch::Tensor& timesteps,
                                           const torch::Tensor& text_emb, const AttentionPlan& plan,
                                           const AttentionProbe& probe) {
  auto& m = *impl_;
  const auto why = cuda_graph_refusal(*m.dit, latents, plan, probe);
  if (!why.empty()) return m.eager(why, latents, timesteps, text_emb, plan, probe);
#ifdef LONGSHOT_CUDA_GRAPHS
  const c10::cuda::CUDAGuard device_guard(latents.device());
  const auto grid = m.dit->token_grid(latents.size(2), latents.size(3), latents.size(4));
  auto masks = step_masks(*m.dit, plan, grid, latents.device());
  // The step's masks are built: the eager fallbacks below run with them too (no second build).
  FixedMasks fixed(plan.policy, masks);
  AttentionPlan fixed_plan = plan;
  if (plan.policy) fixed_plan.policy = &fixed;
  const auto key = graph_key(*m.dit, latents, timesteps, text_emb, plan);
  auto* entry = m.find(key, masks);
  if (!entry) {
    if (m.failed.count(key)) return m.eager("its capture failed before", latents, timesteps, text_emb, fixed_plan, probe);
    if (int(m.entries.size()) >= m.max_graphs)
      return m.eager("the shapes or masks changed again after " + std::to_string(m.max_graphs) +
                         " captured graphs (a mode whose masks change every step)",
                     latents, timesteps, text_emb, fixed_plan, probe);
    AttentionPlan captured = fixed_plan;
    captured.measure_time = false;  // no host syncs inside a capture
    captured.cancel = nullptr;      // checked before each replay instead
    try {
      m.entries.push_back(m.capture(key, masks, captured, latents, timesteps, text_emb));
    } catch (const std::exception& e) {
      m.failed.insert(key);
      spdlog::warn("cuda graphs: capture failed ({}), this key runs eagerly", e.what());
      return m.eager(std::string("capture failed: ") + e.what(), latents, timesteps, text_emb, fixed_plan, probe);
    }
    ++m.captures;
    entry = m.entries.back().get();
  }
  if (plan.cancel && plan.cancel->load()) throw Cancelled();
  Impl::copy_inputs(*entry, latents, timesteps, text_emb);
  entry->graph->replay();
  ++m.replays;
  m.last_replayed = true;
  m.last_reason.clear();
  DiTOutput out;
  out.velocity = entry->out.clone();  // the next replay overwrites the static output
  out.stats = entry->stats;
  return out;
#else
  return m.eager("this build's LibTorch has no CUDA", latents, timesteps, text_emb, plan, probe);
#endif
}

}  // namespace longshot::model

// The Wan2.1 text-to-video DiT as a LibTorch module: patch embedding, time/text embeddings,
// blocks (modulated self-attention with RMSNorm q/k and 3D RoPE, cross-attention, GELU FFN),
// head and unpatchify. Every attention is one attention::attend() call (attend.h picks the
// backend); self-attention's mask comes from a MaskPolicy per call.
// Model room: knows the attention core, not the sampler, the pipeline or any UI.
//
// Sections: [attention: plan, probe, stats] what a forward is asked and what it returns ·
//           [WanDiT] the module · [helpers] RoPE / time embedding / weights init
#pragma once
#include <atomic>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "engine/attention/attention.h"
#include "engine/attention/mask_policy.h"
#include "engine/model/dit_config.h"
#include "engine/model/mask_adapter.h"
#include "engine/model/projections.h"

namespace longshot::model {

class BlockStore;  // block_store.h: fp8 and offloaded block weights

// Thrown from inside forward() when AttentionPlan::cancel is set (checked before every layer).
struct Cancelled : std::exception {
  const char* what() const noexcept override { return "generation cancelled"; }
};

// ---- [attention: plan, probe, stats] ------------------------------------------------------------
// Settings go in (AttentionPlan), inspection requests go in (AttentionProbe), what the forward
// learned comes back (AttentionStats, returned by forward_with_stats): nothing is written back into
// what the caller passed, so one plan can serve the conditional and unconditional forwards.

// Input: how one forward runs its self-attention. A null policy, or dense_step, runs every layer
// dense. Which backend computes each layer is attention::choose_backend's call (attend.h).
struct AttentionPlan {
  attention::MaskPolicy* policy = nullptr;
  // RIFLEx (arXiv 2502.15894, as LVSA pairs it with long runs): past the reference horizon the
  // temporal RoPE frequency whose period is nearest reference_frames gets period frames (see
  // temporal_rope_freqs), so a long video does not repeat the training clip's cycle.
  bool riflex = false;
  bool dense_step = false;
  int dense_first_layers = 0;
  int dense_last_layers = 0;
  int64_t block_size = 128;
  int step = 0, num_steps = 1;
  // Every self-attention layer asks attend() for this backend; Auto lets choose_backend pick.
  // Benchmarks force Cuda (our kernel, a full mask included) or Sdpa (the "best dense" baseline).
  attention::Backend backend = attention::Backend::Auto;
  // Training: every attention keeps its autograd graph (SDPA for dense layers, the masked path
  // for sparse ones, whatever the device).
  bool differentiable = false;
  // The model's mask adapter (WanDiTImpl::adapter) in layers that run under a sparse mask.
  bool use_adapter = false;
  const std::atomic<bool>* cancel = nullptr;
  // Timing synchronises the device around each attention call (only costs on a GPU).
  bool measure_time = true;

  // The control-less forward's plan: every layer dense and differentiable, no timing syncs.
  static AttentionPlan training();
};

// Input: what to look at while the forward runs (costs only where asked).
struct AttentionProbe {
  int layer = -1;          // the inspected layer; < 0: none
  int head = 0;
  int64_t query = -1;      // raster token index; -1 = centre of the middle frame
  bool recall = false;     // estimate the inspected layer's recall (stats.recall)
  bool heatmap = false;    // the inspected query's dense distribution (stats.inspected_probs)
  int64_t recall_queries = 256;  // queries sampled for the recall estimate
  bool keep_masks = false;       // stats.layer_masks gets every layer's mask
  // Called in every layer right after q, k, v [B, H, N, D] are formed (in the step's token
  // order), before attention: a capture hook for calibration and routing. Empty: none.
  std::function<void(int layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v)> on_qkv;
};

// Output: what one forward learned about its self-attention.
struct AttentionStats {
  int num_layers = 0, num_heads = 0;
  std::vector<float> sparsity;   // per (layer, head) block sparsity, layer-major; 0 for dense layers
  double attention_ms = 0;       // self-attention kernels (+ mask build); 0 without measure_time
  double mask_ms = 0;            // mask building alone
  double recall = -1;            // inspected layer, all heads: kept share of the dense attention mass
  attention::BlockMaskPtr inspected_mask;   // the mask the inspected layer ran with (null if dense)
  bool inspected_mask_cached = false;
  torch::Tensor inspected_probs;  // [N] dense attention distribution of the inspected query, raster order (CPU, fp32)
  attention::TokenGrid grid;      // token grid of this forward
  std::vector<attention::BlockMaskPtr> layer_masks;  // with probe.keep_masks; null for dense layers
  double mean_sparsity() const;
};

// forward_with_stats' result.
struct DiTOutput {
  torch::Tensor velocity;
  AttentionStats stats;
};

// Per-op timing hook (benchmarks): forward() calls block(l) as layer l begins and mark(op) right
// after it enqueues each op of the block, so the span since the previous call belongs to `op`
// (names: "modulation", "norm1+modulate", "qkv projection", "q/k norm+rope", "mask build",
// "self-attention", "inspection", "o projection", "residual", "norm3", "cross q projection",
// "cross-attention", "cross o projection", "norm2+modulate", "ffn up", "gelu", "ffn down"; on the
// GPU's fused path "ffn up + gelu" replaces the two, the GELU being the GEMM's epilogue, and
// "o projection + residual", "cross o projection + residual", "ffn down + residual" replace each
// projection and the "residual" after it, the GEMM adding into the residual stream). The
// text's cross-attention K/V are computed before the first block (once per text: TextKVCache).
// Null (the default): no calls.
struct OpMarker {
  virtual ~OpMarker() = default;
  virtual void block(int layer) = 0;
  virtual void mark(const char* op) = 0;
};

// ---- [WanDiT] -----------------------------------------------------------------------------------

// RMSNorm over the last dim with a learned weight (Wan's q/k norms span the full model dim).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  double eps() const { return eps_; }
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// q, k, v, o projections + norm_q / norm_k: the parameter layout of Wan's attention modules.
class AttentionProjImpl : public torch::nn::Module {
 public:
  AttentionProjImpl(int64_t dim, double eps);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  RMSNorm norm_q{nullptr}, norm_k{nullptr};
};
TORCH_MODULE(AttentionProj);

class WanBlockImpl : public torch::nn::Module {
 public:
  explicit WanBlockImpl(const DiTConfig& c);
  AttentionProj self_attn{nullptr}, cross_attn{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  torch::nn::Sequential ffn{nullptr};
  torch::Tensor modulation;  // [1, 6, dim], added to the time projection in fp32
};
TORCH_MODULE(WanBlock);

class WanHeadImpl : public torch::nn::Module {
 public:
  explicit WanHeadImpl(const DiTConfig& c);
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};
  torch::Tensor modulation;  // [1, 2, dim]
};
TORCH_MODULE(WanHead);

// Parameter names are the original Wan2.1 keys ("blocks.0.self_attn.q.weight", "head.modulation").
class WanDiTImpl : public torch::nn::Module {
 public:
  explicit WanDiTImpl(DiTConfig config);

  // latents [B, C_in, F, H, W], timesteps [B] in [0, 1000], text_emb [B, L, text_dim] → velocity
  // [B, C_out, F, H, W] under AttentionPlan::training(): every layer dense, differentiable.
  torch::Tensor forward(const torch::Tensor& latents, const torch::Tensor& timesteps,
                        const torch::Tensor& text_emb);
  // The same under `plan` (its statistics are not kept).
  torch::Tensor forward(const torch::Tensor& latents, const torch::Tensor& timesteps,
                        const torch::Tensor& text_emb, const AttentionPlan& plan);
  // The same with `probe`'s inspections: the velocity and what the forward learned.
  DiTOutput forward_with_stats(const torch::Tensor& latents, const torch::Tensor& timesteps,
                               const torch::Tensor& text_emb, const AttentionPlan& plan,
                               const AttentionProbe& probe = {});

  const DiTConfig& config() const { return config_; }
  // Token grid of latents with F frames and H×W pixels (divided by the patch).
  attention::TokenGrid token_grid(int64_t frames, int64_t height, int64_t width) const;
  // Deterministic random weights (Xavier-uniform linears, zero biases, unit norms, modulation
  // N(0, 1/dim)), independent of the global RNG.
  void init_random(uint64_t seed);

  torch::nn::Conv3d patch_embedding{nullptr};
  torch::nn::Sequential text_embedding{nullptr}, time_embedding{nullptr}, time_projection{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  WanHead head{nullptr};
  // Mask-aware adapter on the self-attention projections, used where AttentionPlan::use_adapter
  // is set and the layer is sparse (mask_adapter.h). Not a registered parameter.
  std::shared_ptr<const MaskAdapter> adapter;
  // Per-op timing hook (see OpMarker); not owned.
  OpMarker* op_marker = nullptr;

  // Precision of the blocks' linear layers at inference (projections.h). Fp8 throws a
  // ParameterError naming why where it cannot run (fp8_unsupported_reason); Native always works.
  void set_linear_precision(LinearPrecision precision);
  LinearPrecision linear_precision() const { return precision_; }
  // The residual stream's precision between the blocks' branches (ResidualPrecision). Bf16 needs
  // the model in bf16: set here, and checked again at forward() (the model may have moved since),
  // a ParameterError naming "residual" either way.
  void set_residual_precision(ResidualPrecision precision);
  ResidualPrecision residual_precision() const { return residual_; }
  // The text K/V cache (see TextKVCache): its counters for tests, clear() to drop its memory.
  TextKVCache& text_kv_cache() { return text_cache_; }
  // The device constants forward() reads (RoPE tables, position planes), made on the host and
  // uploaded once per grid: a CUDA-graph capture (graph_forward.h) cannot copy from pageable host
  // memory, and a captured graph keeps these tensors alive by holding what this returns.
  std::vector<torch::Tensor> device_constants() const;

  // Memory plan (block_store.h, dit_memory.cpp). The blocks' fp8 weights (load_weights keeps them
  // as bits) and, with offload, all the blocks' weights live in the store; each block's come to
  // the compute device, in compute form, only while it runs. Training and saving need none stored.
  BlockStore& block_store();
  const BlockStore* stored_blocks() const;  // null when none
  bool has_stored_blocks() const;
  // Module::to(device, dtype) for everything outside the store; the store's tensors go to the
  // device, or with offload every block's tensors to host memory (pinned for a CUDA device) and
  // the rest of the model to the device. Without offload and with nothing stored: Module::to.
  void place(const torch::Device& device, torch::ScalarType dtype, bool offload);

 private:
  // Inference forms of one block's linears (dit_linears.cpp), built on first use.
  struct BlockLinears {
    FusedLinear self_qkv, self_o, cross_q, cross_kv, cross_o, ffn_up, ffn_down;
  };
  BlockLinears& linears(int64_t layer);
  // Per block, the text's cross-attention K (normed) and V [B, H, L, D]: from the cache when the
  // key matches (without autograd), else computed (and cached without autograd).
  void text_kv(const torch::Tensor& text_emb, int64_t batch, std::vector<torch::Tensor>& k, std::vector<torch::Tensor>& v);
  // Where a block's output projection may write: x += gate · y inside the projection's GEMM
  // (gate undefined for 1). The GPU's fused path hands one to self_attention, cross_attention and
  // ffn; they return an undefined tensor when they wrote into it, else y for the caller to add.
  struct Residual {
    torch::Tensor& x;
    torch::Tensor gate;
  };
  // x += gate · lin(h) in one GEMM where that applies (the GPU's fused path,
  // fused::residual_epilogue_applies; native or FP8, FusedLinear::residual_add_): true when done.
  // gelu_input: lin reads GELU(h) (FP8's FFN down projection, GELU in its quantisation).
  bool into_residual(FusedLinear& lin, const torch::Tensor& h, Residual* into, bool gelu_input = false);
  torch::Tensor ffn(int64_t layer, const torch::Tensor& h, Residual* into = nullptr);
  void mark(const char* op) {
    if (op_marker) op_marker->mark(op);
  }

  // One forward's self-attention context: what was asked, and where the statistics go.
  struct ForwardAttention {
    const AttentionPlan& plan;
    const AttentionProbe& probe;
    AttentionStats& stats;
    const attention::Ordering* ordering;  // null: raster
    const attention::TokenGrid& grid;
  };
  torch::Tensor self_attention(WanBlockImpl& b, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, int layer, const ForwardAttention& fa, bool fuse,
                               Residual* into = nullptr);
  // fuse: the fused GPU kernels (fused_ops.h) for the q/k norm. k, v: the text's [B, H, L, D].
  torch::Tensor cross_attention(WanBlockImpl& b, int64_t layer, const torch::Tensor& x, const torch::Tensor& k,
                                const torch::Tensor& v, bool fuse, Residual* into = nullptr);
  // RoPE cos/sin [N, head_dim/2] on `device`, from device_constant's cache; _host builds them.
  void rope_tables(const attention::TokenGrid& grid, const attention::Ordering* ordering,
                   const torch::Device& device, torch::Tensor& cos, torch::Tensor& sin, bool riflex);
  void rope_tables_host(const attention::TokenGrid& grid, const attention::Ordering* ordering, torch::Tensor& cos,
                        torch::Tensor& sin, bool riflex) const;

  // A block's stored weights in compute form while alive (and the next block's on its way);
  // nothing when none are stored. `only`: name prefixes inside the block (all when empty).
  class BlockInUse {
   public:
    BlockInUse(WanDiTImpl& model, int64_t layer, std::vector<std::string> only = {});
    ~BlockInUse();
    BlockInUse(const BlockInUse&) = delete;
    BlockInUse& operator=(const BlockInUse&) = delete;

   private:
    WanDiTImpl& model_;
    int64_t layer_;
    bool active_ = false;
  };

  // device_constants' cache: key (grid, ordering, RIFLEx or plane size, device) → tensor.
  torch::Tensor device_constant(const std::string& key, const std::function<torch::Tensor()>& make);
  std::map<std::string, torch::Tensor> constants_;

  DiTConfig config_;
  std::shared_ptr<BlockStore> store_;
  std::vector<BlockLinears> linears_;
  TextKVCache text_cache_;
  LinearPrecision precision_ = LinearPrecision::Native;
  ResidualPrecision residual_ = ResidualPrecision::Fp32;
};
TORCH_MODULE(WanDiT);

// ---- [helpers] ----------------------------------------------------------------------------------

// Wan's sinusoidal embedding: [cos(t·f), sin(t·f)], f_k = 10000^(−k/half), computed in fp64.
torch::Tensor sinusoidal_embedding(const torch::Tensor& timesteps, int64_t dim);
// The position_channels planes [2, H, W]: x, then y, at pixel centres, spanning [-1, 1].
torch::Tensor position_planes(int64_t height, int64_t width, const torch::TensorOptions& options);
// Real dims of head_dim given to time / height / width: d − 4⌊d/6⌋, 2⌊d/6⌋, 2⌊d/6⌋.
std::array<int64_t, 3> rope_split(int64_t head_dim);
// RIFLEx's intrinsic index: the temporal frequency j < t_dim/2 whose period 2π·θ^(2j/t_dim) is
// nearest the training length (lvsa/riflex.py identify_intrinsic_k).
int64_t riflex_intrinsic_index(int64_t t_dim, int64_t training_frames, double theta);
// The temporal RoPE frequencies θ^(−2j/t_dim); with riflex and frames > reference_frames > 0,
// frequency k = riflex_intrinsic_index becomes 2π / (reference · s) with s = frames / reference,
// i.e. one period over the whole video (RIFLEx with s the extrapolation ratio).
std::vector<double> temporal_rope_freqs(int64_t t_dim, double theta, int64_t frames, int64_t reference_frames,
                                        bool riflex);
// The token grid of latents [F, H, W] under the config's patch (ShapeError naming the sizes when
// one is not divisible); WanDiTImpl::token_grid is this with the model's config.
attention::TokenGrid token_grid(const DiTConfig& c, int64_t frames, int64_t height, int64_t width);
// What a sparse layer asks its mode's policy for at this step, Q/K aside (the forward adds them
// for modes that score; a CUDA-graph capture builds masks only for modes that do not): the one
// place a layer's MaskRequest is filled.
attention::MaskRequest layer_mask_request(const AttentionPlan& plan, const DiTConfig& c, int layer,
                                          const attention::TokenGrid& grid, const torch::Device& device);

}  // namespace longshot::model

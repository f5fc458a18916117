// Inference forms of the DiT block's linear layers: several projections of one input as ONE GEMM
// over weights tied into one buffer (q/k/v; the cross-attention's k/v), FP8 (e4m3) GEMMs on Hopper,
// and the text's cross-attention K/V cached per context tensor.
// Model room: LibTorch linear algebra only — no attention core, sampler, pipeline or UI.
//
// Sections: [precision] FP8 weights and GEMMs · [FusedLinear] · [TextKVCache]
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace longshot::model {

// ---- [precision] --------------------------------------------------------------------------------

// Native: the weights' own dtype (bf16 on the GPU). Fp8: e4m3 weights with one scale per output
// channel, activations quantised per token on the fly, bf16 out (at::_scaled_mm, Hopper only).
enum class LinearPrecision { Native, Fp8 };

// "native" or "fp8"; ParameterError naming `precision` otherwise.
LinearPrecision parse_linear_precision(const std::string& text);
const char* linear_precision_name(LinearPrecision p);

// The DiT's residual stream x, which every branch adds into and every norm reads. Fp32: Wan's
// reference code (its blocks run under fp32 autocast), our default. Bf16: diffusers'
// WanTransformer3DModel in bf16, whose hidden_states stay bf16 and take each branch as
// (x.float() + y · gate).type_as(x) — half the residual traffic of fp32, one bf16 rounding per
// update. Norms and the updates compute in fp32 either way.
enum class ResidualPrecision { Fp32, Bf16 };
// "fp32" or "bf16"; ParameterError naming `residual` otherwise.
ResidualPrecision parse_residual_precision(const std::string& text);
const char* residual_precision_name(ResidualPrecision p);
// ParameterError naming `residual` when stream `p` cannot run with a model in `model_dtype` (bf16
// needs a bf16 model).
void require_residual_fits(ResidualPrecision p, torch::ScalarType model_dtype);
// Empty when FP8 linears can run on `device`, else why not: LibTorch older than 2.5 (row-wise
// scaled at::_scaled_mm), a LibTorch or build without CUDA, a CPU device, or a GPU that is not
// Hopper (sm_90). Callers turn a reason into an error: there is no silent bf16 fallback.
std::string fp8_unsupported_reason(const torch::Device& device);

// A weight in e4m3 with one fp32 scale per output channel (amax / 448), and the key of the weights
// it came from (data pointer and version counter of each part) so a changed or replaced weight is
// quantised again.
struct Fp8Weight {
  torch::Tensor w8, scale;  // [out, in] e4m3, [1, out] fp32
  std::vector<int64_t> key;
};

// Key of `weights` for the caches below: each one's data pointer and version counter (bumped by
// every in-place write: copy_, an optimiser step).
std::vector<int64_t> weights_key(const std::vector<torch::Tensor>& weights);

// x [..., in] 16-bit CUDA through an FP8 GEMM against w (quantised from weight when w.key is not
// weights_key({weight})): x quantised per row, bias (may be undefined) added in the GEMM; the
// output in x's dtype. gelu: GELU(tanh) of x first, fused into the quantisation (the FFN's down
// projection). Throws with fp8_unsupported_reason() where FP8 cannot run.
torch::Tensor fp8_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, Fp8Weight& w,
                         bool gelu = false);

// x [B, N, out] contiguous, fp32 or bf16 (a bf16 residual stream: the sum rounded once, the bias
// in bf16), in place: x += gate · ((gelu ? GELU(h) : h) · Wᵀ + bias) through
// e4m3, as ONE cuBLASLt GEMM per batch sample (one in all when gate is undefined) whose C and D
// are x: h quantised per row, the gate folded into the weight's per-channel scales (fp32, the e4m3
// weights untouched) and into the fp32 bias. gate [B, 1, out] / [B, out] or undefined for 1.
// True when done; false with x untouched where cuBLASLt cannot run it (LONGSHOT_FP8_LT=0, no
// outer-vector FP8 scaling in the process's cuBLASLt: logged once), and the caller adds
// fp8_linear's output itself. ShapeError for shapes or devices that do not fit; throws with
// fp8_unsupported_reason() where FP8 cannot run.
bool fp8_residual_add_(torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& weight, const torch::Tensor& bias,
                       Fp8Weight& w, const torch::Tensor& gate, bool gelu = false);

// ---- [FusedLinear] ------------------------------------------------------------------------------

// Linear layers that read the same input, computed as one GEMM. Their weights (and biases) become
// views of one concatenated buffer, so the parameters keep their own names (checkpoints unchanged)
// and no copy of the weights is kept. tie() rebuilds the buffer whenever a part's weight no longer
// lies in it (after Module::to(), a replaced tensor); writes through the parameters (copy_ by the
// weight loader, an optimiser step) land in the buffer directly.
class FusedLinear {
 public:
  FusedLinear() = default;
  explicit FusedLinear(std::vector<torch::nn::Linear> parts);

  // The parts' outputs for x [..., in]. Without autograd: one GEMM (native or FP8) over the tied
  // buffer, each output a column slice of it (rows lie sum_out apart). With autograd on (training)
  // each part runs on its own, so gradients reach the parameters. gelu_input: GELU(tanh) of x
  // first (the FFN's down projection; FP8 fuses it into the activation quantisation).
  std::vector<torch::Tensor> forward(const torch::Tensor& x, LinearPrecision precision = LinearPrecision::Native,
                                     bool gelu_input = false);
  // GELU(tanh)(x · Wᵀ + b) of a single-part layer (the FFN's up projection), native precision.
  // With `fused_epilogue` (a CUDA tensor, autograd off, LibTorch >= 2) the GELU runs in the
  // GEMM's cuBLASLt epilogue (at::_addmm_activation), so the [N, ffn_dim] activation is written
  // once instead of written, read and written again; otherwise forward() then torch::gelu.
  torch::Tensor forward_gelu(const torch::Tensor& x, bool fused_epilogue);
  // x [B, N, out] (fp32, or a 16-bit stream) += gate · (h · Wᵀ + b) for a single-part layer, as one GEMM into x (gate
  // undefined for 1): native precision through fused_ops.h's linear_residual_add_, FP8 through
  // fp8_residual_add_ (where gelu_input takes GELU(tanh) of h in its quantisation). True when
  // done; false, with x untouched, where it does not apply (several parts, autograd on, h not in
  // the weights' dtype, gelu_input at native precision, no cuBLASLt or no FP8 scaling in it): the
  // caller then runs forward() and adds.
  bool residual_add_(torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& gate,
                     LinearPrecision precision = LinearPrecision::Native, bool gelu_input = false);
  // Ties the parts' weights into one buffer if they are not; true when it (re)built it.
  bool tie();
  bool tied() const;
  const torch::Tensor& weight() const { return weight_; }
  // Forgets the tied buffer and its FP8 copy (the parts keep their own data): for weights that
  // come and go per block (block_store.h), whose buffer must not outlive the block's run.
  void drop();

 private:
  std::vector<torch::nn::Linear> parts_;
  torch::Tensor weight_, bias_;  // [sum out, in], [sum out]
  Fp8Weight fp8_;
};

// ---- [TextKVCache] ------------------------------------------------------------------------------

// The cross-attention K (after its RMSNorm) and V of the text in every block: they depend only on
// the text embedding and the weights, so a job computes them once per context (the cond and the
// uncond pass each have one) and every step reuses them.
// Key of an entry: the text tensor itself (held by the entry, so no other tensor can take its
// memory while it is cached) and its version counter, the batch size, the precision, and the
// weights_key of every weight the K/V depend on (the text MLP; each block's cross k/v/norm_k).
// Two entries, the least recently used evicted; clear() drops them (the model's weights or the
// job changed, memory wanted back). Used only without autograd.
class TextKVCache {
 public:
  struct Entry {
    torch::Tensor text;
    int64_t text_version = 0, batch = 0;
    LinearPrecision precision = LinearPrecision::Native;
    std::vector<int64_t> weights;
    std::vector<torch::Tensor> k, v;  // per block, [B, H, L, D]
    uint64_t last_use = 0;
  };
  // The entry for this key, or null (a miss).
  const Entry* find(const torch::Tensor& text, int64_t batch, LinearPrecision precision,
                    const std::vector<int64_t>& weights);
  // Stores an entry (evicting the least recently used beyond capacity) and returns it.
  const Entry& insert(Entry entry);
  void clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  static constexpr size_t kCapacity = 2;

 private:
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace longshot::model

// Inference forms of the block's linear layers. Sections: [precision] · [FusedLinear] · [TextKVCache]
#include "engine/model/projections.h"

#include <algorithm>
#include <atomic>
#include <optional>

#include <spdlog/spdlog.h>

#include <torch/version.h>

#include "engine/common/error.h"
#include "engine/model/fused_ops.h"

#if defined(LONGSHOT_HAS_CUDA) && LONGSHOT_TORCH_CUDA
#include <cuda_runtime_api.h>

#include "engine/common/cuda/cuda_check.h"
#include "engine/common/cuda/device_stream.h"
#include "engine/model/cuda/fp8_quant.h"
#include "engine/model/cuda/lt_gemm.h"
#define LONGSHOT_CUDA_BUILD 1
// Row-wise scaled at::_scaled_mm (scale_a [M, 1], scale_b [1, N], bf16 out) as LibTorch 2.5 and
// later have it; 2.1–2.4 had other signatures (optional scales, a tuple result, tensor-wise only).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define LONGSHOT_FP8 1
#endif
#endif

namespace longshot::model {

// ---- [precision] --------------------------------------------------------------------------------

LinearPrecision parse_linear_precision(const std::string& text) {
  if (text == "native" || text == "bf16") return LinearPrecision::Native;
  if (text == "fp8") return LinearPrecision::Fp8;
  throw ParameterError("precision", "expected 'native' (or 'bf16') or 'fp8', got '" + text + "'");
}

const char* linear_precision_name(LinearPrecision p) { return p == LinearPrecision::Fp8 ? "fp8" : "native"; }

ResidualPrecision parse_residual_precision(const std::string& text) {
  if (text == "fp32") return ResidualPrecision::Fp32;
  if (text == "bf16") return ResidualPrecision::Bf16;
  throw ParameterError("residual", "expected 'fp32' (Wan's) or 'bf16' (diffusers'), got '" + text + "'");
}

const char* residual_precision_name(ResidualPrecision p) { return p == ResidualPrecision::Bf16 ? "bf16" : "fp32"; }

void require_residual_fits(ResidualPrecision p, torch::ScalarType model_dtype) {
  if (p == ResidualPrecision::Bf16 && model_dtype != torch::kBFloat16)
    throw ParameterError("residual",
                         "a bf16 residual stream needs the model in bf16, it is in " + std::string(c10::toString(model_dtype)));
}

std::string fp8_unsupported_reason(const torch::Device& device) {
#if !defined(LONGSHOT_CUDA_BUILD)
  (void)device;
  return "this build has no CUDA LibTorch (FP8 linears need LibTorch >= 2.5 with CUDA and a Hopper GPU)";
#elif !defined(LONGSHOT_FP8)
  (void)device;
  return "LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
         " has no row-wise scaled at::_scaled_mm (needs >= 2.5)";
#else
  if (!device.is_cuda()) return "FP8 linears run on a CUDA device, not " + device.str();
  int major = 0, minor = 0;
  const int index = device.has_index() ? device.index() : 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index) != cudaSuccess)
    return "cannot read the compute capability of " + device.str();
  if (major != 9)
    return "FP8 linears are built for Hopper (sm_90); " + device.str() + " is sm_" + std::to_string(major) +
           std::to_string(minor);
  return "";
#endif
}

std::vector<int64_t> weights_key(const std::vector<torch::Tensor>& weights) {
  std::vector<int64_t> key;
  key.reserve(2 * weights.size());
  for (const auto& w : weights) {
    key.push_back(w.defined() ? reinterpret_cast<int64_t>(w.data_ptr()) : 0);
    // Inference tensors (c10::InferenceMode) keep no version counter: -2, never equal to a real one's
    // change, so such weights must not be written in place while cached.
    key.push_back(!w.defined() ? -1 : w.is_inference() ? -2 : int64_t(w._version()));
  }
  return key;
}

namespace {

void require_fp8(const torch::Device& device) {
  const auto why = fp8_unsupported_reason(device);
  if (!why.empty()) throw ParameterError("precision", "fp8: " + why);
}

// Quantises weight [out, in] per output channel into w unless w.key is `key` already.
void update_fp8_weight(Fp8Weight& w, const torch::Tensor& weight, const std::vector<int64_t>& key) {
  if (w.w8.defined() && w.key == key) return;
#ifdef LONGSHOT_FP8
  torch::NoGradGuard no_grad;
  const auto wf = weight.to(torch::kFloat);
  const auto scale = wf.abs().amax(1, true).clamp_min(1e-12) / 448.0;  // [out, 1]
  w.w8 = (wf / scale).to(torch::kFloat8_e4m3fn).contiguous();
  w.scale = scale.t().contiguous();  // [1, out]
  w.key = key;
#else
  (void)weight, (void)key;
  require_fp8(weight.device());
#endif
}

#ifdef LONGSHOT_FP8
void warn_fp8_lt_once(const std::string& why) {
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    spdlog::warn("FP8 GEMMs run through at::_scaled_mm, not cuBLASLt's row/channel scaling ({})", why);
}

// x quantised per row to e4m3: [M, K] bits and [M] fp32 scales (GELU(tanh) first when `gelu`).
struct Fp8Rows {
  torch::Tensor x8, scale;
  int64_t M = 0, K = 0;
};

Fp8Rows quantize_rows(const torch::Tensor& x_in, int64_t weight_k, int64_t weight_n, bool gelu) {
  // fp32 activations (the unfused path's norms) are rounded to bf16 first, as the native GEMM
  // casts them to the weights' dtype; fp16 has no row-wise scaled GEMM output here.
  if (x_in.scalar_type() == torch::kHalf)
    throw ShapeError("fp8 linear: activations must be bf16 or fp32 (row-wise scaled GEMMs write bf16), got fp16");
  const auto x = x_in.scalar_type() == torch::kBFloat16 ? x_in : x_in.to(torch::kBFloat16);
  const int64_t K = x.size(-1);
  if (K != weight_k || K % 16 != 0 || weight_n % 16 != 0)
    throw ShapeError("fp8 linear: x " + std::string(c10::str(x.sizes())) + " against a weight of [" +
                     std::to_string(weight_n) + ", " + std::to_string(weight_k) +
                     "] (in and out must match and be multiples of 16)");
  auto x2 = x.reshape({-1, K});
  if (x2.stride(1) != 1 || x2.stride(0) % 8 != 0 || reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 != 0)
    x2 = x2.contiguous();
  Fp8Rows r;
  r.M = x2.size(0), r.K = K;
  r.x8 = torch::empty({r.M, K}, x.options().dtype(torch::kFloat8_e4m3fn));
  r.scale = torch::empty({r.M, 1}, x.options().dtype(torch::kFloat));
  const ::longshot::cuda::DeviceStream stream(x.device());
  cuda::quantize_rows_e4m3(x2.data_ptr(), false, r.M, static_cast<int>(K), x2.stride(0), gelu,
                           static_cast<uint8_t*>(r.x8.data_ptr()), r.scale.data_ptr<float>(), stream.get(),
                           fused::fp8_quant_rows_in_registers());
  return r;
}
#endif

// y = (gelu ? GELU(x) : x) · Wᵀ + bias through e4m3; see fp8_linear in the header.
torch::Tensor fp8_gemm(const torch::Tensor& x_in, const Fp8Weight& w, const torch::Tensor& bias, bool gelu) {
  require_fp8(x_in.device());
#ifdef LONGSHOT_FP8
  const int64_t N = w.w8.size(0);
  const auto q = quantize_rows(x_in, w.w8.size(1), N, gelu);
  std::optional<torch::Tensor> b;
  if (bias.defined()) b = bias.to(x_in.device(), torch::kBFloat16).contiguous();
  torch::Tensor y;
  if (fused::fp8_cublaslt_on()) {
    y = torch::empty({q.M, N}, x_in.options().dtype(torch::kBFloat16));
    const auto workspace = torch::empty({int64_t(cuda::kLtWorkspaceBytes)}, x_in.options().dtype(torch::kUInt8));
    cuda::Fp8Operands op;
    op.a8 = q.x8.data_ptr(), op.a_scale = q.scale.data_ptr<float>();
    op.w8 = w.w8.data_ptr(), op.w_scale = w.scale.data_ptr<float>();
    op.bias = b ? b->data_ptr() : nullptr;
    op.out = y.data_ptr();
    bool bias_left = false;
    op.bias_left_out = &bias_left;
    const ::longshot::cuda::DeviceStream stream(x_in.device());
    const auto why = cuda::gemm_fp8(op, q.M, static_cast<int>(N), static_cast<int>(q.K), workspace.data_ptr(),
                                    cuda::kLtWorkspaceBytes, stream.get());
    if (!why.empty()) {
      warn_fp8_lt_once(why);
      y = torch::Tensor();
    } else if (bias_left) {
      y.add_(*b);
    }
  }
  // w8ᵀ is the column-major [in, out] operand _scaled_mm wants; exact fp32 accumulation.
  if (!y.defined()) y = at::_scaled_mm(q.x8, w.w8.t(), q.scale, w.scale, b, std::nullopt, torch::kBFloat16, false);
  auto sizes = x_in.sizes().vec();
  sizes.back() = N;
  return y.view(sizes);
#else
  (void)w, (void)bias, (void)gelu;
  return {};
#endif
}

}  // namespace

torch::Tensor fp8_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, Fp8Weight& w,
                         bool gelu) {
  require_fp8(x.device());
  update_fp8_weight(w, weight, weights_key({weight}));
  return fp8_gemm(x, w, bias, gelu);
}

bool fp8_residual_add_(torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& weight, const torch::Tensor& bias,
                       Fp8Weight& w, const torch::Tensor& gate, bool gelu) {
  require_fp8(x.device());
  if (x.dim() != 3 || (x.scalar_type() != torch::kFloat && x.scalar_type() != torch::kBFloat16) || !x.is_contiguous() ||
      h.dim() != 3 ||
      h.size(0) != x.size(0) || h.size(1) != x.size(1) || weight.dim() != 2 || weight.size(0) != x.size(2) ||
      (bias.defined() && bias.numel() != weight.size(0)) || h.device() != x.device() || weight.device() != x.device())
    throw ShapeError("fp8_residual_add_: x " + std::string(c10::str(x.sizes())) + " (contiguous fp32 or bf16), h " +
                     std::string(c10::str(h.sizes())) + " and weight " + std::string(c10::str(weight.sizes())) +
                     " on one device do not make x += gate · (h · Wᵀ + bias)");
#ifdef LONGSHOT_FP8
  static std::atomic<bool> unavailable{false};
  if (!fused::fp8_cublaslt_on() || unavailable.load()) return false;
  update_fp8_weight(w, weight, weights_key({weight}));
  const int64_t B = x.size(0), N = x.size(1), n = x.size(2);
  const auto q = quantize_rows(h, w.w8.size(1), n, gelu);
  const auto g = fused::per_batch(gate, x);
  const auto b32 = bias.defined() ? bias.to(x.device(), torch::kFloat).contiguous() : torch::Tensor();
  const auto workspace = torch::empty({int64_t(cuda::kLtWorkspaceBytes)}, x.options().dtype(torch::kUInt8));
  const ::longshot::cuda::DeviceStream stream(x.device());
  // The gate multiplies each output channel: it joins the weight's per-channel scales (exact in
  // fp32, no re-rounding of the e4m3 weights) and, in fp32, the bias. One GEMM per sample where
  // the samples' gates differ.
  const int64_t groups = g.defined() ? B : 1, rows = g.defined() ? N : B * N;
  const bool x16 = x.scalar_type() == torch::kBFloat16;
  for (int64_t i = 0; i < groups; ++i) {
    const auto ws = g.defined() ? (w.scale.view(-1) * g[i]).contiguous() : w.scale;
    torch::Tensor bi = b32, bi16;
    if (b32.defined()) {
      if (g.defined()) bi = b32 * g[i];
      bi16 = bi.to(torch::kBFloat16);
      if (x16) bi = bi16;  // a bf16 stream takes its bias in bf16
    }
    cuda::Fp8Operands op;
    op.a8 = static_cast<const uint8_t*>(q.x8.data_ptr()) + i * rows * q.K;
    op.a_scale = q.scale.data_ptr<float>() + i * rows;
    op.w8 = w.w8.data_ptr(), op.w_scale = ws.data_ptr<float>();
    op.bias = bi.defined() ? bi.data_ptr() : nullptr;
    op.bias_bf16 = bi16.defined() ? bi16.data_ptr() : nullptr;
    op.out = static_cast<char*>(x.data_ptr()) + i * rows * n * int64_t(x.element_size());
    op.residual = true;
    op.residual16 = x16;
    bool bias_left = false;
    op.bias_left_out = &bias_left;
    const auto why = cuda::gemm_fp8(op, rows, static_cast<int>(n), static_cast<int>(q.K), workspace.data_ptr(),
                                    cuda::kLtWorkspaceBytes, stream.get());
    if (why.empty() && bias_left) x.view({groups, rows, n})[i].add_(bi);
    if (why.empty()) continue;
    // Every sample's GEMM has the same shape: only the first can fail, with x still untouched.
    if (i > 0) throw CudaError("fp8_residual_add_: " + why);
    unavailable = true;
    spdlog::warn("FP8 projections do not write into the residual stream from their GEMM ({}); they write bf16 "
                 "outputs that a second pass adds",
                 why);
    return false;
  }
  return true;
#else
  (void)h, (void)bias, (void)w, (void)gate, (void)gelu;
  return false;
#endif
}

// ---- [FusedLinear] ------------------------------------------------------------------------------

FusedLinear::FusedLinear(std::vector<torch::nn::Linear> parts) : parts_(std::move(parts)) {
  if (parts_.empty()) throw ShapeError("FusedLinear: no parts");
  for (const auto& p : parts_) {
    if (p->weight.size(1) != parts_[0]->weight.size(1) || p->bias.defined() != parts_[0]->bias.defined())
      throw ShapeError("FusedLinear: parts must share their input width and all have (or lack) a bias");
  }
}

bool FusedLinear::tied() const {
  if (parts_.size() == 1) return true;  // one part is its own buffer
  if (!weight_.defined()) return false;
  const auto row_bytes = weight_.stride(0) * int64_t(weight_.element_size());
  int64_t row = 0;
  for (const auto& p : parts_) {
    const auto& w = p->weight;
    if (w.scalar_type() != weight_.scalar_type() || w.device() != weight_.device() || !w.is_alias_of(weight_) ||
        w.data_ptr() != static_cast<char*>(weight_.data_ptr()) + row * row_bytes)
      return false;
    if (p->bias.defined() &&
        (!p->bias.is_alias_of(bias_) ||
         p->bias.data_ptr() != static_cast<char*>(bias_.data_ptr()) + row * int64_t(bias_.element_size())))
      return false;
    row += w.size(0);
  }
  return row == weight_.size(0);
}

bool FusedLinear::tie() {
  if (tied()) return false;
  torch::NoGradGuard no_grad;
  // The buffer must be a normal tensor: parameters cannot take an inference tensor's data.
  c10::InferenceMode normal_tensors(false);
  std::vector<torch::Tensor> ws, bs;
  for (const auto& p : parts_) {
    ws.push_back(p->weight);
    if (p->bias.defined()) bs.push_back(p->bias);
  }
  weight_ = torch::cat(ws, 0);
  bias_ = bs.empty() ? torch::Tensor() : torch::cat(bs, 0);
  // The parameters become views of the buffers (their old storage is freed): one copy of the
  // weights, and writes through the parameters reach the GEMM.
  int64_t row = 0;
  for (auto& p : parts_) {
    const int64_t n = p->weight.size(0);
    p->weight.set_data(weight_.narrow(0, row, n));
    if (p->bias.defined()) p->bias.set_data(bias_.narrow(0, row, n));
    row += n;
  }
  fp8_ = Fp8Weight{};
  return true;
}

void FusedLinear::drop() {
  weight_ = torch::Tensor();
  bias_ = torch::Tensor();
  fp8_ = Fp8Weight{};
}

std::vector<torch::Tensor> FusedLinear::forward(const torch::Tensor& x_in, LinearPrecision precision, bool gelu_input) {
  std::vector<torch::Tensor> outs;
  // FP8 fuses the GELU into its quantisation pass; the native GEMM takes it as a separate op.
  const bool fp8 = precision == LinearPrecision::Fp8;
  const auto x = gelu_input && !fp8 ? torch::gelu(x_in, "tanh") : x_in;
  if (torch::GradMode::is_enabled()) {
    // Training: each parameter in its own op, so autograd reaches it (the buffer is no leaf).
    if (fp8) throw ParameterError("precision", "fp8 linear layers are inference-only (autograd is on)");
    for (const auto& p : parts_) outs.push_back(torch::linear(x.to(p->weight.scalar_type()), p->weight, p->bias));
    return outs;
  }
  torch::Tensor w = weight_, b = bias_;
  if (parts_.size() == 1) {
    w = parts_[0]->weight;
    b = parts_[0]->bias;
  } else {
    tie();
    w = weight_;
    b = bias_;
  }
  torch::Tensor y;
  if (fp8) {
    std::vector<torch::Tensor> ws;
    for (const auto& p : parts_) ws.push_back(p->weight);
    update_fp8_weight(fp8_, w, weights_key(ws));
    y = fp8_gemm(x, fp8_, b, gelu_input);
  } else {
    y = torch::linear(x.to(w.scalar_type()), w, b);
  }
  if (parts_.size() == 1) return {y};
  int64_t col = 0;
  for (const auto& p : parts_) {
    outs.push_back(y.narrow(-1, col, p->weight.size(0)));
    col += p->weight.size(0);
  }
  return outs;
}

torch::Tensor FusedLinear::forward_gelu(const torch::Tensor& x, bool fused_epilogue) {
  if (parts_.size() != 1) throw ShapeError("forward_gelu: a single-part linear, this one has " +
                                           std::to_string(parts_.size()) + " parts");
  const auto& w = parts_[0]->weight;
  const auto& b = parts_[0]->bias;
#if TORCH_VERSION_MAJOR >= 2
  // cuBLASLt's GELU epilogue is the tanh form (as Wan's FFN); LibTorch takes it for a 2D input,
  // a 1D bias and beta = 1, and applies gelu(tanh) after the GEMM itself when Lt does not apply.
  if (fused_epilogue && x.is_cuda() && b.defined() && !torch::GradMode::is_enabled() && x.size(-1) == w.size(1)) {
    const auto x2 = x.to(w.scalar_type()).reshape({-1, w.size(1)});
    auto y = at::_addmm_activation(b, x2, w.t(), 1, 1, /*use_gelu=*/true);
    auto sizes = x.sizes().vec();
    sizes.back() = w.size(0);
    return y.view(sizes);
  }
#else
  (void)fused_epilogue;
#endif
  return torch::gelu(forward(x)[0], "tanh");
}

bool FusedLinear::residual_add_(torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& gate,
                                LinearPrecision precision, bool gelu_input) {
  if (parts_.size() != 1 || torch::GradMode::is_enabled()) return false;
  const auto& w = parts_[0]->weight;
  if (precision == LinearPrecision::Fp8) return fp8_residual_add_(x, h, w, parts_[0]->bias, fp8_, gate, gelu_input);
  if (gelu_input) return false;
  if (h.scalar_type() != w.scalar_type() || !h.is_cuda()) return false;
  return fused::linear_residual_add_(x, h, w, parts_[0]->bias, gate);
}

// ---- [TextKVCache] ------------------------------------------------------------------------------

const TextKVCache::Entry* TextKVCache::find(const torch::Tensor& text, int64_t batch, LinearPrecision precision,
                                            const std::vector<int64_t>& weights) {
  for (auto& e : entries_) {
    if (e.text.is_same(text) && e.text_version == int64_t(text._version()) && e.batch == batch &&
        e.precision == precision && e.weights == weights) {
      e.last_use = ++clock_;
      ++hits_;
      return &e;
    }
  }
  ++misses_;
  return nullptr;
}

const TextKVCache::Entry& TextKVCache::insert(Entry entry) {
  entry.last_use = ++clock_;
  if (entries_.size() >= kCapacity) {
    auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                   [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; });
    *oldest = std::move(entry);
    return *oldest;
  }
  entries_.push_back(std::move(entry));
  return entries_.back();
}

}  // namespace longshot::model

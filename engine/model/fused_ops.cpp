#include "engine/model/fused_ops.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include <torch/torch.h>

#include "engine/common/error.h"

#if defined(LONGSHOT_HAS_CUDA) && LONGSHOT_TORCH_CUDA
#include "engine/common/cuda/cuda_check.h"
#include "engine/common/cuda/device_stream.h"
#include "engine/model/cuda/fused_ops.h"
#include "engine/model/cuda/lt_gemm.h"
#define LONGSHOT_FUSED_KERNELS 1
#endif

namespace longshot::model::fused {

namespace {
// An A/B switch: on unless the environment variable is "0" (read once per name by the caller).
bool switched_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::strcmp(v, "0") == 0);
}

bool is16(const torch::Tensor& t) { return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf; }

void check_rows(const torch::Tensor& t, const char* name, bool want16) {
  if (!t.defined() || t.dim() != 3 || !t.is_contiguous() || (want16 ? !is16(t) : t.scalar_type() != torch::kFloat))
    throw ShapeError(std::string("fused op: ") + name + " must be a contiguous [B, N, C] " + (want16 ? "16-bit" : "fp32") +
                     " tensor");
}

// The residual stream x: contiguous [B, N, C], fp32 or the 16-bit `dtype` the op's other operand has.
void check_stream(const torch::Tensor& x, torch::ScalarType dtype) {
  if (!x.defined() || x.dim() != 3 || !x.is_contiguous() ||
      (x.scalar_type() != torch::kFloat && x.scalar_type() != dtype))
    throw ShapeError(std::string("fused op: x (the residual stream) must be a contiguous [B, N, C] tensor in fp32 or ") +
                     c10::toString(dtype) + (x.defined() ? std::string(", got ") + c10::toString(x.scalar_type()) : ""));
}

}  // namespace

bool applies(const torch::Tensor& x) {
#ifdef LONGSHOT_FUSED_KERNELS
  static const bool enabled = switched_on("LONGSHOT_FUSED");
  return enabled && x.defined() && x.is_cuda() && !torch::GradMode::is_enabled();
#else
  return false;
#endif
}

bool ffn_epilogue_applies(const torch::Tensor& x) {
  static const bool enabled = switched_on("LONGSHOT_FFN_EPILOGUE");
  return enabled && applies(x);
}

bool residual_epilogue_applies(const torch::Tensor& x) {
  static const bool enabled = switched_on("LONGSHOT_RESIDUAL_EPILOGUE");
  return enabled && applies(x);
}

bool norm_row_per_warp() {
  static const bool enabled = switched_on("LONGSHOT_NORM_WARP");
  return enabled;
}

bool fp8_quant_rows_in_registers() {
  static const bool enabled = switched_on("LONGSHOT_FP8_QUANT_REG");
  return enabled;
}

bool fp8_cublaslt_on() {
  static const bool enabled = switched_on("LONGSHOT_FP8_LT");
  return enabled;
}

torch::Tensor per_batch(const torch::Tensor& v, const torch::Tensor& x) {
  if (!v.defined()) return v;
  auto r = v.to(x.device(), torch::kFloat).reshape({v.size(0), -1}).contiguous();
  if (r.size(0) != x.size(0) || r.size(1) != x.size(2))
    throw ShapeError("fused op: modulation " + std::string(c10::str(v.sizes())) + " does not fit x " + std::string(c10::str(x.sizes())));
  return r;
}

torch::Tensor rmsnorm_rope(const torch::Tensor& y, const torch::Tensor& weight, const torch::Tensor& cos,
                           const torch::Tensor& sin, double eps, int64_t head_dim, int64_t pool_group,
                           torch::Tensor* pooled) {
  // Rows may lie apart (a slice of the fused q/k/v output): channels contiguous, one row stride.
  if (!y.defined() || y.dim() != 3 || !is16(y) || y.stride(2) != 1 || y.stride(1) < y.size(2) || y.stride(1) % 8 != 0 ||
      (y.size(0) > 1 && y.stride(0) != y.size(1) * y.stride(1)) || reinterpret_cast<uintptr_t>(y.data_ptr()) % 16 != 0)
    throw ShapeError("fused op: y must be a [B, N, C] 16-bit tensor with contiguous channels and one row stride (a multiple of 8)");
  if (pooled != nullptr && pool_group <= 0)
    throw ParameterError("pool_group", "must be positive to pool, got " + std::to_string(pool_group));
  if (pooled != nullptr && (head_dim <= 0 || y.size(2) % head_dim != 0))
    throw ShapeError("rmsnorm_rope: head_dim " + std::to_string(head_dim) + " must divide dim " + std::to_string(y.size(2)));
#ifdef LONGSHOT_FUSED_KERNELS
  const ::longshot::cuda::DeviceStream stream(y.device());
  const int64_t B = y.size(0), N = y.size(1), C = y.size(2);
  const auto w = weight.to(y.device(), torch::kFloat).contiguous();
  if (w.numel() != C) throw ShapeError("rmsnorm_rope: weight has " + std::to_string(w.numel()) + " values for dim " + std::to_string(C));
  torch::Tensor c, s;
  if (cos.defined()) {
    c = cos.to(y.device(), torch::kFloat).contiguous();
    s = sin.to(y.device(), torch::kFloat).contiguous();
    if (c.dim() != 2 || c.size(0) != N || c.size(1) != head_dim / 2 || s.sizes() != c.sizes())
      throw ShapeError("rmsnorm_rope: cos/sin must be [" + std::to_string(N) + ", " + std::to_string(head_dim / 2) + "]");
  }
  auto out = torch::empty({B, N, C}, y.options());
  float* pooled_ptr = nullptr;
  if (pooled != nullptr) {
    *pooled = torch::zeros({B, C / head_dim, (N + pool_group - 1) / pool_group, head_dim}, y.options().dtype(torch::kFloat));
    pooled_ptr = pooled->data_ptr<float>();
  }
  cuda::rmsnorm_rope(y.data_ptr(), w.data_ptr<float>(), c.defined() ? c.data_ptr<float>() : nullptr,
                     s.defined() ? s.data_ptr<float>() : nullptr, y.scalar_type() == torch::kHalf, B * N,
                     static_cast<int>(C), static_cast<int>(head_dim), N, static_cast<float>(eps), out.data_ptr(), stream.get(),
                     static_cast<int>(pool_group), pooled_ptr, y.stride(1));
  return out;
#else
  throw ShapeError("rmsnorm_rope: this build has no fused CUDA kernels");
#endif
}

torch::Tensor layernorm_modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale,
                                 double eps, torch::ScalarType dtype) {
  if (dtype != torch::kBFloat16 && dtype != torch::kHalf) throw ShapeError("layernorm_modulate: output dtype must be 16-bit");
  check_stream(x, dtype);
  if (shift.defined() != scale.defined()) throw ShapeError("layernorm_modulate: shift and scale come together");
#ifdef LONGSHOT_FUSED_KERNELS
  const ::longshot::cuda::DeviceStream stream(x.device());
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  const auto sh = per_batch(shift, x), sc = per_batch(scale, x);
  auto out = torch::empty({B, N, C}, x.options().dtype(dtype));
  cuda::layernorm_modulate(x.data_ptr(), x.scalar_type() != torch::kFloat, sh.defined() ? sh.data_ptr<float>() : nullptr,
                           sc.defined() ? sc.data_ptr<float>() : nullptr, dtype == torch::kHalf, B * N,
                           static_cast<int>(C), N, static_cast<float>(eps), out.data_ptr(), stream.get(),
                           norm_row_per_warp());
  return out;
#else
  throw ShapeError("layernorm_modulate: this build has no fused CUDA kernels");
#endif
}

torch::Tensor layernorm_affine(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                               double eps, torch::ScalarType dtype) {
  check_stream(x, dtype);
  const int64_t B = x.size(0), C = x.size(2);
  if (!weight.defined() || weight.numel() != C || (bias.defined() && bias.numel() != C))
    throw ShapeError("layernorm_affine: weight and bias must have " + std::to_string(C) + " values");
  const auto w = weight.to(x.device(), torch::kFloat).reshape({1, C});
  const auto b = bias.defined() ? bias.to(x.device(), torch::kFloat).reshape({1, C}) : torch::zeros({1, C}, x.options());
  return layernorm_modulate(x, b.expand({B, C}), (w - 1).expand({B, C}), eps, dtype);
}

void gated_residual_add_(torch::Tensor& x, const torch::Tensor& y_in, const torch::Tensor& gate) {
  const auto y = y_in.contiguous();
  check_rows(y, "y", true);
  check_stream(x, y.scalar_type());
  if (y.sizes() != x.sizes()) throw ShapeError("gated_residual_add_: y " + std::string(c10::str(y.sizes())) + " != x " + std::string(c10::str(x.sizes())));
#ifdef LONGSHOT_FUSED_KERNELS
  const ::longshot::cuda::DeviceStream stream(x.device());
  const auto g = per_batch(gate, x);
  cuda::gated_residual_add(x.data_ptr(), x.scalar_type() != torch::kFloat, y.data_ptr(), g.defined() ? g.data_ptr<float>() : nullptr,
                           y.scalar_type() == torch::kHalf, x.size(0) * x.size(1), static_cast<int>(x.size(2)), x.size(1),
                           stream.get());
#else
  throw ShapeError("gated_residual_add_: this build has no fused CUDA kernels");
#endif
}

bool linear_residual_add_(torch::Tensor& x, const torch::Tensor& h_in, const torch::Tensor& w_in,
                          const torch::Tensor& bias, const torch::Tensor& gate) {
  const auto h = h_in.contiguous();
  check_rows(h, "h", true);
  check_stream(x, h.scalar_type());
  const auto w = w_in.contiguous();
  if (w.dim() != 2 || w.scalar_type() != h.scalar_type() || w.size(1) != h.size(2) || w.size(0) != x.size(2) ||
      h.size(0) != x.size(0) || h.size(1) != x.size(1) || (bias.defined() && bias.numel() != w.size(0)))
    throw ShapeError("linear_residual_add_: x " + std::string(c10::str(x.sizes())) + ", h " + std::string(c10::str(h.sizes())) +
                     " and w " + std::string(c10::str(w.sizes())) + " do not make x += gate · (h · wᵀ + bias)");
#ifdef LONGSHOT_FUSED_KERNELS
  if (!x.is_cuda() || h.device() != x.device() || w.device() != x.device())
    throw ShapeError("linear_residual_add_: x, h and w must be on one CUDA device (x " + x.device().str() + ", h " +
                     h.device().str() + ", w " + w.device().str() + ")");
  const ::longshot::cuda::DeviceStream stream(x.device());
  const int64_t B = x.size(0), N = x.size(1), n = x.size(2), k = h.size(2);
  const auto g = per_batch(gate, x);
  const bool x16 = x.scalar_type() != torch::kFloat;
  const auto b32 = bias.defined() ? bias.to(x.device(), torch::kFloat).contiguous() : torch::Tensor();
  const auto workspace = torch::empty({int64_t(cuda::kLtWorkspaceBytes)}, x.options().dtype(torch::kUInt8));
  const int64_t groups = g.defined() ? B : 1, rows = g.defined() ? N : B * N;
  const auto h_bytes = rows * k * int64_t(h.element_size()), x_bytes = rows * n * int64_t(x.element_size());
  for (int64_t i = 0; i < groups; ++i) {
    torch::Tensor wi = w, bi = b32;
    if (g.defined()) {
      wi = torch::empty_like(w);
      at::mul_out(wi, w, g[i].unsqueeze(1));  // fp32 product, one rounding to w's dtype
      if (b32.defined()) bi = b32 * g[i];
    }
    if (bi.defined() && x16) bi = bi.to(x.scalar_type());  // a 16-bit stream takes its bias in its own dtype
    const auto why = cuda::gemm_residual(static_cast<const char*>(h.data_ptr()) + i * h_bytes, wi.data_ptr(),
                                         bi.defined() ? bi.data_ptr() : nullptr,
                                         static_cast<char*>(x.data_ptr()) + i * x_bytes, h.scalar_type() == torch::kHalf,
                                         x16, rows, static_cast<int>(n), static_cast<int>(k), workspace.data_ptr(),
                                         cuda::kLtWorkspaceBytes, stream.get());
    if (why.empty()) continue;
    // Every sample's GEMM has the same shape: only the first can fail, with x still untouched.
    if (i > 0) throw CudaError("linear_residual_add_: " + why);
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      spdlog::warn("the residual GEMM epilogue does not run ({}); the projections write 16-bit outputs that a second "
                   "pass adds to the residual stream",
                   why);
    return false;
  }
  return true;
#else
  return false;
#endif
}

}  // namespace longshot::model::fused

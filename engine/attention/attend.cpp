// attend(): checks the inputs, asks choose_backend() which backend runs them, runs it.
// Sections: [checks] · [choice] · [backends] · [call] · [inspection]
//
// The rules live in choose_backend() alone; the run_* functions below do what their backend says
// and nothing else (no backend calls another as a fallback).
#include "engine/attention/attend.h"

#include <cmath>
#include <limits>
#include <vector>

#include <torch/torch.h>
#include <torch/version.h>

#include "engine/attention/attention.h"
#include "engine/attention/mask_tensor.h"
#include "engine/attention/reference.h"
#include "engine/common/error.h"

// SDPA with an explicit scale argument arrived in LibTorch 2.1; older builds (Debian's 1.13 on
// the CPU machines) run the Sdpa and Masked backends as the same formula in torch ops.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define LONGSHOT_HAS_SDPA 1
#endif

namespace longshot::attention {

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::Auto: return "auto";
    case Backend::Cuda: return "cuda";
    case Backend::Reference: return "reference";
    case Backend::Sdpa: return "sdpa";
    case Backend::Masked: return "masked";
    case Backend::Eager: return "eager";
  }
  return "?";
}

// ---- [checks] -----------------------------------------------------------------------------------

namespace {

std::string sizes(const torch::Tensor& t) { return std::string(c10::str(t.sizes())); }

void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const AttendMask& mask) {
  const std::pair<const torch::Tensor*, const char*> named[] = {{&q, "q"}, {&k, "k"}, {&v, "v"}};
  for (const auto& [t, name] : named) {
    if (!t->defined()) throw ShapeError(std::string("attend: tensor '") + name + "' is undefined");
    if (t->dim() != 4) throw ShapeError(std::string("attend: tensor '") + name + "' must be [B, H, N, D], got " + sizes(*t));
    if (!t->is_floating_point()) throw ShapeError(std::string("attend: tensor '") + name + "' must be floating point");
    if (t->device() != q.device())
      throw ShapeError(std::string("attend: tensor '") + name + "' is on " + t->device().str() + ", 'q' on " + q.device().str());
  }
  if (k.size(0) != q.size(0) || k.size(1) != q.size(1) || k.size(3) != q.size(3))
    throw ShapeError("attend: tensor 'k' " + sizes(k) + " does not match 'q' " + sizes(q) + " in B, H or D");
  if (v.size(0) != k.size(0) || v.size(1) != k.size(1) || v.size(2) != k.size(2))
    throw ShapeError("attend: tensor 'v' " + sizes(v) + " does not match 'k' " + sizes(k) + " in B, H or N");
  if (q.size(2) == 0 || k.size(2) == 0) throw ShapeError("attend: tensor '" + std::string(q.size(2) ? "k" : "q") + "' has no tokens");
  if (mask.blocks) {
    if (k.size(2) != q.size(2))
      throw ShapeError("attend: a block mask needs as many keys as queries; 'q' " + sizes(q) + ", 'k' " + sizes(k));
    detail::check_mask_fits(*mask.blocks, q.size(1), q.size(2), "attend");
  }
  if (mask.bias.defined()) {
    const auto& b = mask.bias;
    const int64_t want[4] = {q.size(0), q.size(1), q.size(2), k.size(2)};
    bool fits = b.dim() <= 4 && b.device() == q.device();
    for (int64_t i = 0; fits && i < b.dim(); ++i) {
      const int64_t n = b.size(b.dim() - 1 - i), w = want[3 - i];
      fits = n == 1 || n == w;
    }
    if (!fits)
      throw ShapeError("attend: tensor 'bias' " + sizes(b) + " on " + b.device().str() + " does not broadcast to [B, H, Nq, Nk] = " +
                       c10::str(c10::IntArrayRef(want, 4)) + " on " + q.device().str());
  }
}

double resolved_scale(double scale, int64_t head_dim) { return scale > 0 ? scale : 1.0 / std::sqrt(double(head_dim)); }

}  // namespace

AttendProblem describe(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const AttendMask& mask,
                       const AttendOptions& options) {
  AttendProblem p;
  p.requested = options.backend;
  p.cuda = q.is_cuda();
  const auto dt = q.scalar_type();
  p.half = (dt == torch::kBFloat16 || dt == torch::kHalf) && k.scalar_type() == dt && v.scalar_type() == dt;
  p.head_dim = q.size(3);
  p.q_len = q.size(2);
  p.k_len = k.size(2);
  if (mask.blocks) {
    p.mask = mask.blocks->is_full() ? MaskKind::Full : MaskKind::Sparse;
    p.block_size = mask.blocks->block_size;
  }
  p.bias = mask.bias.defined();
  p.custom_scale = options.scale > 0 && options.scale != 1.0 / std::sqrt(double(p.head_dim));
  p.differentiable = options.differentiable;
#ifdef LONGSHOT_HAS_SDPA
  p.sdpa_available = true;
#endif
#ifdef LONGSHOT_HAS_CUDA
  p.kernel_available = true;
#endif
  return p;
}

// ---- [choice] -----------------------------------------------------------------------------------

std::string unsupported_reason(Backend backend, const AttendProblem& p) {
  switch (backend) {
    case Backend::Auto:
      return "";
    case Backend::Cuda:
      if (!p.cuda) return "it needs CUDA tensors; 'q' is on the CPU";
      if (!p.kernel_available) return "this build has no CUDA kernels (configure with LONGSHOT_CUDA=ON)";
      if (!p.half) return "it takes bf16 or fp16 q, k, v (all one dtype)";
      if (p.head_dim != 64 && p.head_dim != 128) return "it takes head dim 64 or 128, not " + std::to_string(p.head_dim);
      if (p.q_len != p.k_len) return "it needs as many keys as queries";
      if (p.mask != MaskKind::None && p.block_size != 64 && p.block_size != 128)
        return "it takes mask blocks of 64 or 128 tokens, not " + std::to_string(p.block_size);
      if (p.bias) return "it takes no bias (eager does)";
      if (p.custom_scale) return "it runs the 1/sqrt(D) scale only";
      if (p.differentiable) return "it has no backward pass";
      return "";
    case Backend::Reference:
      if (p.cuda) return "it runs on the CPU; tensor 'q' is on CUDA";
      if (p.q_len != p.k_len) return "it needs as many keys as queries";
      if (p.bias) return "it takes no bias (eager does)";
      if (p.differentiable) return "it has no backward pass (it runs without autograd)";
      return "";
    case Backend::Sdpa:
      if (p.mask == MaskKind::Sparse) return "it takes no sparse block mask (masked does)";
      if (p.bias) return "it takes no bias (eager does)";
      return "";
    case Backend::Masked:
      if (p.mask == MaskKind::None) return "it needs a block mask";
      if (p.bias) return "it takes no bias (eager does)";
      return "";
    case Backend::Eager:
      if (p.mask == MaskKind::Sparse) return "it takes no sparse block mask (masked does)";
      return "";
  }
  return "unknown backend";
}

Backend choose_backend(const AttendProblem& p) {
  auto checked = [&](Backend b, const char* rule) {
    const auto why = unsupported_reason(b, p);
    if (!why.empty()) throw ParameterError("backend", std::string("'") + backend_name(b) + "' " + rule + " cannot run this call: " + why);
    return b;
  };
  if (p.requested != Backend::Auto) return checked(p.requested, "(requested)");
  if (p.bias) return checked(Backend::Eager, "(chosen for the bias)");
  if (p.mask == MaskKind::Sparse) {
    if (p.differentiable) return Backend::Masked;
    // On CUDA a sparse mask is our kernel's work; where it cannot run the call is an error that
    // says why, not a silent detour through a slower path (request Masked for that).
    return p.cuda ? checked(Backend::Cuda, "(chosen for a sparse mask on CUDA)") : Backend::Reference;
  }
  if (p.differentiable) return Backend::Sdpa;
  if (p.cuda) {
    if (p.sdpa_available) return Backend::Sdpa;
    return unsupported_reason(Backend::Cuda, p).empty() ? Backend::Cuda : Backend::Sdpa;
  }
  return p.q_len == p.k_len ? Backend::Reference : Backend::Sdpa;
}

// ---- [backends] ---------------------------------------------------------------------------------

namespace {

// LibTorch's SDPA on CUDA with an optional token mask (bool, true = attend).
torch::Tensor sdpa_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& tokens,
                        const AttendOptions& o) {
#ifdef LONGSHOT_HAS_SDPA
  c10::optional<double> scale;
  if (o.scale > 0) scale = o.scale;
  auto call = [&](const torch::Tensor& qq, const torch::Tensor& kk, const torch::Tensor& vv) {
    if (tokens.defined()) return at::scaled_dot_product_attention(qq, kk, vv, tokens, 0.0, false, scale);
    return at::scaled_dot_product_attention(qq, kk, vv, {}, 0.0, false, scale);
  };
  if (o.fp32_as_bf16 && q.scalar_type() == torch::kFloat)
    return call(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16)).to(torch::kFloat);
  return call(q, k, v);
#else
  (void)q, (void)k, (void)v, (void)tokens, (void)o;
  throw ParameterError("backend", "this LibTorch has no scaled_dot_product_attention");
#endif
}

bool use_sdpa(const torch::Tensor& q) {
#ifdef LONGSHOT_HAS_SDPA
  return q.is_cuda();
#else
  (void)q;
  return false;
#endif
}

// softmax(q kᵀ · scale) v in fp32 torch ops, queries in chunks of 4096 to bound the score matrix.
torch::Tensor run_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const AttendOptions& o) {
  if (use_sdpa(q)) return sdpa_cuda(q, k, v, {}, o);
  const double scale = resolved_scale(o.scale, q.size(-1));
  const auto kt = k.to(torch::kFloat).transpose(-2, -1);
  const auto vf = v.to(torch::kFloat);
  const int64_t chunk = 4096;
  std::vector<torch::Tensor> outs;
  for (int64_t s = 0; s < q.size(2); s += chunk) {
    auto qs = q.narrow(2, s, std::min(chunk, q.size(2) - s)).to(torch::kFloat);
    outs.push_back(torch::matmul(torch::softmax(torch::matmul(qs, kt) * scale, -1), vf));
  }
  return torch::cat(outs, 2).to(q.scalar_type());
}

torch::Tensor run_masked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const BlockMask& mask,
                         const AttendOptions& o) {
  const int64_t N = q.size(2);
  // Block keep matrix [Hm, QB, KB] → token mask [1, Hm, N, N] (ragged last block cut off).
  const auto keep = mask.to_dense();
  auto blocks = torch::from_blob(const_cast<uint8_t*>(keep.data()), {mask.num_heads, mask.num_q_blocks, mask.num_k_blocks},
                                 torch::kUInt8)
                    .to(q.device())
                    .to(torch::kBool);
  const int64_t bs = mask.block_size;
  auto tokens = blocks.repeat_interleave(bs, 1).repeat_interleave(bs, 2).narrow(1, 0, N).narrow(2, 0, N).unsqueeze(0);
  // A query row that keeps no key gives zeros, as the reference and the kernel do (a softmax
  // over nothing would be NaN).
  const auto row_kept = tokens.any(-1, /*keepdim=*/true);  // [1, Hm, N, 1]
  torch::Tensor out;
  if (use_sdpa(q)) {
    out = sdpa_cuda(q, k, v, tokens, o);  // memory-efficient SDPA takes the mask, differentiably
  } else {
    const double scale = resolved_scale(o.scale, q.size(-1));
    auto scores = torch::matmul(q.to(torch::kFloat), k.to(torch::kFloat).transpose(-2, -1)) * scale;
    scores = scores.masked_fill(tokens.logical_not(), -std::numeric_limits<float>::infinity());
    out = torch::matmul(torch::softmax(scores, -1), v.to(torch::kFloat)).to(q.scalar_type());
  }
  return torch::where(row_kept, out, torch::zeros({}, out.options()));
}

torch::Tensor run_eager(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias,
                        const AttendOptions& o) {
  auto scores = torch::matmul(q, k.transpose(-2, -1));
  const double scale = resolved_scale(o.scale, q.size(-1));
  if (scale != 1.0) scores = scores * scale;
  if (bias.defined()) scores = scores + bias;
  const auto probs = torch::softmax(scores.to(torch::kFloat), -1).to(q.scalar_type());
  return torch::matmul(probs, v);
}

torch::Tensor run_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const BlockMask* mask,
                            const AttendOptions& o) {
  const double scale = o.scale > 0 ? o.scale : 0.0;
  auto out = !mask || mask->is_full() ? dense_attention_reference(q, k, v, scale)
                                      : block_sparse_attention_reference(q, k, v, *mask, scale);
  return out.to(q.scalar_type());
}

}  // namespace

// ---- [call] -------------------------------------------------------------------------------------

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const AttendMask& mask,
                     const AttendOptions& options) {
  check_inputs(q, k, v, mask);
  switch (choose_backend(describe(q, k, v, mask, options))) {
    case Backend::Cuda:
      return mask.blocks ? sparse_attention(q, k, v, *mask.blocks, Backend::Cuda) : dense_attention(q, k, v, Backend::Cuda);
    case Backend::Reference: return run_reference(q, k, v, mask.blocks, options);
    case Backend::Sdpa: return run_sdpa(q, k, v, options);
    case Backend::Masked: return run_masked(q, k, v, *mask.blocks, options);
    case Backend::Eager: return run_eager(q, k, v, mask.bias, options);
    case Backend::Auto: break;
  }
  throw ParameterError("backend", "choose_backend returned 'auto'");
}

// ---- [inspection] -------------------------------------------------------------------------------

torch::Tensor query_probabilities(const torch::Tensor& q, const torch::Tensor& k, int64_t head, int64_t query) {
  if (q.dim() != 4 || k.dim() != 4 || q.size(1) != k.size(1) || q.size(3) != k.size(3))
    throw ShapeError("query_probabilities: 'q' " + sizes(q) + " and 'k' " + sizes(k) + " must be [B, H, N, D] alike");
  if (head < 0 || head >= q.size(1)) throw ParameterError("head", std::to_string(head) + " is outside [0, " + std::to_string(q.size(1)) + ")");
  if (query < 0 || query >= q.size(2))
    throw ParameterError("query", std::to_string(query) + " is outside [0, " + std::to_string(q.size(2)) + ")");
  auto qv = q[0][head][query].to(torch::kFloat);
  auto kv = k[0][head].to(torch::kFloat);
  return torch::softmax(torch::matmul(kv, qv) / std::sqrt(double(q.size(3))), 0);
}

}  // namespace longshot::attention

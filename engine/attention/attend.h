// The engine's one attention call: every softmax(q kᵀ · scale + bias) v that the DiT, the text
// encoders and the VAE compute goes through attend(), and choose_backend() alone decides how it
// runs (the way ggml_cuda_get_best_fattn_kernel returns the kernel to use).
// Attention room: takes tensors, a block mask or a bias; knows no model, sampler or pipeline.
//
// Sections: [backends] · [call] · [choice] · [inspection]
#pragma once
#include <cstdint>
#include <string>

#include <torch/types.h>

#include "engine/attention/block_mask.h"

namespace longshot::attention {

// ---- [backends] ---------------------------------------------------------------------------------

enum class Backend {
  Auto,       // choose_backend() picks one of the others
  Cuda,       // our block-sparse kernel (cuda/): CUDA bf16/fp16, head dim 64 or 128, Nq = Nk, no autograd
  Reference,  // the CPU fp32 oracle (reference.h): any block mask, Nq = Nk, no autograd
  Sdpa,       // LibTorch's at::scaled_dot_product_attention on CUDA (cuDNN / flash / memory-efficient,
              // LibTorch >= 2.1); elsewhere the same formula in fp32 torch ops. Dense, differentiable.
  Masked,     // the differentiable masked path: the block mask expanded to a token mask, through SDPA
              // on CUDA (LibTorch >= 2.1) or torch ops; rows that keep no key give zeros
  Eager,      // transformers' "eager" formula: q kᵀ in the input dtype, · scale, + bias, softmax in
              // fp32, back to the input dtype, · v. Any device, differentiable; the only one with a bias
};
const char* backend_name(Backend backend);

// ---- [call] -------------------------------------------------------------------------------------

// What shapes the scores before the softmax. Both empty: dense attention.
struct AttendMask {
  // Which (query block, key block) pairs exist: seq_len = Nq = Nk, 1 or H heads. A full mask is
  // dense attention. Not owned.
  const BlockMask* blocks = nullptr;
  // Added to the scaled scores, broadcastable to [B, H, Nq, Nk] (relative position bias, a
  // padding bias of large negative values). Eager only.
  torch::Tensor bias;
};

struct AttendOptions {
  Backend backend = Backend::Auto;  // anything but Auto is checked, then run (never replaced)
  double scale = 0.0;               // <= 0: 1/sqrt(D); T5 passes 1 (its init absorbs the scaling)
  // The result must carry gradients (training): only Sdpa, Masked and Eager qualify.
  bool differentiable = false;
  // fp32 q/k/v on CUDA run SDPA (Sdpa, Masked) in bf16 and come back fp32: flash and cuDNN take
  // only 16-bit types, and the fp32 fallback (no tensor cores) was most of a DiT training step.
  // The DiT sets it; the VAE's fp32 decode stays fp32.
  bool fp32_as_bf16 = false;
};

// q [B, H, Nq, D], k [B, H, Nk, D], v [B, H, Nk, Dv] → [B, H, Nq, Dv] in q's dtype, computed by
// choose_backend(describe(...)). Inputs that do not fit each other: ShapeError naming the tensor;
// a requested backend that cannot run them: ParameterError saying why (never a silent fallback).
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttendMask& mask = {}, const AttendOptions& options = {});

// ---- [choice] -----------------------------------------------------------------------------------

enum class MaskKind { None, Full, Sparse };

// The facts the choice depends on, with no tensors, so the rules can be tested on any machine.
struct AttendProblem {
  Backend requested = Backend::Auto;
  bool cuda = false;              // the tensors live on a CUDA device
  bool half = false;              // q, k, v are all bf16 or all fp16
  int64_t head_dim = 0;
  int64_t q_len = 0, k_len = 0;
  MaskKind mask = MaskKind::None;
  int64_t block_size = 0;         // the block mask's, 0 without one
  bool bias = false;
  bool custom_scale = false;      // a scale other than 1/sqrt(D) was asked for
  bool differentiable = false;
  bool sdpa_available = false;    // this LibTorch has at::scaled_dot_product_attention with a scale (>= 2.1)
  bool kernel_available = false;  // this build has our CUDA kernels
};

AttendProblem describe(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const AttendMask& mask,
                       const AttendOptions& options);

// The backend that runs `p` (never Auto). A requested backend is returned when it can run `p`
// (ParameterError with unsupported_reason otherwise). Auto, in this order:
//   1. a bias                         → Eager (the one backend that adds one)
//   2. a sparse block mask            → Masked if differentiable, else Cuda on CUDA, else Reference
//   3. dense (no mask or a full mask) → Sdpa if differentiable;
//                                       on CUDA: Sdpa where LibTorch has it (cuDNN / flash beat our
//                                       kernel on dense work), else Cuda where it fits, else Sdpa;
//                                       on the CPU: Reference when Nq = Nk, else Sdpa (cross-attention)
Backend choose_backend(const AttendProblem& p);
// Why `backend` cannot run `p`, in words; empty when it can (Auto: always empty).
std::string unsupported_reason(Backend backend, const AttendProblem& p);

// ---- [inspection] -------------------------------------------------------------------------------

// The dense attention distribution of one query (batch 0): softmax over keys of k · q / sqrt(D),
// [Nk] fp32 on q's device. q, k [B, H, N, D]; `query` indexes q's tokens. For heatmaps.
torch::Tensor query_probabilities(const torch::Tensor& q, const torch::Tensor& k, int64_t head, int64_t query);

}  // namespace longshot::attention

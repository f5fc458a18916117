// Attention dispatch: the LibTorch reference on CPU; the CUDA kernel (when this build has it)
// for CUDA tensors. An unsupported combination is a ShapeError, never a silent fallback.
#include "engine/attention/attention.h"

#include "engine/attention/mask_tensor.h"
#include "engine/attention/reference.h"
#include "engine/common/error.h"

#ifdef LONGSHOT_HAS_CUDA
#include "engine/attention/cuda/torch_adapter.h"
#endif

namespace longshot::attention {

namespace {
bool on_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const bool any = q.is_cuda() || k.is_cuda() || v.is_cuda();
  if (any && !(q.is_cuda() && k.is_cuda() && v.is_cuda())) {
    throw ShapeError("attention: tensors 'q', 'k', 'v' must all be on the same device (some are on CUDA, some not)");
  }
  return any;
}

// The routes of this file; attend() runs the others.
void check_core_backend(Backend b, const char* where) {
  if (b != Backend::Auto && b != Backend::Cuda && b != Backend::Reference) {
    throw ParameterError("backend", std::string(where) + " runs 'auto', 'cuda' or 'reference', not '" + backend_name(b) +
                                        "' (call attention::attend)");
  }
}

torch::Tensor run_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const BlockMask& mask) {
#ifdef LONGSHOT_HAS_CUDA
  return cuda::block_sparse_attention(q, k, v, mask);
#else
  (void)q, (void)k, (void)v, (void)mask;
  throw ShapeError("attention: backend 'cuda' requested but this build has no CUDA kernels (configure with LONGSHOT_CUDA=ON)");
#endif
}
}  // namespace

torch::Tensor sparse_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const BlockMask& mask, Backend backend) {
  detail::check_qkv(q, k, v, "sparse_attention");
  check_core_backend(backend, "sparse_attention");
  detail::check_mask_fits(mask, q.size(1), q.size(2), "sparse_attention");
  const bool cuda_inputs = on_cuda(q, k, v);
  if (backend == Backend::Auto) backend = cuda_inputs ? Backend::Cuda : Backend::Reference;
  if (backend == Backend::Cuda) {
    if (!cuda_inputs) throw ShapeError("sparse_attention: backend 'cuda' needs CUDA tensors; 'q' is on the CPU");
    return run_cuda(q, k, v, mask);
  }
  if (cuda_inputs) {
    throw ShapeError(std::string("sparse_attention: backend '") + backend_name(backend) +
                     "' runs on the CPU; tensor 'q' is on CUDA (move it or use Backend::Cuda)");
  }
  auto out = mask.is_full() ? dense_attention_reference(q, k, v) : block_sparse_attention_reference(q, k, v, mask);
  return out.to(q.scalar_type());
}

torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, Backend backend) {
  detail::check_qkv(q, k, v, "dense_attention");
  check_core_backend(backend, "dense_attention");
  const bool cuda_inputs = on_cuda(q, k, v);
  if (backend == Backend::Auto) backend = cuda_inputs ? Backend::Cuda : Backend::Reference;
  if (backend == Backend::Cuda) {
    if (!cuda_inputs) throw ShapeError("dense_attention: backend 'cuda' needs CUDA tensors; 'q' is on the CPU");
    // The kernel's block size: 128 (64 when the sequence is shorter than one 128 block).
    const int64_t bs = q.size(2) >= 128 ? 128 : 64;
    return run_cuda(q, k, v, BlockMask::full(q.size(2), bs, 1));
  }
  if (cuda_inputs) {
    throw ShapeError("dense_attention: backend 'reference' runs on the CPU; tensor 'q' is on CUDA");
  }
  return dense_attention_reference(q, k, v).to(q.scalar_type());
}

bool cuda_backend_available() {
#ifdef LONGSHOT_HAS_CUDA
  return cuda::device_available();
#else
  return false;
#endif
}

std::string backend_description() {
#ifdef LONGSHOT_HAS_CUDA
  if (cuda::device_available()) return "cuda (Longshot block-sparse kernels) + cpu reference";
  return "cpu reference (CUDA kernels built, but " + cuda::unavailable_reason() + ")";
#else
  return "cpu reference (built without CUDA)";
#endif
}

}  // namespace longshot::attention

// The LibTorch side of the CUDA kernels, part 1: device availability, the validation the other
// parts share, the attention kernel's launch wrappers, and token permutation. Sections:
//   [device]     availability
//   [checks]     shared validation and small conversions (adapter_detail.h)
//   [attention]  q/k/v validation and the kernel call
//   [tokens]     token permutation
// Masks on the GPU (upload, download, schedule, cache): device_mask.cpp. GPU mask building
// (pooling, block scores, top-k / cumulative selection): mask_build.cpp.
#include "engine/attention/cuda/torch_adapter.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>

#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include "engine/attention/cuda/adapter_detail.h"
#include "engine/attention/cuda/block_sparse.h"
#include "engine/common/cuda/cuda_check.h"
#include "engine/common/cuda/device_stream.h"
#include "engine/common/error.h"

#if LONGSHOT_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace longshot::attention::cuda {

using ::longshot::cuda::DeviceStream;
using detail::check_mask_geometry;

// -------------------------------------------------------------------------------------[device]
std::string unavailable_reason() {
#if !LONGSHOT_TORCH_CUDA
  return "this LibTorch was built without CUDA, so no tensor can live on a GPU";
#else
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a failed probe
    return std::string("no usable CUDA device: ") + cudaGetErrorString(err);
  }
  if (count == 0) return "no CUDA device visible";
  if (!torch::cuda::is_available()) return "LibTorch sees no CUDA device";
  cudaDeviceProp prop{};
  LONGSHOT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  if (prop.major < 8) return std::string(prop.name) + " is below sm_80 (mma.sync bf16 needs Ampere+)";
  return {};
#endif
}

// Probed once: the dynamic policies ask on every mask build, and a device does not appear or
// vanish within a process.
bool device_available() {
  static const bool available = unavailable_reason().empty();
  return available;
}

// -------------------------------------------------------------------------------------[checks]
namespace detail {

torch::TensorOptions int32_on(const torch::Device& device) {
  return torch::TensorOptions().dtype(torch::kInt32).device(device);
}

void check_mask_geometry(int64_t seq_len, int64_t block_size, const char* who) {
  if (block_size != 64 && block_size != 128)
    throw ParameterError("block_size", std::string(who) + ": " + std::to_string(block_size) +
                                           " not supported by the CUDA kernel (64 or 128)");
  if (seq_len <= 0) throw ShapeError(std::string(who) + ": mask seq_len must be positive");
}

std::vector<int32_t> host_ints(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

int device_index_of(const torch::Device& device) {
  if (!device.is_cuda()) throw ShapeError("device masks live on CUDA devices, got " + device.str());
#if LONGSHOT_TORCH_CUDA
  return device.has_index() ? device.index() : static_cast<int>(c10::cuda::current_device());
#else
  return device.has_index() ? device.index() : 0;
#endif
}

}  // namespace detail

// ----------------------------------------------------------------------------------[attention]
namespace {

void check_qkv(const torch::Tensor& t, const char* name, const torch::Tensor& q) {
  if (!t.defined()) throw ShapeError(std::string(name) + " is undefined");
  if (!t.is_cuda()) throw ShapeError(std::string(name) + " must be a CUDA tensor, got " + t.device().str());
  if (t.dim() != 4) throw ShapeError(std::string(name) + " must be [B, H, N, D], got " + std::to_string(t.dim()) + " dims");
  if (t.scalar_type() != torch::kBFloat16 && t.scalar_type() != torch::kHalf)
    throw ShapeError(std::string(name) + " must be bf16 or fp16, got " + std::string(c10::toString(t.scalar_type())));
  if (t.scalar_type() != q.scalar_type()) throw ShapeError(std::string(name) + " dtype differs from q's");
  if (t.device() != q.device()) throw ShapeError(std::string(name) + " is on another device than q");
  if (t.sizes() != q.sizes()) throw ShapeError(std::string(name) + " shape differs from q's");
}

// The kernel reads 16-byte vectors along D: D contiguous, other strides multiples of 8.
torch::Tensor kernel_ready(const torch::Tensor& t, const char* name) {
  const bool ok = t.stride(3) == 1 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 &&
                  t.stride(2) % 8 == 0 && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  if (ok) return t;
  spdlog::debug("block_sparse_attention: {} has strides the kernel cannot read; copying it", name);
  return t.contiguous();
}

}  // namespace

torch::Tensor block_sparse_attention(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                     const torch::Tensor& v_in, DeviceBlockMask& mask, double scale,
                                     KernelPath path, int m_tiles) {
  check_qkv(q_in, "q", q_in);
  check_qkv(k_in, "k", q_in);
  check_qkv(v_in, "v", q_in);
  const int64_t B = q_in.size(0), H = q_in.size(1), N = q_in.size(2), D = q_in.size(3);
  if (D != 64 && D != 128) throw ShapeError("q head dim " + std::to_string(D) + " not supported (64 or 128)");
  check_mask_geometry(mask.seq_len, mask.block_size, "block_sparse_attention");
  if (mask.seq_len != N)
    throw ShapeError("mask seq_len " + std::to_string(mask.seq_len) + " != q tokens " + std::to_string(N));
  if (mask.num_heads != 1 && mask.num_heads != H)
    throw ShapeError("mask heads " + std::to_string(mask.num_heads) + " must be 1 or q heads " + std::to_string(H));
  if (!mask.full && (!mask.row_offsets.defined() || mask.row_offsets.device() != q_in.device() ||
                     !mask.col_indices.defined() || mask.col_indices.device() != q_in.device()))
    throw ShapeError("mask arrays must live on q's device (use upload_mask)");
  if (mask.full && mask.schedule.defined() && mask.schedule.device() != q_in.device())
    throw ShapeError("mask schedule must live on q's device");
  if (N > std::numeric_limits<int32_t>::max() / 2) throw ShapeError("q has too many tokens for int32 indexing");
  if (!mask.schedule.defined() || mask.schedule_heads != H) prepare_schedule(mask, H);

  const auto q = kernel_ready(q_in, "q");
  const auto k = kernel_ready(k_in, "k");
  const auto v = kernel_ready(v_in, "v");
  // [B, N, H, D] memory, returned as a [B, H, N, D] view: the model's next step is a reshape.
  auto o = torch::empty({B, N, H, D}, q.options()).transpose(1, 2);

  BlockSparseParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = o.data_ptr();
  p.q_batch_stride = q.stride(0), p.q_head_stride = q.stride(1), p.q_row_stride = q.stride(2);
  p.k_batch_stride = k.stride(0), p.k_head_stride = k.stride(1), p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_head_stride = v.stride(1), p.v_row_stride = v.stride(2);
  p.o_batch_stride = o.stride(0), p.o_head_stride = o.stride(1), p.o_row_stride = o.stride(2);
  p.batch = static_cast<int>(B);
  p.heads = static_cast<int>(H);
  p.seq_len = static_cast<int>(N);
  p.head_dim = static_cast<int>(D);
  p.dtype = q.scalar_type() == torch::kBFloat16 ? DType::BFloat16 : DType::Float16;
  p.block_size = static_cast<int>(mask.block_size);
  p.num_q_blocks = static_cast<int>(mask.num_q_blocks);
  p.num_k_blocks = static_cast<int>(mask.num_k_blocks);
  p.mask_heads = static_cast<int>(mask.num_heads);
  p.row_offsets = mask.full ? nullptr : mask.row_offsets.data_ptr<int32_t>();
  p.col_indices = mask.full ? nullptr : mask.col_indices.data_ptr<int32_t>();
  p.schedule = mask.schedule.data_ptr<int32_t>();
  p.num_items = static_cast<int>(mask.schedule.numel());
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(D));
  p.scale_log2 = static_cast<float>(s * 1.4426950408889634);
  p.m_tiles = m_tiles;
  p.path = path;

  std::string why;
  if (!block_sparse_supported(p, &why)) throw ShapeError("block_sparse_attention: " + why);
  const DeviceStream stream(q.device());
  block_sparse_forward(p, stream.get());
  return o;
}

torch::Tensor block_sparse_attention(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const BlockMask& mask) {
  check_qkv(q, "q", q);
  // The kernel leaves the mask alone when its schedule was made for q's heads (the cache key),
  // so the shared copy is only read here.
  const auto device_mask = cached_device_mask(mask, q.device(), q.size(1));
  return block_sparse_attention(q, k, v, *device_mask, 0.0);
}

torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              int64_t block_size, double scale) {
  check_qkv(q, "q", q);
  auto mask = full_device_mask(q.size(2), block_size, q.device(), q.size(1));
  return block_sparse_attention(q, k, v, mask, scale);
}

bool hopper_kernel_applies(const torch::Tensor& q, int64_t block_size) {
  if (!q.defined() || !q.is_cuda() || !device_available()) return false;
  const DeviceStream on_device(q.device());  // the availability probe asks the current device
  BlockSparseParams p;
  p.block_size = static_cast<int>(block_size);
  return hopper_path_available(p);
}

// -------------------------------------------------------------------------------------[tokens]
PermutationTensors permutation_tensors(const Ordering& ordering, const torch::Device& device) {
  const auto n = static_cast<int64_t>(ordering.perm.size());
  if (n == 0 || static_cast<int64_t>(ordering.inverse.size()) != n)
    throw ShapeError("permutation_tensors: ordering has no permutation (perm/inverse sizes differ or are 0)");
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  PermutationTensors out;
  out.perm = torch::from_blob(const_cast<int64_t*>(ordering.perm.data()), {n}, opts).to(device, torch::kInt64, false, true);
  out.inverse = torch::from_blob(const_cast<int64_t*>(ordering.inverse.data()), {n}, opts).to(device, torch::kInt64, false, true);
  return out;
}

torch::Tensor permute_tokens(const torch::Tensor& x, const torch::Tensor& index, int64_t dim) {
  if (!x.defined() || !index.defined()) throw ShapeError("permute_tokens: x and index must be defined");
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  if (d < 0 || d >= x.dim() || index.dim() != 1 || index.numel() != x.size(d))
    throw ShapeError("permute_tokens: index must be 1-D with x.size(" + std::to_string(dim) + ") entries");
  return x.index_select(d, index.to(x.device()));
}

}  // namespace longshot::attention::cuda

// The LibTorch side of the CUDA kernels: validation (naming the tensor), masks on the GPU, the
// work schedule, and GPU mask building with LibTorch ops. Sections:
//   [device]     availability, error logging
//   [masks]      upload / download / schedule
//   [attention]  validation and the kernel call
//   [building]   pooling, block scores, top-k / cumulative selection, token permutation
#include "engine/attention/cuda/torch_adapter.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <string>

#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include "engine/attention/cuda/block_sparse.h"
#include "engine/attention/cuda/cuda_check.h"
#include "engine/attention/cuda/device_stream.h"
#include "engine/attention/cuda/mask_select.h"
#include "engine/common/error.h"

#if LONGSHOT_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace longshot::attention::cuda {

// -------------------------------------------------------------------------------------[device]
namespace detail {
void log_cuda_error(const std::string& message) { spdlog::error("{}", message); }
}  // namespace detail

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

// --------------------------------------------------------------------------------------[masks]
namespace {

torch::TensorOptions int32_on(const torch::Device& device) {
  return torch::TensorOptions().dtype(torch::kInt32).device(device);
}

void check_mask_geometry(int64_t seq_len, int64_t block_size, const char* who) {
  if (block_size != 64 && block_size != 128)
    throw ParameterError("block_size", std::string(who) + ": " + std::to_string(block_size) +
                                           " not supported by the CUDA kernel (64 or 128)");
  if (seq_len <= 0) throw ShapeError(std::string(who) + ": mask seq_len must be positive");
}

}  // namespace

double DeviceBlockMask::block_sparsity() const {
  const double total = static_cast<double>(num_heads) * num_q_blocks * num_k_blocks;
  return total > 0 ? 1.0 - static_cast<double>(kept_blocks()) / total : 0.0;
}

ScheduleOrder schedule_order() {
  static const ScheduleOrder order = [] {
    const char* env = std::getenv("LONGSHOT_SCHEDULE");
    const std::string v = env ? env : "";
    if (v.empty() || v == "bands") return ScheduleOrder::Bands;
    if (v == "sorted") return ScheduleOrder::Sorted;
    if (v == "natural") return ScheduleOrder::Natural;
    spdlog::warn("LONGSHOT_SCHEDULE='{}' is not one of bands, sorted, natural: using bands", v);
    return ScheduleOrder::Bands;
  }();
  return order;
}

namespace {
std::vector<int32_t> host_ints(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

// Work items h · nq + qb in launch order, from the mask's row offsets on the host (rows of
// mask_heads heads; a shared row serves every head). Natural: head-major order (neighbouring query
// blocks of one head share most key blocks, so CTAs that run together hit L2). Bands: that order,
// stably regrouped so rows of >= 3/4 of the longest row run first, then >= 1/2, ... (heavy first
// against the tail, locality kept within a band). Sorted: strictly longest first (stable; a shared
// row runs for every head back to back).
std::vector<int32_t> schedule_items(const std::vector<int32_t>& ro, int64_t mask_heads, int64_t nq, int64_t heads) {
  const int64_t items = heads * nq;
  auto len = [&](int64_t item) {
    const int64_t row = mask_heads == 1 ? item % nq : item;
    return static_cast<int64_t>(ro[static_cast<size_t>(row + 1)]) - ro[static_cast<size_t>(row)];
  };
  std::vector<int32_t> order(static_cast<size_t>(items));
  std::iota(order.begin(), order.end(), 0);
  const ScheduleOrder kind = schedule_order();
  if (kind == ScheduleOrder::Sorted) {
    if (mask_heads == 1) {
      std::vector<int32_t> rows(static_cast<size_t>(nq));
      std::iota(rows.begin(), rows.end(), 0);
      std::stable_sort(rows.begin(), rows.end(), [&](int32_t a, int32_t b) { return len(a) > len(b); });
      size_t at = 0;
      for (const int32_t r : rows)
        for (int64_t h = 0; h < heads; ++h) order[at++] = static_cast<int32_t>(r + h * nq);
    } else {
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return len(a) > len(b); });
    }
  } else if (kind == ScheduleOrder::Bands) {
    constexpr int64_t kBands = 4;
    int64_t longest = 1;
    for (int64_t i = 0; i < items; ++i) longest = std::max(longest, len(i));
    auto band = [&](int32_t item) { return (len(item) * kBands + longest - 1) / longest; };  // 0..kBands
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return band(a) > band(b); });
  }
  return order;
}
}  // namespace

void prepare_schedule(DeviceBlockMask& mask, int64_t heads, const std::vector<int32_t>* host_row_offsets) {
  if (mask.num_heads != 1 && mask.num_heads != heads)
    throw ShapeError("mask has " + std::to_string(mask.num_heads) + " heads; attention has " +
                     std::to_string(heads) + " (must be 1 or equal)");
  if (mask.full) {  // every row equally heavy: natural order
    if (!mask.schedule.defined()) throw ShapeError("full device mask has no device: make it with full_device_mask");
    mask.schedule = torch::arange(heads * mask.num_q_blocks, mask.schedule.options());
    mask.schedule_heads = heads;
    return;
  }
  // The order is decided on the host from the row offsets (the callers that build a mask hold
  // them already; otherwise one small download), then one upload: no sort or reduction launches.
  const std::vector<int32_t> downloaded = host_row_offsets ? std::vector<int32_t>() : host_ints(mask.row_offsets);
  const auto& ro = host_row_offsets ? *host_row_offsets : downloaded;
  if (static_cast<int64_t>(ro.size()) != mask.num_rows() + 1)
    throw ShapeError("prepare_schedule: " + std::to_string(ro.size()) + " row offsets for " + std::to_string(mask.num_rows()) +
                     " rows");
  auto items = schedule_items(ro, mask.num_heads, mask.num_q_blocks, heads);
  mask.schedule = torch::from_blob(items.data(), {static_cast<int64_t>(items.size())}, torch::TensorOptions().dtype(torch::kInt32))
                      .to(mask.row_offsets.device());  // a blocking copy: `items` outlives it
  mask.schedule_heads = heads;
}

DeviceBlockMask full_device_mask(int64_t seq_len, int64_t block_size, const torch::Device& device,
                                 int64_t heads) {
  check_mask_geometry(seq_len, block_size, "full_device_mask");
  if (heads <= 0) throw ParameterError("heads", "must be positive");
  DeviceBlockMask out;
  out.seq_len = seq_len;
  out.block_size = block_size;
  out.num_heads = 1;
  out.num_q_blocks = BlockMask::blocks_for(seq_len, block_size);
  out.num_k_blocks = out.num_q_blocks;
  out.full = true;
  out.schedule = torch::arange(heads * out.num_q_blocks, int32_on(device));
  out.schedule_heads = heads;
  return out;
}

DeviceBlockMask upload_mask(const BlockMask& mask, const torch::Device& device, int64_t heads) {
  mask.validate();
  check_mask_geometry(mask.seq_len, mask.block_size, "upload_mask");
  if (mask.is_full()) {
    auto full = full_device_mask(mask.seq_len, mask.block_size, device, heads > 0 ? heads : mask.num_heads);
    full.ordering = mask.ordering;
    return full;
  }
  DeviceBlockMask out;
  out.seq_len = mask.seq_len;
  out.block_size = mask.block_size;
  out.num_heads = mask.num_heads;
  out.num_q_blocks = mask.num_q_blocks;
  out.num_k_blocks = mask.num_k_blocks;
  out.ordering = mask.ordering;
  auto cpu = torch::TensorOptions().dtype(torch::kInt32);
  out.row_offsets = torch::from_blob(const_cast<int32_t*>(mask.row_offsets.data()),
                                     {static_cast<int64_t>(mask.row_offsets.size())}, cpu)
                        .to(device, torch::kInt32, false, true);
  const auto& cols = mask.cols();
  out.col_indices = cols.empty() ? torch::empty({0}, int32_on(device))
                                 : torch::from_blob(const_cast<int32_t*>(cols.data()),
                                                    {static_cast<int64_t>(cols.size())}, cpu)
                                       .to(device, torch::kInt32, false, true);
  prepare_schedule(out, heads > 0 ? heads : mask.num_heads, &mask.row_offsets);
  return out;
}

namespace {
// A sparse device mask's geometry and row offsets on the host; its columns are the caller's.
BlockMask download_rows(const DeviceBlockMask& mask, const std::vector<int32_t>* host_row_offsets = nullptr) {
  BlockMask out;
  out.seq_len = mask.seq_len;
  out.block_size = mask.block_size;
  out.num_heads = mask.num_heads;
  out.num_q_blocks = mask.num_q_blocks;
  out.num_k_blocks = mask.num_k_blocks;
  out.ordering = mask.ordering;
  out.row_offsets = host_row_offsets ? *host_row_offsets : host_ints(mask.row_offsets);
  return out;
}
}  // namespace

BlockMask download_mask(const DeviceBlockMask& mask) {
  if (mask.full) return BlockMask::full(mask.seq_len, mask.block_size, 1, mask.ordering);
  BlockMask out = download_rows(mask);
  out.col_indices = host_ints(mask.col_indices);
  return out;
}

namespace {
int device_index_of(const torch::Device& device) {
  if (!device.is_cuda()) throw ShapeError("device masks live on CUDA devices, got " + device.str());
#if LONGSHOT_TORCH_CUDA
  return device.has_index() ? device.index() : static_cast<int>(c10::cuda::current_device());
#else
  return device.has_index() ? device.index() : 0;
#endif
}
}  // namespace

std::shared_ptr<DeviceBlockMask> cached_device_mask(const BlockMask& mask, const torch::Device& device,
                                                    int64_t heads) {
  if (heads <= 0) throw ParameterError("heads", "must be positive, got " + std::to_string(heads));
  const int index = device_index_of(device);
  if (auto copy = mask.device_copy(index, heads)) return std::static_pointer_cast<DeviceBlockMask>(copy.handle);
  auto uploaded = std::make_shared<DeviceBlockMask>(upload_mask(mask, torch::Device(torch::kCUDA, index), heads));
  mask.attach_device_copy(uploaded, index, heads);
  return uploaded;
}

BlockMaskPtr host_mask_with_device_copy(DeviceBlockMask mask, int64_t heads, const std::vector<int32_t>* host_row_offsets) {
  const torch::Tensor& where = mask.row_offsets.defined() ? mask.row_offsets : mask.schedule;
  if (!where.defined()) throw ShapeError("host_mask_with_device_copy: the device mask has no arrays and no schedule");
  if (heads > 0 && (!mask.schedule.defined() || mask.schedule_heads != heads)) prepare_schedule(mask, heads, host_row_offsets);
  const int64_t schedule_heads = mask.schedule_heads;
  const int index = device_index_of(where.device());
  if (mask.full) {
    auto host = std::make_shared<BlockMask>(download_mask(mask));
    host->attach_device_copy(std::make_shared<DeviceBlockMask>(std::move(mask)), index, schedule_heads);
    return host;
  }
  // Row offsets now (sparsity figures, geometry checks: ~74 KB at 196k tokens); the columns
  // (~48 MB there) only when a host reader asks (BlockMask::cols()).
  auto host = std::make_shared<BlockMask>(download_rows(mask, host_row_offsets));
  auto device = std::make_shared<DeviceBlockMask>(std::move(mask));
  const int64_t kept = host->row_offsets.empty() ? 0 : host->row_offsets.back();
  if (device->col_indices.numel() != kept)
    throw ShapeError("host_mask_with_device_copy: col_indices has " + std::to_string(device->col_indices.numel()) +
                     " entries, row_offsets ends at " + std::to_string(kept));
  // The fetch holds the column tensor only (not the whole device mask), and drops it once done.
  host->deferred_cols = std::make_shared<DeferredColumns>(
      [cols = device->col_indices]() { return host_ints(cols); }, kept);
  host->attach_device_copy(std::move(device), index, schedule_heads);
  return host;
}

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

// -----------------------------------------------------------------------------------[building]
torch::Tensor block_mean_pool(const torch::Tensor& x, int64_t block_size) {
  if (!x.defined() || x.dim() != 4) throw ShapeError("block_mean_pool: x must be [B, H, N, D]");
  if (block_size <= 0) throw ParameterError("block_size", "must be positive");
  const int64_t B = x.size(0), H = x.size(1), N = x.size(2), D = x.size(3);
  const int64_t nb = (N + block_size - 1) / block_size;
  const bool kernel_layout = x.is_cuda() && (x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf) &&
                             (D == 64 || D == 128) && x.stride(3) == 1 && x.stride(0) % 8 == 0 &&
                             x.stride(1) % 8 == 0 && x.stride(2) % 8 == 0 &&
                             reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 && N > 0 && B * H * nb < (1ll << 31);
  if (kernel_layout) {  // one 16-byte-load pass (mask_select.cu)
    const DeviceStream stream(x.device());
    auto out = torch::empty({B, H, nb, D}, x.options().dtype(torch::kFloat32));
    cuda::block_mean_pool(x.data_ptr(), x.scalar_type() == torch::kHalf, static_cast<int>(B), static_cast<int>(H),
                          static_cast<int>(N), static_cast<int>(D), x.stride(0), x.stride(1), x.stride(2),
                          static_cast<int>(block_size), out.data_ptr<float>(), stream.get());
    return out;
  }
  const int64_t full = N / block_size;
  std::vector<torch::Tensor> parts;
  if (full > 0) {
    // Splitting N is a view even for transposed [B, N, H, D] memory: no copy of x.
    parts.push_back(x.narrow(2, 0, full * block_size)
                        .view({B, H, full, block_size, D})
                        .sum(3, /*keepdim=*/false, torch::kFloat32)
                        .div_(static_cast<double>(block_size)));
  }
  if (nb > full) {
    const int64_t tail = N - full * block_size;
    parts.push_back(x.narrow(2, full * block_size, tail).sum(2, /*keepdim=*/true, torch::kFloat32).div_(static_cast<double>(tail)));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
}

torch::Tensor block_scores(const torch::Tensor& q, const torch::Tensor& k, int64_t block_size, double scale) {
  if (!q.defined() || !k.defined() || q.dim() != 4 || k.sizes() != q.sizes())
    throw ShapeError("block_scores: q and k must be [B, H, N, D] of one shape");
  return block_scores_from_means(block_mean_pool(q, block_size), block_mean_pool(k, block_size), scale);
}

torch::Tensor block_scores_from_means(const torch::Tensor& qp, const torch::Tensor& kp, double scale) {
  if (!qp.defined() || !kp.defined() || qp.dim() != 4 || kp.dim() != 4 || qp.size(0) != kp.size(0) ||
      qp.size(1) != kp.size(1) || qp.size(3) != kp.size(3))
    throw ShapeError("block_scores_from_means: qp and kp must be [B, H, nb, D] with one B, H, D");
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(qp.size(3)));
  const auto logits = torch::matmul(qp.to(torch::kFloat32), kp.to(torch::kFloat32).transpose(-1, -2)).mul_(s);
  return torch::softmax(logits, -1).mean(0);  // [H, nq, nk]
}

DeviceBlockMask mask_from_keep(const torch::Tensor& keep_in, int64_t seq_len, int64_t block_size,
                               bool keep_diagonal, OrderingKind ordering, std::vector<int32_t>* host_row_offsets,
                               int64_t attention_heads) {
  check_mask_geometry(seq_len, block_size, "mask_from_keep");
  const int64_t nb = (seq_len + block_size - 1) / block_size;
  if (!keep_in.defined() || keep_in.dim() != 3 || keep_in.size(1) != nb || keep_in.size(2) != nb)
    throw ShapeError("mask_from_keep: keep must be [heads, " + std::to_string(nb) + ", " + std::to_string(nb) + "]");
  DeviceBlockMask out;
  out.seq_len = seq_len;
  out.block_size = block_size;
  out.num_heads = keep_in.size(0);
  out.num_q_blocks = nb;
  out.num_k_blocks = nb;
  out.ordering = ordering;
  const int64_t rows = out.num_rows();
  std::vector<int32_t> offsets;
  if (keep_in.is_cuda()) {
    // Counts (diagonal forced in the kernels, no copy of the bitmap), their prefix sum, one
    // download of the offsets (to size the columns; the host mask and the schedule use it too),
    // then the columns in one pass.
    const DeviceStream stream(keep_in.device());
    const auto bytes = (keep_in.scalar_type() == torch::kUInt8 ? keep_in : keep_in.to(torch::kUInt8)).contiguous();
    const auto opts = int32_on(keep_in.device());
    const auto counts = torch::empty({rows}, opts);
    keep_counts(bytes.data_ptr<uint8_t>(), rows, static_cast<int>(nb), keep_diagonal, counts.data_ptr<int32_t>(), stream.get());
    out.row_offsets = torch::zeros({rows + 1}, opts);
    auto tail = out.row_offsets.narrow(0, 1, rows);
    at::cumsum_out(tail, counts, 0, torch::kInt32);
    offsets = host_ints(out.row_offsets);
    const int64_t kept = offsets.back();
    out.col_indices = torch::empty({kept}, opts);
    if (kept > 0)
      keep_cols(bytes.data_ptr<uint8_t>(), out.row_offsets.data_ptr<int32_t>(), static_cast<int>(rows), static_cast<int>(nb),
                out.col_indices.data_ptr<int32_t>(), stream.get(), keep_diagonal);
  } else {
    auto keep = keep_in.to(torch::kBool);
    if (keep_diagonal) {
      keep = keep.clone();
      keep.diagonal(0, 1, 2).fill_(true);
    }
    const auto flat = keep.reshape({-1, nb});
    const auto counts = flat.sum(1, /*keepdim=*/false, torch::kInt32);
    out.row_offsets = torch::cat({torch::zeros({1}, counts.options()), counts.cumsum(0, torch::kInt32)});
    // nonzero walks row-major: column indices come out ascending within each row.
    out.col_indices = flat.nonzero().select(1, 1).to(torch::kInt32).contiguous();
    offsets = host_ints(out.row_offsets);
  }
  prepare_schedule(out, attention_heads > 0 ? attention_heads : out.num_heads, &offsets);
  if (host_row_offsets) *host_row_offsets = std::move(offsets);
  return out;
}

namespace {
void check_scores(const torch::Tensor& scores, const char* who) {
  if (!scores.defined() || scores.dim() != 3 || scores.size(1) != scores.size(2))
    throw ShapeError(std::string(who) + ": scores must be [heads, nb, nb]");
}
}  // namespace

DeviceBlockMask select_topk(const torch::Tensor& scores, int64_t k, int64_t seq_len, int64_t block_size,
                            OrderingKind ordering, const torch::Tensor& cand) {
  check_scores(scores, "select_topk");
  check_mask_geometry(seq_len, block_size, "select_topk");
  const int64_t nb = (seq_len + block_size - 1) / block_size;
  if (scores.size(1) != nb) throw ShapeError("select_topk: scores must be [heads, " + std::to_string(nb) + ", " + std::to_string(nb) + "]");
  if (cand.defined() && (cand.dim() != 2 || cand.size(0) != nb || cand.size(1) != nb || cand.device() != scores.device()))
    throw ShapeError("select_topk: cand must be [" + std::to_string(nb) + ", " + std::to_string(nb) + "] on the scores' device");
  if (k < 1) throw ParameterError("k", "must be >= 1, got " + std::to_string(k));
  k = std::min<int64_t>(k, nb);
  // The diagonal wins every row (+inf), so each row keeps exactly k blocks: the BSR then has a
  // known size and is built without a device→host sync (no nonzero), and every row is equally
  // heavy, so the schedule is the natural order.
  DeviceBlockMask out;
  out.seq_len = seq_len;
  out.block_size = block_size;
  out.num_heads = scores.size(0);
  out.num_q_blocks = nb;
  out.num_k_blocks = nb;
  out.ordering = ordering;
  out.schedule_heads = out.num_heads;
  const auto opts = int32_on(scores.device());
  const int64_t rows = out.num_rows();
  if (scores.is_cuda() && nb <= kCumulativeKeepMaxBlocks) {  // one kernel: selection, ascending order, offsets
    const DeviceStream stream(scores.device());
    const auto s = scores.to(torch::kFloat32).contiguous();
    const auto c = cand.defined() ? cand.to(torch::kUInt8).contiguous() : torch::Tensor();
    out.col_indices = torch::empty({rows * k}, opts);
    out.row_offsets = torch::empty({rows + 1}, opts);
    out.schedule = torch::empty({rows}, opts);
    topk_cols(s.data_ptr<float>(), static_cast<int>(rows), static_cast<int>(nb), static_cast<int>(k),
              out.col_indices.data_ptr<int32_t>(), stream.get(), c.defined() ? c.data_ptr<uint8_t>() : nullptr,
              out.row_offsets.data_ptr<int32_t>(), out.schedule.data_ptr<int32_t>());
    return out;
  }
  auto s = scores.to(torch::kFloat32).clone();
  if (cand.defined()) s.masked_fill_(cand.to(torch::kBool).logical_not().unsqueeze(0), -std::numeric_limits<float>::infinity());
  s.diagonal(0, 1, 2).fill_(std::numeric_limits<float>::infinity());
  // Stable descending sort: ties (and the non-candidates' -inf) go to the lower index.
  const auto idx = std::get<1>(torch::sort(s, /*stable=*/true, -1, /*descending=*/true)).narrow(-1, 0, k);
  out.col_indices = std::get<0>(idx.sort(-1)).reshape({-1}).to(torch::kInt32).contiguous();  // ascending within a row
  out.row_offsets = torch::arange(0, rows * k + 1, k, opts);
  out.schedule = torch::arange(rows, opts);
  return out;
}

DeviceBlockMask select_topk_from_means(const torch::Tensor& qp, const torch::Tensor& kp, int64_t k, int64_t seq_len,
                                       int64_t block_size, OrderingKind ordering, const torch::Tensor& cand) {
  if (!qp.defined() || !kp.defined() || qp.dim() != 4 || qp.sizes() != kp.sizes())
    throw ShapeError("select_topk_from_means: qp and kp must be [B, H, nb, D] of one shape");
  if (qp.size(0) != 1) return select_topk(block_scores_from_means(qp, kp), k, seq_len, block_size, ordering, cand);
  const auto logits = torch::matmul(qp.select(0, 0).to(torch::kFloat32), kp.select(0, 0).to(torch::kFloat32).transpose(1, 2));
  return select_topk(logits, k, seq_len, block_size, ordering, cand);
}

DeviceBlockMask select_cumulative(const torch::Tensor& scores, double threshold, int64_t seq_len,
                                  int64_t block_size, OrderingKind ordering) {
  check_scores(scores, "select_cumulative");
  if (!(threshold > 0.0 && threshold <= 1.0))
    throw ParameterError("threshold", "must be in (0, 1], got " + std::to_string(threshold));
  const auto sorted = torch::sort(scores.to(torch::kFloat32), -1, /*descending=*/true);
  const auto& values = std::get<0>(sorted);
  const auto& order = std::get<1>(sorted);
  const auto total = values.sum(-1, /*keepdim=*/true);
  // A block is kept while the mass before it is still short of the target: the block that
  // crosses the threshold is kept, so every row keeps at least its best block.
  const auto before = values.cumsum(-1) - values;
  const auto keep_sorted = before < total * threshold;
  auto keep = torch::zeros(scores.sizes(), scores.options().dtype(torch::kBool));
  keep.scatter_(-1, order, keep_sorted);
  return mask_from_keep(keep, seq_len, block_size, true, ordering);
}

torch::Tensor cumulative_keep(const torch::Tensor& logits, const torch::Tensor& log_len, const torch::Tensor& cand,
                              const torch::Tensor& forced, double tau) {
  if (!logits.defined() || logits.dim() != 3 || !logits.is_cuda())
    throw ShapeError("cumulative_keep: logits must be a [H, nb, nb] CUDA tensor");
  const int64_t H = logits.size(0), nb = logits.size(1);
  if (logits.size(2) != nb) throw ShapeError("cumulative_keep: logits must be square per head, got " + c10::str(logits.sizes()));
  if (nb > kCumulativeKeepMaxBlocks)
    throw ShapeError("cumulative_keep: " + std::to_string(nb) + " blocks per row exceed the kernel's " +
                     std::to_string(kCumulativeKeepMaxBlocks));
  auto check_sq = [&](const torch::Tensor& t, const char* name) {
    if (!t.defined() || t.dim() != 2 || t.size(0) != nb || t.size(1) != nb || t.device() != logits.device())
      throw ShapeError(std::string("cumulative_keep: ") + name + " must be [nb, nb] on logits' device");
  };
  check_sq(cand, "cand");
  check_sq(forced, "forced");
  if (!log_len.defined() || log_len.numel() != nb || log_len.device() != logits.device())
    throw ShapeError("cumulative_keep: log_len must hold nb values on logits' device");
  if (!(tau >= 0.0 && tau <= 1.0)) throw ParameterError("tau", "must be in [0, 1], got " + std::to_string(tau));
  const DeviceStream stream(logits.device());
  const auto l = logits.to(torch::kFloat32).contiguous();
  const auto ll = log_len.to(torch::kFloat32).contiguous().reshape({-1});
  const auto c = cand.to(torch::kUInt8).contiguous();
  const auto f = forced.to(torch::kUInt8).contiguous();
  auto keep = torch::empty({H, nb, nb}, logits.options().dtype(torch::kUInt8));
  cumulative_keep(l.data_ptr<float>(), ll.data_ptr<float>(), c.data_ptr<uint8_t>(), f.data_ptr<uint8_t>(),
                  static_cast<float>(tau), static_cast<int>(H * nb), static_cast<int>(nb), keep.data_ptr<uint8_t>(),
                  stream.get());
  return keep;
}

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

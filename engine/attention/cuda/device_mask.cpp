// The LibTorch side of the CUDA kernels, part 2: block masks on the GPU. Uploads and downloads,
// the kernel's work schedule (its order decided on the host from the row offsets), and the device
// copy a host BlockMask carries so that a mask is uploaded once per (device, heads).
#include "engine/attention/cuda/torch_adapter.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string>

#include <spdlog/spdlog.h>

#include "engine/attention/cuda/adapter_detail.h"
#include "engine/attention/mask_geometry.h"
#include "engine/common/error.h"

namespace longshot::attention::cuda {

using detail::check_mask_geometry;
using detail::device_index_of;
using detail::host_ints;
using detail::int32_on;

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
  auto out = attention::detail::square_geometry<DeviceBlockMask>(seq_len, block_size, 1, OrderingKind::Raster);
  out.full = true;
  out.schedule = torch::arange(heads * out.num_q_blocks, int32_on(device));
  out.schedule_heads = heads;
  return out;
}

namespace {
// The geometry a host BlockMask and a DeviceBlockMask share (the same field names; their arrays
// differ), copied into a new mask of the other kind on upload and download.
template <class To, class From>
To with_geometry_of(const From& mask) {
  To out;
  out.seq_len = mask.seq_len;
  out.block_size = mask.block_size;
  out.num_heads = mask.num_heads;
  out.num_q_blocks = mask.num_q_blocks;
  out.num_k_blocks = mask.num_k_blocks;
  out.ordering = mask.ordering;
  return out;
}
}  // namespace

DeviceBlockMask upload_mask(const BlockMask& mask, const torch::Device& device, int64_t heads) {
  mask.validate();
  check_mask_geometry(mask.seq_len, mask.block_size, "upload_mask");
  if (mask.is_full()) {
    auto full = full_device_mask(mask.seq_len, mask.block_size, device, heads > 0 ? heads : mask.num_heads);
    full.ordering = mask.ordering;
    return full;
  }
  auto out = with_geometry_of<DeviceBlockMask>(mask);
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
  auto out = with_geometry_of<BlockMask>(mask);
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

}  // namespace longshot::attention::cuda

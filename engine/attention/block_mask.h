// Query-block × key-block attention masks in compressed-row (BSR) form, the one mask format of
// Longshot: the CPU reference, the CUDA kernel, the trace files and the studio all read it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/attention/token_grid.h"

namespace longshot::attention {

// The uploaded copy of a BlockMask, type-erased so this header knows no CUDA: the CUDA adapter
// stores its DeviceBlockMask here (handle), with the device and the head count its work schedule
// was built for. kept_blocks and num_rows are the host mask's at attach time: a lookup whose
// mask no longer has them misses (a cheap guard against arrays edited after attaching).
struct DeviceMaskCopy {
  std::shared_ptr<void> handle;
  int device_index = -1;
  int64_t heads = 0;
  int64_t kept_blocks = 0;
  int64_t num_rows = 0;
  explicit operator bool() const { return handle != nullptr; }
};

// One cached device copy per mask, copied along with the mask (a copy shares the handle).
// Mutex-guarded so a studio thread reading a mask never races the generator attaching to it.
class DeviceMaskCache {
 public:
  DeviceMaskCache() = default;
  DeviceMaskCache(const DeviceMaskCache& other) : copy_(other.get()) {}
  DeviceMaskCache& operator=(const DeviceMaskCache& other) {
    if (this != &other) set(other.get());
    return *this;
  }
  DeviceMaskCopy get() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return copy_;
  }
  void set(DeviceMaskCopy copy) const {
    std::lock_guard<std::mutex> lock(mutex_);
    copy_ = std::move(copy);
  }

 private:
  mutable std::mutex mutex_;
  mutable DeviceMaskCopy copy_;
};

// The column indices of a mask built on a GPU, fetched to the host on first read. At 196k tokens a
// dynamic mask holds ~12 M kept blocks (48 MB): downloading them every layer cost more than the
// attention they select, and the kernel reads the device copy anyway. Only the inspected layer
// (studio), traces and CPU checks ever need the host columns. Thread-safe: the first reader
// fetches, the others wait; copies of the mask share one fetch.
class DeferredColumns {
 public:
  using Fetch = std::function<std::vector<int32_t>()>;
  DeferredColumns(Fetch fetch, int64_t count) : fetch_(std::move(fetch)), count_(count) {}
  const std::vector<int32_t>& get();
  int64_t count() const { return count_; }  // entries the fetch will return
  bool fetched() const;

 private:
  mutable std::mutex mutex_;
  Fetch fetch_;
  std::vector<int32_t> data_;
  int64_t count_ = 0;
  bool done_ = false;
};

// Rows are (head, query block) pairs, head-major: row r = head * num_q_blocks + qb.
// num_heads == 1 means one mask shared by every head. Query and key blocks have the same size;
// the last block of the sequence is ragged when seq_len % block_size != 0. Key block indices
// are strictly ascending within a row. A row may be empty only if a policy says so in its
// contract; every built-in policy keeps at least the diagonal block.
struct BlockMask {
  int64_t seq_len = 0;
  int64_t block_size = 128;
  int64_t num_heads = 1;
  int64_t num_q_blocks = 0;
  int64_t num_k_blocks = 0;
  OrderingKind ordering = OrderingKind::Raster;
  std::vector<int32_t> row_offsets;  // num_heads * num_q_blocks + 1 entries
  std::vector<int32_t> col_indices;  // row_offsets.back() entries (empty while deferred_cols is set)
  // Set by masks built on a GPU (cuda::host_mask_with_device_copy): the columns come from the
  // device on the first cols() call. Readers use cols(); builders fill col_indices.
  std::shared_ptr<DeferredColumns> deferred_cols;

  static int64_t blocks_for(int64_t seq_len, int64_t block_size);
  // Every block pair kept.
  static BlockMask full(int64_t seq_len, int64_t block_size, int64_t num_heads = 1,
                        OrderingKind ordering = OrderingKind::Raster);
  // From a dense keep matrix keep[(head * num_q_blocks + qb) * num_k_blocks + kb].
  static BlockMask from_dense(const std::vector<uint8_t>& keep, int64_t seq_len, int64_t block_size,
                              int64_t num_heads, OrderingKind ordering = OrderingKind::Raster);
  std::vector<uint8_t> to_dense() const;

  // The column indices, fetched from the device first when deferred.
  const std::vector<int32_t>& cols() const { return deferred_cols ? deferred_cols->get() : col_indices; }
  // Moves deferred columns into col_indices (a host-only mask afterwards, pinning no device memory).
  void fetch_columns();

  int64_t num_rows() const { return num_heads * num_q_blocks; }
  int64_t kept_blocks() const { return row_offsets.empty() ? 0 : row_offsets.back(); }
  // Every block pair kept (dense attention under a block mask).
  bool is_full() const { return kept_blocks() == num_rows() * num_k_blocks; }
  int64_t block_len(int64_t b) const;  // tokens in block b (ragged last block)
  bool contains(int64_t head, int64_t qb, int64_t kb) const;

  // 1 − kept / total block pairs, over all heads.
  double block_sparsity() const;
  // 1 − kept / total token pairs (ragged blocks weighted by their real sizes).
  double token_sparsity() const;
  double head_block_sparsity(int64_t head) const;

  // Throws ShapeError naming the broken invariant.
  void validate() const;
  // The O(1) part of validate(): sizes, offsets' ends. For masks whose arrays are a download of a
  // GPU-built mask (sorted and in range by construction), where the O(kept) walk would cost more
  // than the attention call at 196k tokens (12 M kept blocks: ~30 ms).
  void validate_geometry() const;

  // The device copy (see DeviceMaskCopy): attaching works on a const mask (policies hand out
  // BlockMaskPtr = shared_ptr<const BlockMask>) because it only caches what the arrays already
  // say. Whoever edits row_offsets/col_indices after attaching must call clear_device_copy().
  void attach_device_copy(std::shared_ptr<void> handle, int device_index, int64_t heads) const;
  // The attached copy when it was made for this device and head count and still fits the
  // arrays; an empty DeviceMaskCopy otherwise.
  DeviceMaskCopy device_copy(int device_index, int64_t heads) const;
  // Whatever is attached (empty when nothing is), for inspection and tests.
  DeviceMaskCopy attached_device_copy() const { return device_cache.get(); }
  void clear_device_copy() const { device_cache.set({}); }

  mutable DeviceMaskCache device_cache;
};

using BlockMaskPtr = std::shared_ptr<const BlockMask>;

}  // namespace longshot::attention

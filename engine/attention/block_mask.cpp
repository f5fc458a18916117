// BlockMask: construction, queries, sparsity figures and invariant checks.
#include "engine/attention/block_mask.h"
#include "engine/attention/mask_geometry.h"

#include <string>

#include "engine/common/error.h"

namespace longshot::attention {

const std::vector<int32_t>& DeferredColumns::get() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!done_) {
    auto data = fetch_();
    if (static_cast<int64_t>(data.size()) != count_) {
      throw ShapeError("BlockMask: deferred column fetch returned " + std::to_string(data.size()) +
                       " entries, expected " + std::to_string(count_));
    }
    data_ = std::move(data);
    fetch_ = nullptr;  // releases what the fetch held (the device arrays)
    done_ = true;
  }
  return data_;
}

bool DeferredColumns::fetched() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

void BlockMask::fetch_columns() {
  if (!deferred_cols) return;
  col_indices = deferred_cols->get();
  deferred_cols.reset();
}

int64_t BlockMask::blocks_for(int64_t seq_len, int64_t block_size) {
  if (block_size <= 0) throw ParameterError("block_size", "must be positive, got " + std::to_string(block_size));
  if (seq_len < 0) throw ParameterError("seq_len", "must be non-negative, got " + std::to_string(seq_len));
  return (seq_len + block_size - 1) / block_size;
}

BlockMask detail::square_mask_geometry(int64_t seq_len, int64_t block_size, int64_t num_heads, OrderingKind ordering) {
  if (num_heads <= 0) throw ParameterError("num_heads", "must be positive, got " + std::to_string(num_heads));
  return square_geometry<BlockMask>(seq_len, block_size, num_heads, ordering);
}

BlockMask BlockMask::full(int64_t seq_len, int64_t block_size, int64_t num_heads, OrderingKind ordering) {
  BlockMask m = detail::square_mask_geometry(seq_len, block_size, num_heads, ordering);
  m.row_offsets.resize(static_cast<size_t>(m.num_rows() + 1));
  m.col_indices.reserve(static_cast<size_t>(m.num_rows() * m.num_k_blocks));
  m.row_offsets[0] = 0;
  for (int64_t r = 0; r < m.num_rows(); ++r) {
    for (int64_t kb = 0; kb < m.num_k_blocks; ++kb) m.col_indices.push_back(static_cast<int32_t>(kb));
    m.row_offsets[static_cast<size_t>(r + 1)] = static_cast<int32_t>(m.col_indices.size());
  }
  return m;
}

BlockMask BlockMask::from_dense(const std::vector<uint8_t>& keep, int64_t seq_len, int64_t block_size,
                                int64_t num_heads, OrderingKind ordering) {
  BlockMask m = detail::square_mask_geometry(seq_len, block_size, num_heads, ordering);
  const int64_t nk = m.num_k_blocks;
  if (static_cast<int64_t>(keep.size()) != m.num_rows() * nk) {
    throw ShapeError("BlockMask::from_dense: keep has " + std::to_string(keep.size()) + " entries, expected heads " +
                     std::to_string(num_heads) + " x q blocks " + std::to_string(m.num_q_blocks) + " x k blocks " +
                     std::to_string(nk));
  }
  m.row_offsets.resize(static_cast<size_t>(m.num_rows() + 1));
  m.row_offsets[0] = 0;
  for (int64_t r = 0; r < m.num_rows(); ++r) {
    for (int64_t kb = 0; kb < nk; ++kb) {
      if (keep[static_cast<size_t>(r * nk + kb)]) m.col_indices.push_back(static_cast<int32_t>(kb));
    }
    m.row_offsets[static_cast<size_t>(r + 1)] = static_cast<int32_t>(m.col_indices.size());
  }
  return m;
}

std::vector<uint8_t> BlockMask::to_dense() const {
  const auto& col_indices = cols();
  std::vector<uint8_t> keep(static_cast<size_t>(num_rows() * num_k_blocks), 0);
  for (int64_t r = 0; r < num_rows(); ++r) {
    for (int32_t i = row_offsets[static_cast<size_t>(r)]; i < row_offsets[static_cast<size_t>(r + 1)]; ++i) {
      keep[static_cast<size_t>(r * num_k_blocks + col_indices[static_cast<size_t>(i)])] = 1;
    }
  }
  return keep;
}

int64_t BlockMask::block_len(int64_t b) const {
  const int64_t start = b * block_size;
  return std::max<int64_t>(0, std::min(block_size, seq_len - start));
}

bool BlockMask::contains(int64_t head, int64_t qb, int64_t kb) const {
  const int64_t h = num_heads == 1 ? 0 : head;
  const int64_t r = h * num_q_blocks + qb;
  if (h < 0 || h >= num_heads || qb < 0 || qb >= num_q_blocks || kb < 0 || kb >= num_k_blocks) return false;
  const auto& col_indices = cols();
  const auto begin = col_indices.begin() + row_offsets[static_cast<size_t>(r)];
  const auto end = col_indices.begin() + row_offsets[static_cast<size_t>(r + 1)];
  return std::binary_search(begin, end, static_cast<int32_t>(kb));
}

double BlockMask::block_sparsity() const {
  const double total = static_cast<double>(num_rows()) * static_cast<double>(num_k_blocks);
  return total > 0 ? 1.0 - static_cast<double>(kept_blocks()) / total : 0.0;
}

double BlockMask::token_sparsity() const {
  const double total = static_cast<double>(num_heads) * static_cast<double>(seq_len) * static_cast<double>(seq_len);
  if (total <= 0) return 0.0;
  const auto& col_indices = cols();
  double kept = 0.0;
  for (int64_t r = 0; r < num_rows(); ++r) {
    const double qlen = static_cast<double>(block_len(r % num_q_blocks));
    for (int32_t i = row_offsets[static_cast<size_t>(r)]; i < row_offsets[static_cast<size_t>(r + 1)]; ++i) {
      kept += qlen * static_cast<double>(block_len(col_indices[static_cast<size_t>(i)]));
    }
  }
  return 1.0 - kept / total;
}

double BlockMask::head_block_sparsity(int64_t head) const {
  if (head < 0 || (num_heads > 1 && head >= num_heads)) {
    throw ParameterError("head", std::to_string(head) + " is outside [0, " + std::to_string(num_heads) + ")");
  }
  const int64_t h = num_heads == 1 ? 0 : head;
  const int64_t kept = row_offsets[static_cast<size_t>((h + 1) * num_q_blocks)] -
                       row_offsets[static_cast<size_t>(h * num_q_blocks)];
  const double total = static_cast<double>(num_q_blocks) * static_cast<double>(num_k_blocks);
  return total > 0 ? 1.0 - static_cast<double>(kept) / total : 0.0;
}

void BlockMask::validate_geometry() const {
  auto fail = [](const std::string& what) { throw ShapeError("BlockMask: " + what); };
  if (block_size <= 0) fail("block_size must be positive, got " + std::to_string(block_size));
  if (seq_len <= 0) fail("seq_len must be positive, got " + std::to_string(seq_len));
  if (num_heads <= 0) fail("num_heads must be positive, got " + std::to_string(num_heads));
  const int64_t expect = blocks_for(seq_len, block_size);
  if (num_q_blocks != expect || num_k_blocks != expect) {
    fail("num_q_blocks/num_k_blocks (" + std::to_string(num_q_blocks) + "/" + std::to_string(num_k_blocks) +
         ") must equal ceil(seq_len / block_size) = " + std::to_string(expect));
  }
  if (static_cast<int64_t>(row_offsets.size()) != num_rows() + 1) {
    fail("row_offsets has " + std::to_string(row_offsets.size()) + " entries, expected num_heads * num_q_blocks + 1 = " +
         std::to_string(num_rows() + 1));
  }
  if (row_offsets.front() != 0) fail("row_offsets[0] must be 0");
  const int64_t columns = deferred_cols ? deferred_cols->count() : static_cast<int64_t>(col_indices.size());
  if (columns != row_offsets.back()) {
    fail("col_indices has " + std::to_string(columns) + " entries but row_offsets ends at " +
         std::to_string(row_offsets.back()));
  }
}

void BlockMask::validate() const {
  validate_geometry();
  const auto& col_indices = cols();
  auto fail = [](const std::string& what) { throw ShapeError("BlockMask: " + what); };
  for (int64_t r = 0; r < num_rows(); ++r) {
    const int32_t b = row_offsets[static_cast<size_t>(r)], e = row_offsets[static_cast<size_t>(r + 1)];
    if (e < b) fail("row_offsets decreases at row " + std::to_string(r));
    for (int32_t i = b; i < e; ++i) {
      const int32_t kb = col_indices[static_cast<size_t>(i)];
      if (kb < 0 || kb >= num_k_blocks) {
        fail("col_indices[" + std::to_string(i) + "] = " + std::to_string(kb) + " is outside [0, " +
             std::to_string(num_k_blocks) + ") in row " + std::to_string(r));
      }
      if (i > b && col_indices[static_cast<size_t>(i - 1)] >= kb) {
        fail("col_indices of row " + std::to_string(r) + " are not strictly ascending");
      }
    }
  }
}

void BlockMask::attach_device_copy(std::shared_ptr<void> handle, int device_index, int64_t heads) const {
  if (!handle) throw ParameterError("handle", "attach_device_copy needs a device copy (got null)");
  if (heads <= 0) throw ParameterError("heads", "must be positive, got " + std::to_string(heads));
  device_cache.set({std::move(handle), device_index, heads, kept_blocks(), num_rows()});
}

DeviceMaskCopy BlockMask::device_copy(int device_index, int64_t heads) const {
  DeviceMaskCopy copy = device_cache.get();
  if (!copy || copy.device_index != device_index || copy.heads != heads || copy.kept_blocks != kept_blocks() ||
      copy.num_rows != num_rows()) {
    return {};
  }
  return copy;
}

}  // namespace longshot::attention

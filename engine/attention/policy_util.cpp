// Shared helpers of the mask policies.
#include "engine/attention/policy_util.h"

#include <algorithm>
#include <cmath>

#include "engine/attention/attention.h"
#include "engine/attention/mask_geometry.h"
#include "engine/attention/mask_tensor.h"
#include "engine/common/error.h"

#ifdef LONGSHOT_HAS_CUDA
#include "engine/attention/cuda/torch_adapter.h"
#endif

namespace longshot::attention::detail {

void check_request(const MaskRequest& r, bool needs_qk, const std::string& mode) {
  if (r.block_size <= 0) throw ParameterError("block_size", "must be positive, got " + std::to_string(r.block_size));
  if (r.num_heads <= 0) throw ParameterError("heads", "must be positive, got " + std::to_string(r.num_heads));
  if (r.grid.t <= 0 || r.grid.h <= 0 || r.grid.w <= 0) {
    throw ParameterError("grid", "every size must be positive, got " + r.grid.to_string());
  }
  if (r.step < 0) throw ParameterError("step", "must be non-negative, got " + std::to_string(r.step));
  if (r.layer < 0) throw ParameterError("layer", "must be non-negative, got " + std::to_string(r.layer));
  if (!needs_qk) return;
  for (const auto* pair : {&r.q, &r.k}) {
    const char* name = pair == &r.q ? "q" : "k";
    if (!pair->defined()) throw ShapeError(mode + " needs tensor '" + name + "' ([B, H, N, D]) but it is undefined");
    if (pair->dim() != 4) throw ShapeError(mode + ": tensor '" + std::string(name) + "' must be [B, H, N, D]");
    if (pair->size(2) != r.grid.size()) {
      throw ParameterError("grid", "grid " + r.grid.to_string() + " has " + std::to_string(r.grid.size()) +
                                       " tokens but tensor '" + name + "' has N = " + std::to_string(pair->size(2)));
    }
    if (pair->size(1) != r.num_heads) {
      throw ShapeError(mode + ": tensor '" + std::string(name) + "' has " + std::to_string(pair->size(1)) +
                       " heads, the request says " + std::to_string(r.num_heads));
    }
  }
  if (r.q.sizes() != r.k.sizes()) throw ShapeError(mode + ": tensors 'q' and 'k' differ in shape");
}

BlockGeometry::BlockGeometry(const TokenGrid& grid, int64_t block_size) {
  const int64_t n = grid.size();
  const int64_t nb = BlockMask::blocks_for(n, block_size);
  blocks_.resize(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t first = b * block_size, last = std::min(n, first + block_size) - 1;
    BlockExtent e;
    int64_t t, y, x;
    grid.coords(first, t, y, x);
    e.t0 = t;
    grid.coords(last, e.t1, y, x);
    if (e.t0 == e.t1) {
      int64_t y_first, y_last, dummy;
      grid.coords(first, dummy, y_first, x);
      e.y0 = y_first;
      grid.coords(last, dummy, y_last, x);
      e.y1 = y_last;
      // One row: the columns it covers; several rows: the full width.
      if (y_first == y_last) {
        grid.coords(first, dummy, dummy, e.x0);
        grid.coords(last, dummy, dummy, e.x1);
      } else {
        e.x0 = 0;
        e.x1 = grid.w - 1;
      }
    } else {
      // Straddles a frame boundary: tail rows of one frame and head rows of the next wrap
      // around, so its row/column box is the whole frame (conservative for window tests).
      e.y0 = 0;
      e.y1 = grid.h - 1;
      e.x0 = 0;
      e.x1 = grid.w - 1;
    }
    blocks_[static_cast<size_t>(b)] = e;
  }
}

int64_t BlockGeometry::temporal_gap(int64_t a, int64_t b) const {
  const auto& A = block(a);
  const auto& B = block(b);
  return std::max<int64_t>({0, B.t0 - A.t1, A.t0 - B.t1});
}

double BlockGeometry::spatial_gap(int64_t a, int64_t b) const {
  const auto& A = block(a);
  const auto& B = block(b);
  const double gy = static_cast<double>(std::max<int64_t>({0, B.y0 - A.y1, A.y0 - B.y1}));
  const double gx = static_cast<double>(std::max<int64_t>({0, B.x0 - A.x1, A.x0 - B.x1}));
  return std::sqrt(gy * gy + gx * gx);
}

double param(const ParamValues& values, const std::string& name) {
  const auto it = values.find(name);
  if (it == values.end()) throw ParameterError(name, "missing (resolve_params fills every default)");
  return it->second;
}

int64_t param_int(const ParamValues& values, const std::string& name) {
  return static_cast<int64_t>(std::llround(param(values, name)));
}

BlockMask mask_from_rows(const std::vector<std::vector<int32_t>>& rows, int64_t seq_len, int64_t block_size,
                         int64_t num_heads, OrderingKind ordering) {
  BlockMask m = square_mask_geometry(seq_len, block_size, num_heads, ordering);
  m.row_offsets.reserve(rows.size() + 1);
  m.row_offsets.push_back(0);
  for (const auto& row : rows) {
    m.col_indices.insert(m.col_indices.end(), row.begin(), row.end());
    m.row_offsets.push_back(static_cast<int32_t>(m.col_indices.size()));
  }
  return m;
}

BlockMaskPtr mask_from_keep_tensor(const torch::Tensor& keep_in, int64_t seq_len, int64_t block_size,
                                   OrderingKind ordering, int64_t attention_heads, bool keep_diagonal) {
  const int64_t nb = BlockMask::blocks_for(seq_len, block_size);
  if (!keep_in.defined() || keep_in.dim() != 3 || keep_in.size(1) != nb || keep_in.size(2) != nb) {
    throw ShapeError("mask_from_keep_tensor: keep must be [heads, " + std::to_string(nb) + ", " + std::to_string(nb) +
                     "]");
  }
#ifdef LONGSHOT_HAS_CUDA
  // The kernel's block sizes only: any other size could not run on the device anyway.
  if (keep_in.is_cuda() && cuda_backend_available() && (block_size == 64 || block_size == 128)) {
    const int64_t heads = attention_heads > 0 ? attention_heads : keep_in.size(0);
    std::vector<int32_t> offsets;
    auto device_mask = cuda::mask_from_keep(keep_in, seq_len, block_size, keep_diagonal, ordering, &offsets, heads);
    return cuda::host_mask_with_device_copy(std::move(device_mask), heads, &offsets);
  }
#endif
  auto keep = keep_in.to(torch::kCPU, torch::kUInt8).contiguous().clone();
  if (keep_diagonal) keep.diagonal(0, 1, 2).fill_(1);
  const auto* data = keep.data_ptr<uint8_t>();
  std::vector<uint8_t> dense(data, data + keep.numel());
  return std::make_shared<const BlockMask>(BlockMask::from_dense(dense, seq_len, block_size, keep.size(0), ordering));
}

bool dense_call(const MaskRequest& r, int64_t dense_steps, int64_t dense_layers) {
  return r.step < dense_steps || r.layer < dense_layers;
}

BlockMaskPtr FullMaskCache::get(int64_t seq_len, int64_t block_size, OrderingKind ordering) {
  if (!mask_ || mask_->seq_len != seq_len || mask_->block_size != block_size || mask_->ordering != ordering)
    mask_ = std::make_shared<const BlockMask>(BlockMask::full(seq_len, block_size, 1, ordering));
  return mask_;
}

int64_t heads_per_chunk(int64_t nb) {
  return std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(1, nb * nb));
}

torch::Tensor request_means(const MaskRequest& request, bool keys, int64_t group) {
  const auto& x = keys ? request.k : request.q;
  const auto& pooled = keys ? request.k_pooled : request.q_pooled;
  if (pooled.defined() && request.pool_group == group && x.defined()) {
    const int64_t groups = (x.size(2) + group - 1) / group;
    if (pooled.dim() == 4 && pooled.size(0) == x.size(0) && pooled.size(1) == x.size(1) && pooled.size(2) == groups &&
        pooled.size(3) == x.size(3) && pooled.scalar_type() == torch::kFloat32)
      return pooled;
    throw ShapeError("mask request: pooled " + std::string(keys ? "k" : "q") + " " + c10::str(pooled.sizes()) +
                     " does not fit " + c10::str(x.sizes()) + " pooled by " + std::to_string(group));
  }
  return pool_tokens(x, group);
}

bool select_on_device(const MaskRequest& request) {
  return request.q.defined() && request.q.is_cuda() && cuda_backend_available();
}

}  // namespace longshot::attention::detail

// Internal helpers: BlockMask → token keep tensors, input checks, token pooling.
#include "engine/attention/mask_tensor.h"

#include "engine/common/error.h"

#ifdef LONGSHOT_HAS_CUDA
#include "engine/attention/cuda/torch_adapter.h"
#endif

namespace longshot::attention::detail {

namespace {
std::string shape_str(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}
}  // namespace

void check_qkv(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const std::string& where) {
  auto check4 = [&](const torch::Tensor& t, const char* name) {
    if (!t.defined()) throw ShapeError(where + ": tensor '" + name + "' is undefined");
    if (t.dim() != 4) throw ShapeError(where + ": tensor '" + name + "' must be [B, H, N, D], got " + shape_str(t));
    if (!t.is_floating_point()) throw ShapeError(where + ": tensor '" + name + "' must be floating point");
  };
  check4(q, "q");
  check4(k, "k");
  if (q.size(0) != k.size(0) || q.size(1) != k.size(1) || q.size(2) != k.size(2) || q.size(3) != k.size(3)) {
    throw ShapeError(where + ": tensor 'k' " + shape_str(k) + " does not match 'q' " + shape_str(q));
  }
  if (v.defined()) {
    check4(v, "v");
    if (v.size(0) != q.size(0) || v.size(1) != q.size(1) || v.size(2) != q.size(2)) {
      throw ShapeError(where + ": tensor 'v' " + shape_str(v) + " does not match 'q' " + shape_str(q) + " in B, H, N");
    }
  }
  if (q.size(2) == 0) throw ShapeError(where + ": tensor 'q' has no tokens (N = 0)");
}

void check_mask_fits(const BlockMask& mask, int64_t heads, int64_t seq_len, const std::string& where) {
  // A mask with a device copy attached was built on the GPU (or validated before its upload):
  // its arrays are checked for geometry only (see BlockMask::validate_geometry).
  if (mask.attached_device_copy()) {
    mask.validate_geometry();
  } else {
    mask.validate();
  }
  if (mask.seq_len != seq_len) {
    throw ShapeError(where + ": mask seq_len " + std::to_string(mask.seq_len) + " does not match the tensors' N = " +
                     std::to_string(seq_len));
  }
  if (mask.num_heads != 1 && mask.num_heads != heads) {
    throw ShapeError(where + ": mask has " + std::to_string(mask.num_heads) + " heads; expected 1 or H = " +
                     std::to_string(heads));
  }
}

torch::Tensor token_keep(const BlockMask& mask, int64_t qb_begin, int64_t qb_end, const torch::Device& device) {
  const int64_t nqb = qb_end - qb_begin;
  auto blocks = torch::zeros({mask.num_heads, nqb, mask.num_k_blocks}, torch::kBool);
  auto acc = blocks.accessor<bool, 3>();
  const auto& cols = mask.cols();
  for (int64_t h = 0; h < mask.num_heads; ++h) {
    for (int64_t qb = qb_begin; qb < qb_end; ++qb) {
      const int64_t r = h * mask.num_q_blocks + qb;
      for (int32_t i = mask.row_offsets[static_cast<size_t>(r)]; i < mask.row_offsets[static_cast<size_t>(r + 1)]; ++i) {
        acc[h][qb - qb_begin][cols[static_cast<size_t>(i)]] = true;
      }
    }
  }
  const int64_t q_tok_begin = qb_begin * mask.block_size;
  const int64_t q_tok_end = std::min(mask.seq_len, qb_end * mask.block_size);
  const auto index = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto q_block = torch::arange(q_tok_begin, q_tok_end, index).div(mask.block_size, "floor") - qb_begin;
  auto k_block = torch::arange(0, mask.seq_len, index).div(mask.block_size, "floor");
  return blocks.to(device).index_select(1, q_block).index_select(2, k_block);
}

int64_t query_blocks_per_chunk(const BlockMask& mask, int64_t batch, int64_t heads, int64_t budget_bytes) {
  const int64_t per_block = std::max<int64_t>(1, batch * heads * mask.block_size * mask.seq_len * 4);
  return std::max<int64_t>(1, budget_bytes / per_block);
}

int64_t chunk_budget_bytes(const torch::Device& device) { return device.is_cuda() ? int64_t(512) << 20 : int64_t(8) << 20; }

torch::Tensor pool_tokens(const torch::Tensor& x, int64_t group) {
#ifdef LONGSHOT_HAS_CUDA
  // One 16-byte-load pass, no fp32 copy of x (200 MB per tensor at 32k tokens); LibTorch
  // reductions without a copy for layouts the kernel does not take.
  if (x.is_cuda()) return cuda::block_mean_pool(x, group);
#endif
  const int64_t n = x.size(2);
  const int64_t groups = (n + group - 1) / group;
  auto xf = x.to(torch::kFloat32);
  const int64_t full = n / group;
  std::vector<torch::Tensor> parts;
  if (full > 0) {
    parts.push_back(xf.narrow(2, 0, full * group)
                        .reshape({x.size(0), x.size(1), full, group, x.size(3)})
                        .mean(3));
  }
  if (groups > full) parts.push_back(xf.narrow(2, full * group, n - full * group).mean(2, /*keepdim=*/true));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
}

}  // namespace longshot::attention::detail

// The LibTorch side of the CUDA kernels, part 3: block masks built on the GPU. Block-mean
// pooling, block-level scores, and the BSR from a keep matrix, a top-k or a cumulative-mass
// selection (kernels in mask_select.cu where they apply, LibTorch ops otherwise); the CPU
// reference policies stay the oracle.
#include "engine/attention/cuda/torch_adapter.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "engine/attention/cuda/adapter_detail.h"
#include "engine/attention/cuda/mask_select.h"
#include "engine/attention/mask_geometry.h"
#include "engine/common/cuda/device_stream.h"
#include "engine/common/error.h"

namespace longshot::attention::cuda {

using ::longshot::cuda::DeviceStream;
using detail::check_mask_geometry;
using detail::host_ints;
using detail::int32_on;

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
  auto out = attention::detail::square_geometry<DeviceBlockMask>(seq_len, block_size, keep_in.size(0), ordering);
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
  auto out = attention::detail::square_geometry<DeviceBlockMask>(seq_len, block_size, scores.size(0), ordering);
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

}  // namespace longshot::attention::cuda

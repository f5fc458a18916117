// Mask quality metrics: attention recall (kept share of the dense softmax mass) and relative L2.
#include "engine/attention/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/attention/mask_tensor.h"
#include "engine/common/error.h"

namespace longshot::attention {

double attention_recall(const torch::Tensor& q, const torch::Tensor& k, const BlockMask& mask, int64_t query_stride,
                        double scale) {
  detail::check_qkv(q, k, torch::Tensor(), "attention_recall");
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2);
  detail::check_mask_fits(mask, H, N, "attention_recall");
  if (query_stride < 1) throw ParameterError("query_stride", "must be >= 1, got " + std::to_string(query_stride));
  torch::NoGradGuard no_grad;
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto qf = q.to(torch::kFloat32), kt = k.to(torch::kFloat32).transpose(2, 3);
  double kept_sum = 0.0;
  int64_t count = 0;
  // At most 64 MB on a GPU: token_keep expands a chunk's whole keep matrix before the strided rows
  // are picked, and generation's recall probe runs under --max-gpu-memory.
  const int64_t chunk =
      detail::query_blocks_per_chunk(mask, B, H, std::min<int64_t>(detail::chunk_budget_bytes(q.device()), 64 << 20));
  for (int64_t qb = 0; qb < mask.num_q_blocks; qb += chunk) {
    const int64_t qb_end = std::min(mask.num_q_blocks, qb + chunk);
    const int64_t t0 = qb * mask.block_size, t1 = std::min(N, qb_end * mask.block_size);
    // Queries t with t % query_stride == 0, positions relative to this chunk.
    const int64_t first = ((t0 + query_stride - 1) / query_stride) * query_stride;
    if (first >= t1) continue;
    // On the queries' device, as the keep mask and the scores.
    auto rows = torch::arange(first - t0, t1 - t0, query_stride, torch::TensorOptions().dtype(torch::kLong).device(q.device()));
    // kept mass = exp(logsumexp(kept scores) − logsumexp(all scores)): no probability tensor.
    auto scores = torch::matmul(qf.narrow(2, t0, t1 - t0).index_select(2, rows), kt).mul_(s);  // [B, H, r, N]
    auto lse_all = torch::logsumexp(scores, -1);
    auto keep = detail::token_keep(mask, qb, qb_end, q.device()).index_select(1, rows).unsqueeze(0);  // [1, Hm, r, N]
    scores.masked_fill_(keep.logical_not(), -std::numeric_limits<float>::infinity());
    auto kept = torch::exp(torch::logsumexp(scores, -1) - lse_all);                            // [B, H, r]
    kept_sum += kept.to(torch::kFloat64).sum().item<double>();
    count += kept.numel();
  }
  return count > 0 ? kept_sum / static_cast<double>(count) : 0.0;
}

double relative_l2_error(const torch::Tensor& out, const torch::Tensor& ref) {
  if (!out.defined() || !ref.defined()) throw ShapeError("relative_l2_error: tensor 'out' or 'ref' is undefined");
  if (out.sizes() != ref.sizes()) throw ShapeError("relative_l2_error: tensor 'out' does not match the shape of 'ref'");
  // fp64 on out's device: a GPU calibration scores every trial without copying the outputs back.
  auto o = out.to(torch::kFloat64), r = ref.to(out.device(), torch::kFloat64);
  const double ref_norm = r.norm().item<double>();
  const double diff = (o - r).norm().item<double>();
  if (ref_norm == 0.0) return diff == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return diff / ref_norm;
}

}  // namespace longshot::attention

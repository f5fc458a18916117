// LibTorch fp32 reference attention, on the inputs' device. Both paths chunk over query blocks so
// that a [B, H, chunk, N] score tensor stays near detail::chunk_budget_bytes (8 MB on the host,
// 512 MB on a GPU; at least one block): nothing scales with N² overall.
#include "engine/attention/reference.h"

#include <cmath>
#include <limits>

#include "engine/attention/mask_tensor.h"
#include "engine/common/error.h"

namespace longshot::attention {

namespace {
double resolve_scale(double scale, int64_t head_dim) {
  return scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}
}  // namespace

torch::Tensor dense_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        double scale) {
  detail::check_qkv(q, k, v, "dense_attention_reference");
  const BlockMask full = BlockMask::full(q.size(2), 128, 1);
  return block_sparse_attention_reference(q, k, v, full, scale);
}

torch::Tensor block_sparse_attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v, const BlockMask& mask, double scale) {
  detail::check_qkv(q, k, v, "block_sparse_attention_reference");
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2);
  detail::check_mask_fits(mask, H, N, "block_sparse_attention_reference");
  torch::NoGradGuard no_grad;
  const double s = resolve_scale(scale, q.size(3));
  auto qf = q.to(torch::kFloat32), kf = k.to(torch::kFloat32), vf = v.to(torch::kFloat32);
  auto kt = kf.transpose(2, 3);
  auto out = torch::zeros({B, H, N, v.size(3)}, qf.options());  // on the inputs' device
  const bool full = mask.is_full();
  const int64_t chunk = detail::query_blocks_per_chunk(mask, B, H, detail::chunk_budget_bytes(q.device()));
  for (int64_t qb = 0; qb < mask.num_q_blocks; qb += chunk) {
    const int64_t qb_end = std::min(mask.num_q_blocks, qb + chunk);
    const int64_t t0 = qb * mask.block_size, t1 = std::min(N, qb_end * mask.block_size);
    auto scores = torch::matmul(qf.narrow(2, t0, t1 - t0), kt).mul_(s);  // [B, H, c, N]
    if (!full) {
      auto keep = detail::token_keep(mask, qb, qb_end, scores.device()).unsqueeze(0);  // [1, Hm, c, N]
      scores.masked_fill_(keep.logical_not(), -std::numeric_limits<float>::infinity());
      auto probs = torch::softmax(scores, -1);
      // Rows with no kept key: softmax of all −inf is NaN; the contract says zeros.
      probs.nan_to_num_(0.0, 0.0, 0.0);
      out.narrow(2, t0, t1 - t0).copy_(torch::matmul(probs, vf));
    } else {
      out.narrow(2, t0, t1 - t0).copy_(torch::matmul(torch::softmax(scores, -1), vf));
    }
  }
  return out;
}

}  // namespace longshot::attention

// Internal helpers of the attention core: turning a BlockMask into token-level keep tensors and
// checking [B, H, N, D] inputs. Shared by the reference, the metrics and the policies; no model.
#pragma once
#include <string>

#include <torch/types.h>

#include "engine/attention/block_mask.h"

namespace longshot::attention::detail {

// Checks q, k (and v when defined) are [B, H, N, D] with matching B, H, N (and D for q/k);
// throws ShapeError naming the tensor. `where` prefixes the message.
void check_qkv(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const std::string& where);
// Checks the mask fits the inputs (heads 1 or H, seq_len N) and is well formed.
void check_mask_fits(const BlockMask& mask, int64_t heads, int64_t seq_len, const std::string& where);

// Bool keep matrix [mask.num_heads, tokens of query blocks [qb_begin, qb_end), seq_len] on `device`:
// the block table is filled on the host and only it crosses to the device, where it is expanded.
torch::Tensor token_keep(const BlockMask& mask, int64_t qb_begin, int64_t qb_end,
                         const torch::Device& device = torch::kCPU);

// Query blocks per chunk so that a [B, H, chunk tokens, N] fp32 score tensor stays near
// `budget_bytes`. 8 MB keeps chunk temporaries under glibc's mmap threshold, so they are recycled
// from the heap instead of page-faulted anew per chunk (that dominated run time at 64 MB).
int64_t query_blocks_per_chunk(const BlockMask& mask, int64_t batch, int64_t heads, int64_t budget_bytes = 8 << 20);
// The chunk budget for tensors on `device`: 8 MB on the host (above); 512 MB on a GPU, where the
// fp32 reference and the recall are bound by per-chunk launches and the host's block table, not
// memory (a 16,384-token calibration proxy: 128 chunks of one block each at 8 MB).
int64_t chunk_budget_bytes(const torch::Device& device);

// Mean of x [B, H, N, D] over consecutive token groups of `group` tokens (ragged last group):
// returns [B, H, ceil(N / group), D] in fp32 (CUDA tensors: cuda::block_mean_pool).
torch::Tensor pool_tokens(const torch::Tensor& x, int64_t group);

}  // namespace longshot::attention::detail

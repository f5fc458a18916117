// The thin LibTorch adapter over the CUDA kernels: validates tensors (naming the offending one),
// then hands raw device pointers, strides and the current stream to the kernels.
// Compiled only when LONGSHOT_HAS_CUDA; callers guard with that macro. Sections (and the file
// that defines each):
//   [device]     availability                                     torch_adapter.cpp
//   [masks]      block masks on the GPU: upload, schedule, cache   device_mask.cpp
//   [attention]  the block-sparse kernel's entry points            torch_adapter.cpp
//   [building]   GPU mask building (pooling, scores, selection)    mask_build.cpp
//   [tokens]     token permutation                                 torch_adapter.cpp
#pragma once
#include <string>

#include <torch/types.h>

#include "engine/attention/block_mask.h"
#include "engine/attention/cuda/kernel_path.h"
#include "engine/attention/token_grid.h"

namespace longshot::attention::cuda {

// -------------------------------------------------------------------------------------[device]
// True when a CUDA device is visible to this process.
bool device_available();
// Why not, in words (no device, driver too old, ...); empty when available.
std::string unavailable_reason();

// --------------------------------------------------------------------------------------[masks]
// A BlockMask whose arrays live on the GPU (int32), plus the kernel's work schedule: the work
// items h * num_q_blocks + qb for `schedule_heads` heads, in schedule_order().
struct DeviceBlockMask {
  int64_t seq_len = 0;
  int64_t block_size = 128;
  int64_t num_heads = 1;  // 1 = shared by every head
  int64_t num_q_blocks = 0;
  int64_t num_k_blocks = 0;
  OrderingKind ordering = OrderingKind::Raster;
  torch::Tensor row_offsets;  // [num_heads * num_q_blocks + 1] int32
  torch::Tensor col_indices;  // [kept] int32, ascending within a row
  torch::Tensor schedule;     // [schedule_heads * num_q_blocks] int32
  int64_t schedule_heads = 0;
  // Every block pair kept, with no arrays: the kernel walks all key blocks (dense attention).
  bool full = false;

  int64_t num_rows() const { return num_heads * num_q_blocks; }
  int64_t kept_blocks() const {
    return full ? num_rows() * num_k_blocks : col_indices.defined() ? col_indices.numel() : 0;
  }
  double block_sparsity() const;
};

// The full mask without arrays (what a dense call needs: nothing to upload).
DeviceBlockMask full_device_mask(int64_t seq_len, int64_t block_size, const torch::Device& device,
                                 int64_t heads);
// Copies the mask to `device` (a full BlockMask becomes full_device_mask) and builds the schedule
// for `heads` heads (0: mask.num_heads).
DeviceBlockMask upload_mask(const BlockMask& mask, const torch::Device& device, int64_t heads = 0);
BlockMask download_mask(const DeviceBlockMask& mask);

// The device copy attached to `mask` for (device, heads), uploaded and attached on a miss: a
// cached mask (static policies reuse one for a whole job) is uploaded once, not once per call.
std::shared_ptr<DeviceBlockMask> cached_device_mask(const BlockMask& mask, const torch::Device& device,
                                                    int64_t heads);
// The host mask of a mask built on the GPU with `mask` itself attached as its device copy, so
// attention does not upload it again. Its row offsets are downloaded now (sparsity figures); its
// columns are deferred (BlockMask::deferred_cols): the studio, traces and CPU checks fetch them
// on first read through BlockMask::cols(), the generation loop never does.
// The schedule is (re)built for `heads` heads first (0: keep the mask's schedule_heads).
// host_row_offsets: the mask's row offsets when the caller has them (mask_from_keep hands them
// back), so they are not downloaded again.
BlockMaskPtr host_mask_with_device_copy(DeviceBlockMask mask, int64_t heads = 0,
                                        const std::vector<int32_t>* host_row_offsets = nullptr);
// The order the kernel's CTAs take the (head, query block) items of a sparse mask:
//   Bands   (default) natural head-major order, stably regrouped into 4 bands of row weight
//           (>= 3/4 of the longest row first, ...): heavy rows early, neighbours together;
//   Sorted  rows by kept blocks, descending (stable), a shared row for every head back to back;
//   Natural head-major, as stored.
// LONGSHOT_SCHEDULE=bands|sorted|natural picks one for a process (benchmarks compare them).
enum class ScheduleOrder { Bands, Sorted, Natural };
ScheduleOrder schedule_order();
// (Re)builds mask.schedule for `heads` heads on the mask's device in schedule_order();
// a mask shared by all heads (num_heads 1) gets one item per (head, row). The order is worked out
// on the host from the row offsets (host_row_offsets, or downloaded) and uploaded.
void prepare_schedule(DeviceBlockMask& mask, int64_t heads, const std::vector<int32_t>* host_row_offsets = nullptr);

// ----------------------------------------------------------------------------------[attention]
// q, k, v: [B, H, N, D] CUDA tensors, bf16 or fp16, D in {64, 128}; mask block size 64 or 128.
// Throws ShapeError naming the tensor/parameter that is not supported.
torch::Tensor block_sparse_attention(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const BlockMask& mask);

// As above, with the mask already on the GPU (its schedule is rebuilt if made for other heads;
// pass a prepared mask to keep the call free of extra launches). scale <= 0 means 1/sqrt(D).
// Output: [B, H, N, D], a transposed view of [B, N, H, D] memory (what the model reshapes).
// path / m_tiles: which kernel and mma.sync variant (see kernel_path.h and
// BlockSparseParams::m_tiles), for benchmarks and tests; the defaults pick the fastest.
torch::Tensor block_sparse_attention(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, DeviceBlockMask& mask,
                                     double scale = 0.0, KernelPath path = KernelPath::Auto,
                                     int m_tiles = 0);
// Dense attention through the same kernel (full mask, no arrays).
torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              int64_t block_size = 128, double scale = 0.0);
// True when `path` Auto would take the Hopper kernel for this dtype/head_dim on q's device with
// masks of `block_size` (reports, tests).
bool hopper_kernel_applies(const torch::Tensor& q, int64_t block_size);

// -----------------------------------------------------------------------------------[building]
// LibTorch ops and mask_select.cu kernels on the tensors' device; the CPU reference stays the oracle.
// Mean of each block of tokens: [B, H, N, D] → [B, H, ceil(N / block), D] fp32; the ragged
// last block is averaged over its real tokens.
torch::Tensor block_mean_pool(const torch::Tensor& x, int64_t block_size);
// Block-level attention probabilities softmax(q̄ k̄ᵀ · scale) over key blocks, averaged over the
// batch: [H, nq, nk] fp32. scale <= 0 means 1/sqrt(D).
torch::Tensor block_scores(const torch::Tensor& q, const torch::Tensor& k, int64_t block_size,
                           double scale = 0.0);
// The same from block means already taken (qp, kp [B, H, nb, D] fp32, e.g. by the model's fused
// RMSNorm+RoPE kernel, MaskRequest::q_pooled).
torch::Tensor block_scores_from_means(const torch::Tensor& qp, const torch::Tensor& kp, double scale = 0.0);
// BSR from a keep matrix [Hm, nq, nk] (bool, any device); keep_diagonal forces block (qb, qb) so
// no row is empty by construction.
// Bool or uint8 (0/1) keep; one device→host sync (the row offsets, to size the columns), handed
// back in host_row_offsets when given. attention_heads > 0: the schedule for that many heads (a
// shared keep [1, nb, nb]).
DeviceBlockMask mask_from_keep(const torch::Tensor& keep, int64_t seq_len, int64_t block_size,
                               bool keep_diagonal = true, OrderingKind ordering = OrderingKind::Raster,
                               std::vector<int32_t>* host_row_offsets = nullptr, int64_t attention_heads = 0);
// Keeps exactly `k` key blocks per row: the diagonal and the k − 1 highest-scoring others
// (scores [Hm, nq, nk]). Built without a device→host sync. cand (optional, [nq, nk] bool or
// uint8 on the scores' device): only candidates compete; non-candidates fill a row that has
// fewer than k, lowest index first.
DeviceBlockMask select_topk(const torch::Tensor& scores, int64_t k, int64_t seq_len,
                            int64_t block_size, OrderingKind ordering = OrderingKind::Raster,
                            const torch::Tensor& cand = {});
// select_topk(block_scores_from_means(qp, kp), ...) in two launches when B = 1: a row's softmax
// is monotone in its logits, so the top-k runs on q̄ k̄ᵀ directly (one batched matmul, then the
// selection kernel, which also writes the offsets and schedule). B > 1 averages the softmax.
DeviceBlockMask select_topk_from_means(const torch::Tensor& qp, const torch::Tensor& kp, int64_t k, int64_t seq_len,
                                       int64_t block_size, OrderingKind ordering = OrderingKind::Raster,
                                       const torch::Tensor& cand = {});
// Keeps, per row, the fewest highest-scoring blocks whose scores sum to >= threshold × the
// row's total (plus the diagonal). threshold in (0, 1].
DeviceBlockMask select_cumulative(const torch::Tensor& scores, double threshold, int64_t seq_len,
                                  int64_t block_size, OrderingKind ordering = OrderingKind::Raster);
// radial-dynamic's cumulative-mass selection in one kernel (see mask_select.h for the rule):
// logits [H, nb, nb] (pooled q̄·k̄ᵀ·scale), log_len [nb] (log token count per key block), cand and
// forced [nb, nb] bool or uint8, all on one CUDA device → keep [H, nb, nb] uint8 (0/1). nb <= 2048.
torch::Tensor cumulative_keep(const torch::Tensor& logits, const torch::Tensor& log_len, const torch::Tensor& cand,
                              const torch::Tensor& forced, double tau);

// -------------------------------------------------------------------------------------[tokens]
// Token permutation as index tensors on `device`: perm (ordered position → raster token) and
// its inverse, int64.
struct PermutationTensors {
  torch::Tensor perm;
  torch::Tensor inverse;
};
PermutationTensors permutation_tensors(const Ordering& ordering, const torch::Device& device);
// x.index_select(dim, index): gather into an ordering with perm, scatter back with inverse.
torch::Tensor permute_tokens(const torch::Tensor& x, const torch::Tensor& index, int64_t dim);

}  // namespace longshot::attention::cuda

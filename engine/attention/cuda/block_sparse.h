// The block-sparse attention kernels' host interface: one POD params struct and the dispatch
// entry points. Plain CUDA runtime types only — no LibTorch here (the adapter owns tensors).
// Layout: q, k, v, o are [B, H, N, D] addressed through explicit element strides; the last
// (D) dimension must be contiguous and 16-byte aligned.
#pragma once
#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

#include "engine/attention/cuda/kernel_path.h"

namespace longshot::attention::cuda {

enum class DType : int { BFloat16 = 0, Float16 = 1 };


// Everything one launch needs, passed by value to the kernel.
struct BlockSparseParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  // Element strides of [B, H, N, D] (D stride is 1).
  int64_t q_batch_stride = 0, q_head_stride = 0, q_row_stride = 0;
  int64_t k_batch_stride = 0, k_head_stride = 0, k_row_stride = 0;
  int64_t v_batch_stride = 0, v_head_stride = 0, v_row_stride = 0;
  int64_t o_batch_stride = 0, o_head_stride = 0, o_row_stride = 0;
  int batch = 0;
  int heads = 0;
  int seq_len = 0;
  int head_dim = 0;
  DType dtype = DType::BFloat16;
  // The BSR mask (see engine/attention/block_mask.h): rows are (mask head, query block),
  // head-major; mask_heads is 1 (shared by every head) or `heads`. row_offsets and col_indices
  // both null means the full mask (dense attention without mask arrays).
  int block_size = 128;
  int num_q_blocks = 0;
  int num_k_blocks = 0;
  int mask_heads = 1;
  const int32_t* row_offsets = nullptr;  // device, mask_heads * num_q_blocks + 1
  const int32_t* col_indices = nullptr;  // device, ascending per row
  // Work items h * num_q_blocks + qb (h over all `heads`) in launch order (torch_adapter.h's
  // ScheduleOrder: heavy rows early so short ones fill the tail, neighbours together for L2).
  const int32_t* schedule = nullptr;  // device, num_items entries
  int num_items = 0;
  float scale_log2 = 0.f;  // softmax scale × log2(e): the kernel works in base 2
  // m16 row bands per warp: 0 = the dispatch's choice (2 for block 128, 1 for block 64);
  // 1 or 2 force a variant (benchmarks, tests).
  int m_tiles = 0;
  KernelPath path = KernelPath::Auto;
};

// True when a kernel instance exists for this dtype / head_dim / block_size combination and the
// strides and pointers meet its alignment needs; `why` (optional) gets the reason otherwise.
bool block_sparse_supported(const BlockSparseParams& params, std::string* why = nullptr);
// Launches on `stream`; throws CudaError (with file:line) on an unsupported case or a failed
// launch. Rows with no kept block produce zeros.
void block_sparse_forward(const BlockSparseParams& params, cudaStream_t stream);
// True when the Hopper kernel can run these params on the current device (`why` otherwise).
bool hopper_path_available(const BlockSparseParams& params, std::string* why = nullptr);

}  // namespace longshot::attention::cuda

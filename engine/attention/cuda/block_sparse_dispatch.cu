// The one place where runtime values (dtype, head_dim, block size) become template arguments
// of the block-sparse kernel. An unsupported combination is an error, never a fallback.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cudaTypedefs.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "engine/attention/cuda/block_sparse.h"
#include "engine/attention/cuda/block_sparse_sm90.cuh"
#include "engine/common/cuda/cuda_check.h"

namespace longshot::attention::cuda {

template <typename T, int BLOCK_M, int D, int M_TILES>
void launch_block_sparse(const BlockSparseParams& p, cudaStream_t stream);

namespace sm90 {
template <typename T, int D>
void launch_sm90(const BlockSparseParams& p, const Maps& maps, cudaStream_t stream);
bool device_runs_sm90a_code();
}  // namespace sm90

namespace {

// The driver's tensor-map encoder, looked up once through the runtime (no -lcuda link).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &status) !=
            cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      cudaGetLastError();  // clear the sticky-free error so later checks do not see it
      f = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// Per device: compute capability 9.0 and sm_90a code in this binary for the Hopper kernel.
bool device_runs_sm90_kernel(std::string* why) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = "no current CUDA device";
    return false;
  }
  static std::mutex mu;
  static std::vector<int> state;  // per device: 0 unknown, 1 yes, 2 no
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(state.size()) <= dev) state.resize(dev + 1, 0);
  if (state[dev] == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    state[dev] = major == 9 && minor == 0 && tensor_map_encoder() && sm90::device_runs_sm90a_code() ? 1 : 2;
  }
  if (state[dev] != 1 && why) *why = "the device is not compute capability 9.0 or this build has no sm_90a code";
  return state[dev] == 1;
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <typename T, int D>
void dispatch_block(const BlockSparseParams& p, cudaStream_t stream) {
  if (p.block_size == 64) {
    launch_block_sparse<T, 64, D, 1>(p, stream);
  } else if (p.m_tiles == 1) {
    launch_block_sparse<T, 128, D, 1>(p, stream);
  } else {
    launch_block_sparse<T, 128, D, 2>(p, stream);
  }
}

template <typename T>
void dispatch_head_dim(const BlockSparseParams& p, cudaStream_t stream) {
  if (p.head_dim == 64) {
    dispatch_block<T, 64>(p, stream);
  } else {
    dispatch_block<T, 128>(p, stream);
  }
}

}  // namespace

bool block_sparse_supported(const BlockSparseParams& p, std::string* why) {
  auto fail = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (p.dtype != DType::BFloat16 && p.dtype != DType::Float16) return fail("dtype must be bf16 or fp16");
  if (p.head_dim != 64 && p.head_dim != 128)
    return fail("head_dim " + std::to_string(p.head_dim) + " not in {64, 128}");
  if (p.block_size != 64 && p.block_size != 128)
    return fail("block_size " + std::to_string(p.block_size) + " not in {64, 128}");
  if (p.m_tiles != 0 && p.m_tiles != 1 && !(p.m_tiles == 2 && p.block_size == 128))
    return fail("m_tiles " + std::to_string(p.m_tiles) + " not built (0 = auto; 1; 2 with block 128)");
  if (p.mask_heads != 1 && p.mask_heads != p.heads)
    return fail("mask heads " + std::to_string(p.mask_heads) + " must be 1 or " + std::to_string(p.heads));
  if (p.batch <= 0 || p.heads <= 0 || p.seq_len <= 0) return fail("empty batch, heads or sequence");
  if (p.num_q_blocks != (p.seq_len + p.block_size - 1) / p.block_size || p.num_k_blocks != p.num_q_blocks)
    return fail("mask block counts do not match seq_len / block_size");
  if (p.num_items != p.heads * p.num_q_blocks) return fail("schedule must hold heads × query blocks items");
  // 16-byte vector loads: base pointers and every stride a multiple of 8 elements.
  for (const void* ptr : {p.q, p.k, p.v, static_cast<const void*>(p.o)})
    if (!aligned16(ptr)) return fail("q/k/v/o base pointers must be 16-byte aligned");
  for (int64_t s : {p.q_batch_stride, p.q_head_stride, p.q_row_stride, p.k_batch_stride,
                    p.k_head_stride, p.k_row_stride, p.v_batch_stride, p.v_head_stride,
                    p.v_row_stride, p.o_batch_stride, p.o_head_stride, p.o_row_stride})
    if (s % 8 != 0) return fail("batch/head/row strides must be multiples of 8 elements");
  if (!p.schedule) return fail("schedule not set");
  if ((p.row_offsets == nullptr) != (p.col_indices == nullptr))
    return fail("row_offsets and col_indices must both be set (or both null for the full mask)");
  return true;
}

namespace sm90 {

bool encode_maps(const BlockSparseParams& p, Maps& maps, std::string* why) {
  const auto encode = tensor_map_encoder();
  if (!encode) {
    if (why) *why = "the driver has no cuTensorMapEncodeTiled";
    return false;
  }
  const CUtensorMapDataType type =
      p.dtype == DType::BFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  auto one = [&](CUtensorMap& map, const void* ptr, int64_t row, int64_t head, int64_t batch, const char* name) {
    // A size-1 dimension's stride is never used to step; give it one the encoder accepts.
    if (p.heads == 1) head = row * p.seq_len;
    if (p.batch == 1) batch = head * p.heads;
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(p.head_dim), static_cast<cuuint64_t>(p.seq_len),
                                static_cast<cuuint64_t>(p.heads), static_cast<cuuint64_t>(p.batch)};
    const cuuint64_t strides[3] = {static_cast<cuuint64_t>(row) * 2, static_cast<cuuint64_t>(head) * 2,
                                   static_cast<cuuint64_t>(batch) * 2};
    const cuuint32_t box[4] = {static_cast<cuuint32_t>(kSlabCols), static_cast<cuuint32_t>(kBlock), 1, 1};
    const cuuint32_t elem[4] = {1, 1, 1, 1};
    const CUresult r = encode(&map, type, 4, const_cast<void*>(ptr), dims, strides, box, elem,
                              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS && why) *why = std::string("cuTensorMapEncodeTiled refused ") + name + "'s layout (error " + std::to_string(static_cast<int>(r)) + ")";
    return r == CUDA_SUCCESS;
  };
  return one(maps.q, p.q, p.q_row_stride, p.q_head_stride, p.q_batch_stride, "q") &&
         one(maps.k, p.k, p.k_row_stride, p.k_head_stride, p.k_batch_stride, "k") &&
         one(maps.v, p.v, p.v_row_stride, p.v_head_stride, p.v_batch_stride, "v");
}

}  // namespace sm90

bool hopper_path_available(const BlockSparseParams& p, std::string* why) {
  if (p.block_size != sm90::kBlock) {
    if (why) *why = "the Hopper kernel needs mask block size 128";
    return false;
  }
  if (p.m_tiles != 0) {
    if (why) *why = "m_tiles selects an mma.sync variant";
    return false;
  }
  return device_runs_sm90_kernel(why);
}

namespace {

template <typename T>
void dispatch_sm90(const BlockSparseParams& p, const sm90::Maps& maps, cudaStream_t stream) {
  if (p.head_dim == 64) {
    sm90::launch_sm90<T, 64>(p, maps, stream);
  } else {
    sm90::launch_sm90<T, 128>(p, maps, stream);
  }
}

// LONGSHOT_KERNEL_PATH=auto|mma|hopper overrides an Auto request for the whole process, so the GPU
// suite can run every case through the mma.sync (sm_80) path on a Hopper card. Read once.
KernelPath env_kernel_path() {
  static const KernelPath path = [] {
    const char* v = std::getenv("LONGSHOT_KERNEL_PATH");
    const std::string s = v ? v : "";
    if (s.empty() || s == "auto") return KernelPath::Auto;
    if (s == "mma") return KernelPath::Mma;
    if (s == "hopper") return KernelPath::Hopper;
    throw CudaError("LONGSHOT_KERNEL_PATH=" + s + ": expected auto, mma or hopper");
  }();
  return path;
}

}  // namespace

void block_sparse_forward(const BlockSparseParams& p_in, cudaStream_t stream) {
  std::string why;
  BlockSparseParams p = p_in;
  if (p.path == KernelPath::Auto) p.path = env_kernel_path();
  if (!block_sparse_supported(p, &why)) throw CudaError("block_sparse_forward: unsupported case: " + why);
  if (p.path != KernelPath::Mma) {
    sm90::Maps maps;
    const bool hopper = hopper_path_available(p, &why) && sm90::encode_maps(p, maps, &why);
    if (hopper) {
      if (p.dtype == DType::BFloat16) {
        dispatch_sm90<__nv_bfloat16>(p, maps, stream);
      } else {
        dispatch_sm90<__half>(p, maps, stream);
      }
      return;
    }
    if (p.path == KernelPath::Hopper) throw CudaError("block_sparse_forward: Hopper kernel unavailable: " + why);
  }
  if (p.dtype == DType::BFloat16) {
    dispatch_head_dim<__nv_bfloat16>(p, stream);
  } else {
    dispatch_head_dim<__half>(p, stream);
  }
}

}  // namespace longshot::attention::cuda

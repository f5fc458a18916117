// The cuBLASLt GEMMs of lt_gemm.h: the residual GEMM (C and D the residual stream, beta = 1,
// bias in the epilogue) and the FP8 GEMM with per-row and per-channel scales.
//
// cuBLASLt comes from the process, not from this library's link line: LibTorch's CUDA library
// already loaded one (pip wheels ship their own beside it), and a second copy from the toolkit
// under the same soname could shadow it. So the entry points are looked up once with dlsym; a
// process without them gets a reason string and the caller runs the unfused path.
#include <cublasLt.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "engine/model/cuda/lt_gemm.h"

// Outer-vector (per row / per column) FP8 scales came with cuBLAS 12.9.
#if defined(CUBLAS_VER_MAJOR) && (CUBLAS_VER_MAJOR > 12 || (CUBLAS_VER_MAJOR == 12 && CUBLAS_VER_MINOR >= 9))
#define LONGSHOT_LT_OUTER_VEC 1
#endif

namespace longshot::model::cuda {

namespace {

struct Lt {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
  std::string missing;  // empty when every entry point was found
};

template <typename F>
void find(F& f, const char* name, std::string& missing) {
  f = reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
  if (f == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
}

const Lt& lt() {
  static const Lt table = [] {
    Lt t;
    find(t.create, "cublasLtCreate", t.missing);
    find(t.desc_create, "cublasLtMatmulDescCreate", t.missing);
    find(t.desc_destroy, "cublasLtMatmulDescDestroy", t.missing);
    find(t.desc_set, "cublasLtMatmulDescSetAttribute", t.missing);
    find(t.layout_create, "cublasLtMatrixLayoutCreate", t.missing);
    find(t.layout_destroy, "cublasLtMatrixLayoutDestroy", t.missing);
    find(t.pref_create, "cublasLtMatmulPreferenceCreate", t.missing);
    find(t.pref_destroy, "cublasLtMatmulPreferenceDestroy", t.missing);
    find(t.pref_set, "cublasLtMatmulPreferenceSetAttribute", t.missing);
    find(t.heuristic, "cublasLtMatmulAlgoGetHeuristic", t.missing);
    find(t.matmul, "cublasLtMatmul", t.missing);
    if (!t.missing.empty()) t.missing = "cuBLASLt is not loaded in this process (" + t.missing + " not found)";
    return t;
  }();
  return table;
}

// What a plan is for: the shape, the operand types, the epilogue and the alignments cuBLASLt may
// assume. Column-major view of row-major tensors: D (n × rows, ld n) = Wᵀ-op (n × k) · A (k × rows).
struct Spec {
  int device = 0;
  int64_t rows = 0;
  int n = 0, k = 0;
  cudaDataType_t ab = CUDA_R_16BF, cd = CUDA_R_32F, bias = CUDA_R_32F;
  bool has_bias = false, outer_vec_scales = false;
  int align_ab = 16, align_cd = 16, workspace_mb = 0;
  auto tie() const {
    return std::make_tuple(device, rows, n, k, int(ab), int(cd), int(bias), has_bias, outer_vec_scales, align_ab,
                           align_cd, workspace_mb);
  }
  bool operator<(const Spec& o) const { return tie() < o.tie(); }
};

// One spec's descriptors and chosen algorithm, or why there is none (kept, so a shape cuBLASLt
// cannot run is asked about once, not at every call). Pointers (bias, scales) are set per call,
// under the lock.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  std::string failure;
};

// Largest power of two (<= 256) dividing the address: what cuBLASLt may assume of a pointer.
int alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  int a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

std::string status_text(const char* call, cublasStatus_t s) {
  return std::string(call) + " returned cuBLAS status " + std::to_string(int(s));
}

std::string shape_text(const Spec& s) {
  return std::to_string(s.rows) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
}

// The pointers a matmul reads besides its operands; set on the descriptor before each call, and
// before the heuristic (which may reject a vector scale mode whose pointers are unset).
struct Pointers {
  const void* a_scale = nullptr;  // cuBLASLt's A: the weight
  const void* b_scale = nullptr;  // cuBLASLt's B: the activations
  const void* bias = nullptr;
};

void set_pointers(const Lt& f, cublasLtMatmulDesc_t desc, const Pointers& ptr) {
  if (ptr.a_scale != nullptr) f.desc_set(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ptr.a_scale, sizeof(ptr.a_scale));
  if (ptr.b_scale != nullptr) f.desc_set(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &ptr.b_scale, sizeof(ptr.b_scale));
  if (ptr.bias != nullptr) f.desc_set(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ptr.bias, sizeof(ptr.bias));
}

// Builds the plan for `s` (a failure string in it when cuBLASLt has none); frees what it made
// when it fails.
Plan make_plan(const Lt& f, cublasLtHandle_t handle, const Spec& s, size_t workspace_bytes, const Pointers& ptr) {
  Plan p;
  cublasLtMatmulPreference_t pref = nullptr;
  auto fail = [&](std::string why) {
    if (pref != nullptr) f.pref_destroy(pref);
    for (auto* l : {p.a, p.b, p.c})
      if (l != nullptr) f.layout_destroy(l);
    if (p.desc != nullptr) f.desc_destroy(p.desc);
    Plan failed;
    failed.failure = std::move(why);
    return failed;
  };
  cublasStatus_t st = f.desc_create(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (st != CUBLAS_STATUS_SUCCESS) return fail(status_text("cublasLtMatmulDescCreate", st));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
  f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  if (s.has_bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue));
    f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &s.bias, sizeof(s.bias));
  }
  if (s.outer_vec_scales) {
#ifdef LONGSHOT_LT_OUTER_VEC
    const cublasLtMatmulMatrixScale_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    if ((st = f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof(mode))) != CUBLAS_STATUS_SUCCESS ||
        (st = f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof(mode))) != CUBLAS_STATUS_SUCCESS)
      return fail("this cuBLASLt has no outer-vector FP8 scaling (" + status_text("scale mode", st) + ")");
#else
    return fail("this cuBLASLt has no outer-vector FP8 scaling (built against cuBLAS headers older than 12.9)");
#endif
  }
  set_pointers(f, p.desc, ptr);
  if ((st = f.layout_create(&p.a, s.ab, s.k, s.n, s.k)) != CUBLAS_STATUS_SUCCESS ||
      (st = f.layout_create(&p.b, s.ab, s.k, s.rows, s.k)) != CUBLAS_STATUS_SUCCESS ||
      (st = f.layout_create(&p.c, s.cd, s.n, s.rows, s.n)) != CUBLAS_STATUS_SUCCESS)
    return fail(status_text("cublasLtMatrixLayoutCreate", st));
  if ((st = f.pref_create(&pref)) != CUBLAS_STATUS_SUCCESS) return fail(status_text("cublasLtMatmulPreferenceCreate", st));
  const uint64_t ws = workspace_bytes;
  const uint32_t aab = uint32_t(s.align_ab), acd = uint32_t(s.align_cd);
  f.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aab, sizeof(aab));
  f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &aab, sizeof(aab));
  f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &acd, sizeof(acd));
  f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &acd, sizeof(acd));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  st = f.heuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    return fail("cuBLASLt has no algorithm for a " + shape_text(s) + " GEMM (" + status_text("heuristic", st) + ")");
  f.pref_destroy(pref);
  p.algo = result.algo;
  return p;
}

std::mutex& lt_mutex() {
  static std::mutex m;
  return m;
}

// The plan for `s` (made once, kept for the process: one per shape), under lt_mutex. handle_out:
// the device's cuBLASLt handle. Null with `why` set when cuBLASLt cannot run it.
const Plan* plan_for(const Spec& s, size_t workspace_bytes, const Pointers& ptr, cublasLtHandle_t& handle_out,
                     std::string& why) {
  const Lt& f = lt();
  static std::map<int, cublasLtHandle_t> handles;
  static std::map<Spec, Plan> plans;
  auto& handle = handles[s.device];
  if (handle == nullptr) {
    const auto st = f.create(&handle);
    if (st != CUBLAS_STATUS_SUCCESS) {
      handle = nullptr;
      why = status_text("cublasLtCreate", st);
      return nullptr;
    }
  }
  handle_out = handle;
  auto it = plans.find(s);
  if (it == plans.end()) it = plans.emplace(s, make_plan(f, handle, s, workspace_bytes, ptr)).first;
  if (!it->second.failure.empty()) {
    why = it->second.failure;
    return nullptr;
  }
  return &it->second;
}

}  // namespace

std::string gemm_residual(const void* a, const void* w, const void* bias, void* x, bool fp16, bool x16, int64_t rows,
                          int n, int k, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const Lt& f = lt();
  if (!f.missing.empty()) return f.missing;
  if (rows <= 0 || n <= 0 || k <= 0) return "empty GEMM";
  Spec s;
  if (cudaGetDevice(&s.device) != cudaSuccess) return "no current CUDA device";
  s.rows = rows, s.n = n, s.k = k;
  s.ab = fp16 ? CUDA_R_16F : CUDA_R_16BF;
  s.cd = x16 ? s.ab : CUDA_R_32F, s.bias = s.cd, s.has_bias = bias != nullptr;
  s.align_ab = std::min(alignment(a), alignment(w)), s.align_cd = alignment(x);
  s.workspace_mb = int(workspace_bytes >> 20);

  std::lock_guard<std::mutex> lock(lt_mutex());
  cublasLtHandle_t handle = nullptr;
  std::string why;
  Pointers ptr;
  ptr.bias = bias;
  const Plan* p = plan_for(s, workspace_bytes, ptr, handle, why);
  if (p == nullptr) return why + (x16 ? " (16-bit residual)" : " (fp32 residual)");
  set_pointers(f, p->desc, ptr);
  const float one = 1.0f;
  const auto st = f.matmul(handle, p->desc, &one, w, p->a, a, p->b, &one, x, p->c, x, p->c, &p->algo, workspace,
                           workspace_bytes, stream);
  if (st != CUBLAS_STATUS_SUCCESS) return status_text("cublasLtMatmul", st);
  return {};
}

std::string gemm_fp8(const Fp8Operands& op, int64_t rows, int n, int k, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream) {
  const Lt& f = lt();
  if (!f.missing.empty()) return f.missing;
  if (rows <= 0 || n <= 0 || k <= 0) return "empty GEMM";
  if (k % 16 != 0 || n % 16 != 0) return "FP8 GEMMs need k and n multiples of 16";
  Spec s;
  if (cudaGetDevice(&s.device) != cudaSuccess) return "no current CUDA device";
  s.rows = rows, s.n = n, s.k = k;
  s.ab = CUDA_R_8F_E4M3;
  s.cd = op.residual && !op.residual16 ? CUDA_R_32F : CUDA_R_16BF;
  s.bias = s.cd, s.has_bias = op.bias != nullptr, s.outer_vec_scales = true;
  s.align_ab = std::min(alignment(op.a8), alignment(op.w8)), s.align_cd = alignment(op.out);
  s.workspace_mb = int(workspace_bytes >> 20);

  std::lock_guard<std::mutex> lock(lt_mutex());
  cublasLtHandle_t handle = nullptr;
  std::string why;
  // cuBLASLt's A is the weight (scales per row of op(A) = per output channel), B the activations
  // (scales per column of B = per token).
  Pointers ptr;
  ptr.a_scale = op.w_scale, ptr.b_scale = op.a_scale, ptr.bias = op.bias;
  const Plan* p = plan_for(s, workspace_bytes, ptr, handle, why);
  std::string also;
  if (p == nullptr && op.residual && !op.residual16 && op.bias_bf16 != nullptr) {
    // Some cuBLASLt versions take only a 16-bit bias beside FP8 operands.
    s.bias = CUDA_R_16BF;
    ptr.bias = op.bias_bf16;
    p = plan_for(s, workspace_bytes, ptr, handle, also);
  }
  if (p == nullptr && s.has_bias && op.bias_left_out != nullptr) {
    // No bias epilogue beside these scales: the GEMM alone, the caller adds the bias.
    s.has_bias = false;
    ptr.bias = nullptr;
    p = plan_for(s, workspace_bytes, ptr, handle, also);
    if (p != nullptr) *op.bias_left_out = true;
  }
  if (p == nullptr)
    return why + (!op.residual ? " (FP8, bf16 out)" : op.residual16 ? " (FP8, bf16 residual)" : " (FP8, fp32 residual)");
  set_pointers(f, p->desc, ptr);
  const float one = 1.0f, beta = op.residual ? 1.0f : 0.0f;
  const auto st = f.matmul(handle, p->desc, &one, op.w8, p->a, op.a8, p->b, &beta, op.out, p->c, op.out, p->c,
                           &p->algo, workspace, workspace_bytes, stream);
  if (st != CUBLAS_STATUS_SUCCESS) return status_text("cublasLtMatmul", st);
  return {};
}

}  // namespace longshot::model::cuda

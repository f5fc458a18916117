// The residual GEMM (see gemm_residual.h): one cuBLASLt matmul whose C and D are the fp32 residual
// stream (beta = 1) and whose epilogue adds the bias.
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

#include "engine/model/cuda/gemm_residual.h"

namespace longshot::model::cuda {

namespace {

struct Lt {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
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
    find(t.desc_set, "cublasLtMatmulDescSetAttribute", t.missing);
    find(t.layout_create, "cublasLtMatrixLayoutCreate", t.missing);
    find(t.pref_create, "cublasLtMatmulPreferenceCreate", t.missing);
    find(t.pref_set, "cublasLtMatmulPreferenceSetAttribute", t.missing);
    find(t.heuristic, "cublasLtMatmulAlgoGetHeuristic", t.missing);
    find(t.matmul, "cublasLtMatmul", t.missing);
    if (!t.missing.empty()) t.missing = "cuBLASLt is not loaded in this process (" + t.missing + " not found)";
    return t;
  }();
  return table;
}

// One shape's descriptors and chosen algorithm. The bias pointer is set per call, under the lock.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
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

}  // namespace

std::string gemm_residual(const void* a, const void* w, const float* bias, float* x, bool fp16, int64_t rows, int n,
                          int k, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const Lt& f = lt();
  if (!f.missing.empty()) return f.missing;
  if (rows <= 0 || n <= 0 || k <= 0) return "empty GEMM";
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return "no current CUDA device";

  static std::mutex mutex;
  static std::map<int, cublasLtHandle_t> handles;
  using Key = std::tuple<int, int64_t, int, int, bool, bool, int, int, int>;
  static std::map<Key, Plan> plans;
  std::lock_guard<std::mutex> lock(mutex);

  auto& handle = handles[device];
  if (handle == nullptr) {
    const auto s = f.create(&handle);
    if (s != CUBLAS_STATUS_SUCCESS) {
      handle = nullptr;
      return status_text("cublasLtCreate", s);
    }
  }
  const int align_ab = std::min(alignment(a), alignment(w)), align_c = alignment(x);
  const Key key{device, rows, n, k, fp16, bias != nullptr, align_ab, align_c, int(workspace_bytes >> 20)};
  auto it = plans.find(key);
  if (it == plans.end()) {
    // Column-major view of row-major tensors: D (n × rows, ld n) = Wᵀ-op (n × k) · A (k × rows).
    Plan p;
    const cudaDataType_t in_type = fp16 ? CUDA_R_16F : CUDA_R_16BF;
    cublasStatus_t s = f.desc_create(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s != CUBLAS_STATUS_SUCCESS) return status_text("cublasLtMatmulDescCreate", s);
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
    f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
    if (bias != nullptr) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      const cudaDataType_t bias_type = CUDA_R_32F;
      f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue));
      f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type));
    }
    if ((s = f.layout_create(&p.a, in_type, k, n, k)) != CUBLAS_STATUS_SUCCESS ||
        (s = f.layout_create(&p.b, in_type, k, rows, k)) != CUBLAS_STATUS_SUCCESS ||
        (s = f.layout_create(&p.c, CUDA_R_32F, n, rows, n)) != CUBLAS_STATUS_SUCCESS)
      return status_text("cublasLtMatrixLayoutCreate", s);
    cublasLtMatmulPreference_t pref = nullptr;
    if ((s = f.pref_create(&pref)) != CUBLAS_STATUS_SUCCESS) return status_text("cublasLtMatmulPreferenceCreate", s);
    const uint64_t ws = workspace_bytes;
    const uint32_t aab = uint32_t(align_ab), ac = uint32_t(align_c);
    f.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aab, sizeof(aab));
    f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &aab, sizeof(aab));
    f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac));
    f.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    s = f.heuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0)
      return "cuBLASLt has no algorithm for a " + std::to_string(rows) + "x" + std::to_string(n) + "x" +
             std::to_string(k) + " GEMM with an fp32 residual (" + status_text("heuristic", s) + ")";
    p.algo = result.algo;
    it = plans.emplace(key, p).first;  // descriptors live as long as the process: one per shape
  }
  const Plan& p = it->second;
  if (bias != nullptr) f.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
  const float one = 1.0f;
  const auto s = f.matmul(handle, p.desc, &one, w, p.a, a, p.b, &one, x, p.c, x, p.c, &p.algo, workspace,
                          workspace_bytes, stream);
  if (s != CUBLAS_STATUS_SUCCESS) return status_text("cublasLtMatmul", s);
  return {};
}

}  // namespace longshot::model::cuda

// Standalone probe of the block-sparse kernels (CUDA runtime only, no LibTorch): checks both kernel
// paths (mma.sync and Hopper) against a float32 reference kernel on random data, then times them
// dense and at ~90 % block sparsity. Builds in seconds, so kernel work on the GPU machine needs no
// full project build:
//   tests/gpu/kernel_probe.sh   (or by hand: nvcc -O3 -std=c++17 --expt-relaxed-constexpr \
//        -gencode arch=compute_90a,code=sm_90a -I. tests/gpu/kernel_probe.cu engine/attention/cuda/*.cu)
// Exit status 1 when a checked case exceeds its tolerance.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/attention/cuda/block_sparse.h"
#include "engine/common/cuda/cuda_check.h"

namespace lc = longshot::attention::cuda;

namespace {

#define CHECK(x) LONGSHOT_CUDA_CHECK(x)

struct Mask {
  std::vector<int> offsets, cols, schedule;
  int heads = 1;
  bool full = false;
};

// keep: fraction of key blocks kept per row (diagonal always), per-head when heads > 1; one row
// left empty on purpose when `empty_row`.
Mask make_mask(int nb, int heads, int schedule_heads, double keep, bool full, bool empty_row, uint32_t seed) {
  Mask m;
  m.heads = heads;
  m.full = full;
  std::mt19937 rng(seed);
  std::vector<int> lens;
  m.offsets.push_back(0);
  for (int r = 0; r < heads * nb; ++r) {
    const int qb = r % nb;
    std::vector<int> row;
    if (!full && !(empty_row && r == nb / 2)) {
      for (int kb = 0; kb < nb; ++kb)
        if (kb == qb || std::uniform_real_distribution<double>(0, 1)(rng) < keep) row.push_back(kb);
    }
    if (full) row.resize(nb);
    if (!full) m.cols.insert(m.cols.end(), row.begin(), row.end());
    m.offsets.push_back(static_cast<int>(m.cols.size()));
    lens.push_back(full ? nb : static_cast<int>(row.size()));
  }
  for (int h = 0; h < schedule_heads; ++h)
    for (int qb = 0; qb < nb; ++qb) m.schedule.push_back(h * nb + qb);
  std::stable_sort(m.schedule.begin(), m.schedule.end(), [&](int a, int b) {
    const int ra = heads == 1 ? a % nb : a, rb = heads == 1 ? b % nb : b;
    return lens[ra] > lens[rb];
  });
  return m;
}

template <typename T>
__global__ void reference_kernel(const T* q, const T* k, const T* v, float* o, int B, int H, int N, int D,
                                 int64_t rs, int64_t hs, int64_t bs, const int* offs, const int* cols,
                                 int mask_heads, int block, float scale) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  if (row >= N) return;
  const int qb = row / block;
  const int mrow = mask_heads == 1 ? qb : h * ((N + block - 1) / block) + qb;
  const T* qr = q + b * bs + h * hs + row * rs;
  float m = -INFINITY, l = 0.f, acc[128];
  for (int d = 0; d < D; ++d) acc[d] = 0.f;
  const int nb = (N + block - 1) / block;
  const int begin = offs ? offs[mrow] : 0, end = offs ? offs[mrow + 1] : nb;
  for (int i = begin; i < end; ++i) {
    const int kb = cols ? cols[i] : i;
    for (int key = kb * block; key < min(N, kb * block + block); ++key) {
      const T* kr = k + b * bs + h * hs + key * rs;
      float s = 0.f;
      for (int d = 0; d < D; ++d) s += float(qr[d]) * float(kr[d]);
      s *= scale;
      const float nm = fmaxf(m, s);
      const float a = expf(m - nm), p = expf(s - nm);
      const T* vr = v + b * bs + h * hs + key * rs;
      for (int d = 0; d < D; ++d) acc[d] = acc[d] * a + p * float(vr[d]);
      l = l * a + p;
      m = nm;
    }
  }
  float* out = o + ((static_cast<int64_t>(b) * H + h) * N + row) * D;
  for (int d = 0; d < D; ++d) out[d] = l > 0 ? acc[d] / l : 0.f;
}

template <typename T>
__global__ void fill_random(T* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t s = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    s ^= s >> 13, s *= 0x5bd1e995u, s ^= s >> 15;
    x[i] = T((static_cast<float>(s & 0xFFFFFF) / 16777216.f - 0.5f) * 3.4f);
  }
}
template <typename T>
__global__ void to_float(const T* x, float* y, int B, int H, int N, int D, int64_t rs, int64_t hs, int64_t bs) {
  const int64_t total = int64_t(B) * H * N * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int d = i % D;
    const int n = (i / D) % N;
    const int h = (i / (int64_t(D) * N)) % H;
    const int b = i / (int64_t(D) * N * H);
    y[i] = float(x[b * bs + h * hs + n * rs + d]);
  }
}

struct DeviceMask {
  int* offs = nullptr;
  int* cols = nullptr;
  int* sched = nullptr;
  int items = 0;
  void upload(const Mask& m) {
    if (!m.full) {
      CHECK(cudaMalloc(&offs, m.offsets.size() * 4));
      CHECK(cudaMalloc(&cols, std::max<size_t>(1, m.cols.size()) * 4));
      CHECK(cudaMemcpy(offs, m.offsets.data(), m.offsets.size() * 4, cudaMemcpyHostToDevice));
      if (!m.cols.empty()) CHECK(cudaMemcpy(cols, m.cols.data(), m.cols.size() * 4, cudaMemcpyHostToDevice));
    }
    CHECK(cudaMalloc(&sched, m.schedule.size() * 4));
    CHECK(cudaMemcpy(sched, m.schedule.data(), m.schedule.size() * 4, cudaMemcpyHostToDevice));
    items = static_cast<int>(m.schedule.size());
  }
  ~DeviceMask() {
    cudaFree(offs);
    cudaFree(cols);
    cudaFree(sched);
  }
};

struct Case {
  int B, H, N, D;
  bool fp16, bnhd, full, per_head;
  double keep;
};

// Layout: [B, H, N, D] contiguous, or [B, N, H, D] memory seen as [B, H, N, D] (the model's).
template <typename T>
double run_case(const Case& c, lc::KernelPath path, float* ms_out, int reps) {
  const int nb = (c.N + 127) / 128;
  const int64_t total = int64_t(c.B) * c.H * c.N * c.D;
  const int64_t rs = c.bnhd ? int64_t(c.H) * c.D : c.D;
  const int64_t hs = c.bnhd ? c.D : int64_t(c.N) * c.D;
  const int64_t bs = int64_t(c.N) * c.H * c.D;
  T *q, *k, *v, *o;
  CHECK(cudaMalloc(&q, total * sizeof(T)));
  CHECK(cudaMalloc(&k, total * sizeof(T)));
  CHECK(cudaMalloc(&v, total * sizeof(T)));
  CHECK(cudaMalloc(&o, total * sizeof(T)));
  fill_random<<<1024, 256>>>(q, total, 1u);
  fill_random<<<1024, 256>>>(k, total, 2u);
  fill_random<<<1024, 256>>>(v, total, 3u);
  CHECK(cudaMemset(o, 0xFF, total * sizeof(T)));  // poison: NaN in both 16-bit types
  const Mask mask = make_mask(nb, c.per_head ? c.H : 1, c.H, c.keep, c.full, !c.full, 7u);
  DeviceMask dm;
  dm.upload(mask);

  lc::BlockSparseParams p;
  p.q = q, p.k = k, p.v = v, p.o = o;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.o_row_stride = rs;
  p.q_head_stride = p.k_head_stride = p.v_head_stride = p.o_head_stride = hs;
  p.q_batch_stride = p.k_batch_stride = p.v_batch_stride = p.o_batch_stride = bs;
  p.batch = c.B, p.heads = c.H, p.seq_len = c.N, p.head_dim = c.D;
  p.dtype = c.fp16 ? lc::DType::Float16 : lc::DType::BFloat16;
  p.block_size = 128, p.num_q_blocks = nb, p.num_k_blocks = nb, p.mask_heads = mask.heads;
  p.row_offsets = dm.offs, p.col_indices = dm.cols, p.schedule = dm.sched, p.num_items = dm.items;
  const float scale = 1.f / std::sqrt(static_cast<float>(c.D));
  p.scale_log2 = scale * 1.4426950408889634f;
  p.path = path;

  double err = 0;
  if (reps == 0) {
    lc::block_sparse_forward(p, nullptr);
    CHECK(cudaDeviceSynchronize());
    float *ref, *got;
    CHECK(cudaMalloc(&ref, total * 4));
    CHECK(cudaMalloc(&got, total * 4));
    reference_kernel<T><<<dim3((c.N + 127) / 128, c.H, c.B), 128>>>(q, k, v, ref, c.B, c.H, c.N, c.D, rs, hs, bs,
                                                                      dm.offs, dm.cols, mask.heads, 128, scale);
    CHECK(cudaGetLastError());
    to_float<T><<<1024, 256>>>(o, got, c.B, c.H, c.N, c.D, rs, hs, bs);
    CHECK(cudaDeviceSynchronize());
    std::vector<float> hr(total), hg(total);
    CHECK(cudaMemcpy(hr.data(), ref, total * 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hg.data(), got, total * 4, cudaMemcpyDeviceToHost));
    double num = 0, den = 0;
    for (int64_t i = 0; i < total; ++i) {
      const double d = double(hg[i]) - hr[i];
      num += std::isfinite(hg[i]) ? d * d : 1e30;
      den += double(hr[i]) * hr[i];
    }
    err = std::sqrt(num / std::max(den, 1e-30));
    cudaFree(ref);
    cudaFree(got);
  } else {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < 2; ++i) lc::block_sparse_forward(p, nullptr);
    std::vector<float> times;
    for (int i = 0; i < reps; ++i) {
      cudaEventRecord(e0);
      lc::block_sparse_forward(p, nullptr);
      cudaEventRecord(e1);
      CHECK(cudaEventSynchronize(e1));
      float t = 0;
      cudaEventElapsedTime(&t, e0, e1);
      times.push_back(t);
    }
    std::sort(times.begin(), times.end());
    *ms_out = times[times.size() / 2];
    int64_t kept = 0;
    for (int r = 0; r < mask.heads * nb; ++r) kept += mask.full ? nb : mask.offsets[r + 1] - mask.offsets[r];
    err = double(kept) / (double(mask.heads) * nb * nb);  // kept fraction (for the FLOP count)
  }
  cudaFree(q);
  cudaFree(k);
  cudaFree(v);
  cudaFree(o);
  return err;
}

}  // namespace

int main() {
  try {
    cudaDeviceProp prop{};
    CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (cc %d.%d)\n", prop.name, prop.major, prop.minor);
    lc::BlockSparseParams probe;
    probe.block_size = 128;
    std::string why;
    const bool hopper = lc::hopper_path_available(probe, &why);
    std::printf("hopper path: %s %s\n", hopper ? "yes" : "no", why.c_str());

    bool ok = true;
    const Case checks[] = {
        {2, 2, 4096 + 77, 128, false, false, false, true, 0.3},  // ragged, per-head, empty row
        {1, 3, 2048, 128, false, true, true, false, 1.0},        // full, [B,N,H,D] memory
        {2, 2, 3000, 64, false, true, false, false, 0.4},        // D = 64, shared mask
        {1, 2, 2500, 128, true, false, false, true, 0.5},        // fp16
        {1, 2, 2500, 64, true, true, true, false, 1.0},          // fp16, D = 64, full
    };
    for (const auto& c : checks) {
      for (auto path : {lc::KernelPath::Mma, lc::KernelPath::Hopper}) {
        if (path == lc::KernelPath::Hopper && !hopper) continue;
        const double e = c.fp16 ? run_case<__half>(c, path, nullptr, 0) : run_case<__nv_bfloat16>(c, path, nullptr, 0);
        const double tol = c.fp16 ? 2e-3 : 1e-2;
        ok &= e <= tol;
        std::printf("check %-6s B%d H%d N%d D%d %s %s %s: rel err %.2e %s\n",
                    path == lc::KernelPath::Mma ? "mma" : "hopper", c.B, c.H, c.N, c.D, c.fp16 ? "fp16" : "bf16",
                    c.bnhd ? "BNHD" : "BHND", c.full ? "full" : "sparse", e, e <= tol ? "ok" : "FAIL");
      }
    }
    std::printf("\n| N | mask | kept | mma ms | hopper ms | hopper TFLOP/s | hopper / mma |\n|---|---|---|---|---|---|---|\n");
    for (int n : {32760, 98280}) {
      for (double keep : {1.0, 0.1}) {
        const Case c{1, 12, n, 128, false, true, keep >= 1.0, true, keep};
        float t_mma = 0, t_hop = 0;
        const int reps = n < 50000 ? 15 : 5;
        const double kept = run_case<__nv_bfloat16>(c, lc::KernelPath::Mma, &t_mma, reps);
        if (hopper) run_case<__nv_bfloat16>(c, lc::KernelPath::Hopper, &t_hop, reps);
        const double flops = 4.0 * 12 * double(n) * n * 128 * kept;
        std::printf("| %d | %s | %.3f | %.3f | %.3f | %.0f | %.2f |\n", n, keep >= 1 ? "full" : "random", kept, t_mma,
                    t_hop, t_hop > 0 ? flops / (t_hop * 1e9) : 0.0, t_hop > 0 ? t_mma / t_hop : 0.0);
      }
    }
    std::printf("%s\n", ok ? "ALL CHECKS PASSED" : "SOME CHECKS FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernel_probe: %s\n", e.what());
    return 2;
  }
}

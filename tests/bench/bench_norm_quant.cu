// The DiT block's memory-bound row kernels alone, with no LibTorch (issue 22): the fused
// LayerNorm + modulate in its two forms (one warp per row / one CTA per row) and the FP8 activation
// quantisation in its two forms (rows in registers / read twice), at Wan2.1-1.3B's shapes
// (32,760 tokens, dim 1536, FFN hidden 8960). Each pair is timed side by side in one run and
// checked: the LayerNorm forms against a double-precision host reference on sampled rows and
// against each other, the quantisation forms bit for bit. Exit status 1 when a check fails.
//
//   nvcc -std=c++17 -O3 -arch=sm_90a -I. tests/bench/bench_norm_quant.cu engine/model/cuda/fused_ops.cu \
//        engine/model/cuda/fp8_quant.cu -o bench_norm_quant && ./bench_norm_quant [rows]
// (or the CMake target bench_norm_quant in a CUDA build).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "engine/model/cuda/fp8_quant.h"
#include "engine/model/cuda/fused_ops.h"

namespace {

int failures = 0;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

void expect(bool ok, const char* what, double value) {
  std::printf("  %-58s %.3e %s\n", what, value, ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

// Mean GPU ms of `reps` launches after 3 warm-ups (CUDA events around the whole loop).
double time_ms(const std::function<void()>& launch, int reps = 20) {
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  check(cudaEventRecord(a), "record");
  for (int i = 0; i < reps; ++i) launch();
  check(cudaEventRecord(b), "record");
  check(cudaEventSynchronize(b), "sync");
  float ms = 0.f;
  check(cudaEventElapsedTime(&ms, a, b), "elapsed");
  check(cudaGetLastError(), "launch");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / reps;
}

float bf(const __nv_bfloat16& v) { return __bfloat162float(v); }

template <typename T>
T* device_copy(const std::vector<T>& h) {
  T* d = nullptr;
  check(cudaMalloc(&d, h.size() * sizeof(T)), "malloc");
  check(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "copy");
  return d;
}

template <typename T>
std::vector<T> host_copy(const T* d, size_t n) {
  std::vector<T> h(n);
  check(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), "copy back");
  return h;
}

void layernorm_pair(int64_t rows, int C, bool x16) {
  std::printf("LayerNorm + modulate, %lld x %d, %s stream -> bf16\n", static_cast<long long>(rows), C,
              x16 ? "bf16" : "fp32");
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.3f, 2.f);
  std::vector<float> xf(static_cast<size_t>(rows) * C), shift(C), scale(C);
  for (auto& v : xf) v = nd(rng);
  for (int c = 0; c < C; ++c) shift[c] = 0.1f * nd(rng), scale[c] = 0.15f * nd(rng);
  std::vector<__nv_bfloat16> xb(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) xb[i] = __float2bfloat16(xf[i]), xf[i] = x16 ? bf(xb[i]) : xf[i];
  const void* x = x16 ? static_cast<const void*>(device_copy(xb)) : static_cast<const void*>(device_copy(xf));
  float* d_shift = device_copy(shift);
  float* d_scale = device_copy(scale);
  __nv_bfloat16* out[2];
  for (auto& o : out) check(cudaMalloc(&o, xf.size() * sizeof(__nv_bfloat16)), "malloc");
  double ms[2];
  for (int warp = 0; warp < 2; ++warp)
    ms[warp] = time_ms([&] {
      longshot::model::cuda::layernorm_modulate(x, x16, d_shift, d_scale, false, rows, C, rows, 1e-6f, out[warp],
                                                nullptr, warp == 1);
    });
  const double bytes = static_cast<double>(rows) * C * ((x16 ? 2 : 4) + 2);
  for (int warp = 0; warp < 2; ++warp)
    std::printf("  %-14s %8.4f ms  %6.2f TB/s\n", warp ? "warp per row" : "CTA per row", ms[warp],
                bytes / (ms[warp] * 1e-3) / 1e12);
  std::printf("  speedup %.2fx\n", ms[0] / ms[1]);
  const auto o0 = host_copy(out[0], xf.size()), o1 = host_copy(out[1], xf.size());
  // Reference in double on 256 rows spread over the tensor (the last row included).
  double err[2] = {0, 0}, ref_norm = 0;
  for (int k = 0; k < 256; ++k) {
    const int64_t r = k == 255 ? rows - 1 : (static_cast<int64_t>(k) * 7919) % rows;
    const float* row = xf.data() + r * C;
    double mean = 0, var = 0;
    for (int c = 0; c < C; ++c) mean += row[c];
    mean /= C;
    for (int c = 0; c < C; ++c) var += (row[c] - mean) * (row[c] - mean);
    const double inv = 1.0 / std::sqrt(var / C + 1e-6);
    for (int c = 0; c < C; ++c) {
      const double want = (row[c] - mean) * inv * (1.0 + scale[c]) + shift[c];
      ref_norm += want * want;
      for (int w = 0; w < 2; ++w) {
        const double d = bf((w ? o1 : o0)[r * C + c]) - want;
        err[w] += d * d;
      }
    }
  }
  double diff = 0, norm1 = 0;
  for (size_t i = 0; i < o0.size(); ++i) {
    const double d = bf(o1[i]) - bf(o0[i]);
    diff += d * d, norm1 += bf(o0[i]) * static_cast<double>(bf(o0[i]));
  }
  // bf16 output: one rounding (2^-9 relative) gives rel-L2 ≈ 2.3e-3; a wrong row or column gives ~1.
  expect(std::sqrt(err[0] / ref_norm) < 5e-3, "CTA per row vs double reference (rel-L2)", std::sqrt(err[0] / ref_norm));
  expect(std::sqrt(err[1] / ref_norm) < 5e-3, "warp per row vs double reference (rel-L2)", std::sqrt(err[1] / ref_norm));
  expect(std::sqrt(diff / norm1) < 1e-3, "warp per row vs CTA per row (rel-L2, all rows)", std::sqrt(diff / norm1));
  cudaFree(const_cast<void*>(x));
  cudaFree(d_shift);
  cudaFree(d_scale);
  for (auto& o : out) cudaFree(o);
}

void quant_pair(int64_t rows, int K, bool gelu) {
  std::printf("FP8 row quantisation, %lld x %d bf16%s -> e4m3\n", static_cast<long long>(rows), K,
              gelu ? ", GELU(tanh) first" : "");
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 1.5f);
  std::vector<__nv_bfloat16> xb(static_cast<size_t>(rows) * K);
  for (auto& v : xb) v = __float2bfloat16(nd(rng));
  const __nv_bfloat16* x = device_copy(xb);
  uint8_t* out[2];
  float* sc[2];
  for (int i = 0; i < 2; ++i) {
    check(cudaMalloc(&out[i], xb.size()), "malloc");
    check(cudaMalloc(&sc[i], rows * sizeof(float)), "malloc");
  }
  double ms[2];
  for (int regs = 0; regs < 2; ++regs)
    ms[regs] = time_ms([&] {
      longshot::model::cuda::quantize_rows_e4m3(x, false, rows, K, K, gelu, out[regs], sc[regs], nullptr, regs == 1);
    });
  const double bytes = static_cast<double>(rows) * K * 3;  // read bf16 once, write e4m3
  for (int regs = 0; regs < 2; ++regs)
    std::printf("  %-18s %8.4f ms  %6.2f TB/s (of one read + one write)\n", regs ? "rows in registers" : "read twice",
                ms[regs], bytes / (ms[regs] * 1e-3) / 1e12);
  std::printf("  speedup %.2fx\n", ms[0] / ms[1]);
  const auto b0 = host_copy(out[0], xb.size()), b1 = host_copy(out[1], xb.size());
  const auto s0 = host_copy(sc[0], rows), s1 = host_copy(sc[1], rows);
  size_t differ = 0;
  for (size_t i = 0; i < b0.size(); ++i) differ += b0[i] != b1[i];
  expect(differ == 0, "bytes that differ between the two forms", static_cast<double>(differ));
  expect(std::memcmp(s0.data(), s1.data(), rows * sizeof(float)) == 0, "scales equal (1 = yes)",
         std::memcmp(s0.data(), s1.data(), rows * sizeof(float)) == 0 ? 1.0 : 0.0);
  // The scale is the row's amax / 448, of GELU(tanh)(x) where asked (host, double).
  double worst = 0;
  for (int64_t r = 0; r < rows; r += rows / 64 + 1) {
    double amax = 0;
    for (int k = 0; k < K; ++k) {
      double v = bf(xb[r * K + k]);
      if (gelu) v = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      amax = std::fmax(amax, std::fabs(v));
    }
    worst = std::fmax(worst, std::fabs(s1[r] - amax / 448) / (amax / 448));
  }
  expect(worst < 1e-5, "scale vs host amax / 448 (worst relative error)", worst);
  cudaFree(const_cast<__nv_bfloat16*>(x));
  for (int i = 0; i < 2; ++i) cudaFree(out[i]), cudaFree(sc[i]);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 32760;
  if (rows <= 0) {
    std::fprintf(stderr, "bench_norm_quant: rows must be positive, got %s\n", argv[1]);
    return 2;
  }
  int dev = 0;
  cudaDeviceProp prop{};
  check(cudaGetDevice(&dev), "device");
  check(cudaGetDeviceProperties(&prop, dev), "properties");
  std::printf("bench_norm_quant on %s, %lld rows\n", prop.name, static_cast<long long>(rows));
  layernorm_pair(rows, 1536, true);
  layernorm_pair(rows, 1536, false);
  quant_pair(rows, 8960, true);
  quant_pair(rows, 1536, false);
  std::printf("%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
  return failures ? 1 : 0;
}

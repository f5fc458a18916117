// Synthetic Q/K/V with spatiotemporal energy decay.
//
// Construction (per head h, token i at grid position (t, y, x)):
//   p_i  = (t / temporal_length, y / spatial_length, x / spatial_length)
//   φ(p) = [cos(ω_m·p + θ_m), sin(ω_m·p + θ_m)]_{m<M} / √M   with ω_m ~ N(0, I₃/s_h²), θ_m ~ U(0, 2π)
// so φ(p_i)·φ(p_j) = (1/M) Σ_m cos(ω_m·(p_i − p_j)) ≈ exp(−|p_i − p_j|² / (2 s_h²)): random
// Fourier features of a Gaussian kernel. With q_i = k_i = √(β_h √D) φ(p_i) (+ small noise) the
// softmax logit q_i·k_j/√D ≈ β_h · exp(−|Δp|²/2s_h²): attention mass decays with 3D distance.
// Heads differ in reach s_h ∈ [0.7, 1.4] and sharpness β_h ∈ [0.6, 1.4]·sharpness (+ ln(N/2048)
// when N > 2048, so the far keys' growing count does not wash out locality on large grids).
// Motion links: the last L = min(8, D/4) dims carry `motion_links` long-range pairs per head: a
// 3×3×3 query patch around a random token i and a key patch around a far token j share a random
// unit vector u, adding 1.2·β_h to their logits, so i's queries attend strongly to j's region.
// Everything is drawn from one seeded generator: same spec → same tensors.
#include "engine/attention/synthetic.h"

#include <cmath>
#include <random>

#include "engine/common/error.h"

namespace longshot::attention {

QKV make_synthetic_qkv(const SyntheticSpec& spec) {
  const TokenGrid& g = spec.grid;
  if (g.t <= 0 || g.h <= 0 || g.w <= 0) throw ParameterError("grid", "every size must be positive, got " + g.to_string());
  if (spec.heads <= 0) throw ParameterError("heads", "must be positive, got " + std::to_string(spec.heads));
  if (spec.head_dim < 8) throw ParameterError("head_dim", "must be at least 8, got " + std::to_string(spec.head_dim));
  if (!(spec.spatial_length > 0)) throw ParameterError("spatial_length", "must be positive");
  if (!(spec.temporal_length > 0)) throw ParameterError("temporal_length", "must be positive");
  if (spec.motion_links < 0) throw ParameterError("motion_links", "must be non-negative");
  if (!(spec.sharpness > 0)) throw ParameterError("sharpness", "must be positive");
  torch::NoGradGuard no_grad;

  const int64_t H = spec.heads, D = spec.head_dim, N = g.size();
  const int64_t L = std::min<int64_t>(8, D / 4);
  const int64_t M = (D - L) / 2;
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto gen = at::detail::createCPUGenerator(spec.seed ^ 0x9e3779b97f4a7c15ULL);

  // Token positions in kernel units, [N, 3].
  auto pos = torch::empty({N, 3}, torch::kFloat64);
  {
    auto a = pos.accessor<double, 2>();
    for (int64_t i = 0; i < N; ++i) {
      int64_t t, y, x;
      g.coords(i, t, y, x);
      a[i][0] = static_cast<double>(t) / spec.temporal_length;
      a[i][1] = static_cast<double>(y) / spec.spatial_length;
      a[i][2] = static_cast<double>(x) / spec.spatial_length;
    }
  }

  auto q = torch::empty({1, H, N, D}, torch::kFloat32);
  auto k = torch::empty({1, H, N, D}, torch::kFloat32);
  for (int64_t h = 0; h < H; ++h) {
    const double reach = 0.7 + 0.7 * uniform(rng);
    // + ln(N / 2048): a query's far keys grow with N; the shift keeps the local share of the mass
    // about the same on larger grids (no change at the default 8x16x16).
    const double beta = spec.sharpness * (0.6 + 0.8 * uniform(rng)) +
                        std::max(0.0, std::log(static_cast<double>(N) / 2048.0));
    auto omega = torch::empty({3, M}, torch::kFloat64);
    auto theta = torch::empty({M}, torch::kFloat64);
    {
      auto oa = omega.accessor<double, 2>();
      auto ta = theta.accessor<double, 1>();
      for (int64_t m = 0; m < M; ++m) {
        for (int c = 0; c < 3; ++c) oa[c][m] = normal(rng) / reach;
        ta[m] = 2.0 * M_PI * uniform(rng);
      }
    }
    auto phase = torch::matmul(pos, omega) + theta;                                        // [N, M]
    auto feat = torch::cat({torch::cos(phase), torch::sin(phase)}, 1) / std::sqrt(double(M));  // [N, 2M]
    const double amp = std::sqrt(beta * std::sqrt(static_cast<double>(D)));
    auto base = torch::zeros({N, D}, torch::kFloat64);
    base.narrow(1, 0, 2 * M).copy_(feat * amp);
    auto qh = base.clone(), kh = base.clone();

    // Motion links in the last L dims.
    const double link_amp = std::sqrt(1.2 * beta * std::sqrt(static_cast<double>(D)));
    auto qa = qh.accessor<double, 2>(), ka = kh.accessor<double, 2>();
    std::uniform_int_distribution<int64_t> pick(0, N - 1);
    for (int64_t l = 0; l < spec.motion_links && L > 0; ++l) {
      std::vector<double> u(static_cast<size_t>(L));
      double norm = 0.0;
      for (auto& e : u) {
        e = normal(rng);
        norm += e * e;
      }
      norm = std::sqrt(norm);
      const int64_t src = pick(rng);
      int64_t dst = pick(rng);
      // Far target: prefer one at least half the grid's extent away (a few tries, then any).
      int64_t st, sy, sx, dt, dy, dx;
      g.coords(src, st, sy, sx);
      for (int tries = 0; tries < 32; ++tries) {
        g.coords(dst, dt, dy, dx);
        const double far = std::abs(double(dt - st)) / std::max<int64_t>(1, g.t) +
                           std::abs(double(dy - sy)) / std::max<int64_t>(1, g.h) +
                           std::abs(double(dx - sx)) / std::max<int64_t>(1, g.w);
        if (far >= 0.5) break;
        dst = pick(rng);
      }
      g.coords(dst, dt, dy, dx);
      auto paint = [&](at::TensorAccessor<double, 2>& acc, int64_t ct, int64_t cy, int64_t cx) {
        for (int64_t t = std::max<int64_t>(0, ct - 1); t <= std::min(g.t - 1, ct + 1); ++t)
          for (int64_t y = std::max<int64_t>(0, cy - 1); y <= std::min(g.h - 1, cy + 1); ++y)
            for (int64_t x = std::max<int64_t>(0, cx - 1); x <= std::min(g.w - 1, cx + 1); ++x)
              for (int64_t d = 0; d < L; ++d) acc[g.index(t, y, x)][D - L + d] += link_amp * u[size_t(d)] / norm;
      };
      paint(qa, st, sy, sx);
      paint(ka, dt, dy, dx);
    }
    q[0][h].copy_(qh.to(torch::kFloat32));
    k[0][h].copy_(kh.to(torch::kFloat32));
  }
  // Content noise: keeps logits from being an exact function of position.
  q.add_(torch::randn({1, H, N, D}, gen, torch::kFloat32).mul_(0.3));
  k.add_(torch::randn({1, H, N, D}, gen, torch::kFloat32).mul_(0.3));
  auto v = torch::randn({1, H, N, D}, gen, torch::kFloat32);
  return QKV{q, k, v};
}

}  // namespace longshot::attention

// The multistep samplers on x0 = x − σ·v, with α = 1 − σ and λ = log(α/σ), h = λ_next − λ_now:
//   UniPC bh2 (Wan's FlowUniPCMultistepScheduler, diffusers' UniPCMultistepScheduler with flow σ)
//   DPM-Solver++ 2M midpoint (Wan's FlowDPMSolverMultistepScheduler, diffusers' flow variant).
// Formulas: docs/sampling.md. Sections: [scalars] · [unipc] · [dpm++2m]
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "engine/common/error.h"
#include "engine/sampler/flow_matching.h"

namespace longshot::sampler {

// ---- [scalars] ----------------------------------------------------------------------------------
// The references compute every coefficient on float32 0-d tensors. h is a difference of two λ of
// up to ~10 in size, so float32 rounding there moves x by ~1e-6 per step; doing the same float32
// arithmetic through the same LibTorch kernels keeps our samples on theirs instead of on the
// (slightly different) exact values.

namespace {

float f32_log(float v) { return torch::log(torch::scalar_tensor(v, torch::kFloat)).item<float>(); }
float f32_exp(float v) { return torch::exp(torch::scalar_tensor(v, torch::kFloat)).item<float>(); }
float f32_expm1(float v) { return torch::expm1(torch::scalar_tensor(v, torch::kFloat)).item<float>(); }

// λ(σ) = log(1 − σ) − log(σ): −∞ at σ = 1, +∞ at σ = 0 (both handled: the steps that meet them
// are first order, whose coefficients stay finite).
float lambda_of(float sigma) { return f32_log(1.0f - sigma) - f32_log(sigma); }

// The UniC weights ρ for order 2: solve [[1, 1], [r, 1]]·ρ = b (LibTorch's solver, as the
// references), b_1 = (φ/hh − 1)/B_h, b_2 = 2·((φ/hh − 1)/hh − 1/2)/B_h with φ = expm1(hh).
std::array<float, 2> unic_rhos(float r, float hh, float h_phi_1, float b_h) {
  float h_phi_k = h_phi_1 / hh - 1.0f;
  const float b1 = h_phi_k * 1.0f / b_h;
  h_phi_k = h_phi_k / hh - 0.5f;
  const float b2 = h_phi_k * 2.0f / b_h;
  const auto R = torch::tensor({1.0f, 1.0f, r, 1.0f}).reshape({2, 2});
  const auto b = torch::tensor({b1, b2});
  const auto rho = torch::linalg_solve(R, b).contiguous();
  return {rho[0].item<float>(), rho[1].item<float>()};
}

void check_shapes(const char* who, const torch::Tensor& x, const torch::Tensor& velocity, const torch::Tensor& history) {
  if (!x.defined() || !velocity.defined()) throw ShapeError(std::string(who) + " step: the sample or the velocity is empty");
  if (velocity.sizes() != x.sizes())
    throw ShapeError(std::string(who) + " step: velocity shape " + c10::str(velocity.sizes()) + " differs from the sample's " +
                     c10::str(x.sizes()));
  if (history.defined() && history.sizes() != x.sizes())
    throw ShapeError(std::string(who) + " step: sample shape " + c10::str(x.sizes()) + " differs from the previous step's " +
                     c10::str(history.sizes()) + " (step 0 starts a new run)");
}

void check_order(const char* who, int step, int expected) {
  if (step != expected)
    throw ParameterError("step", std::string(who) + " keeps a history, so steps run in order: expected step " +
                                     std::to_string(expected) + ", got " + std::to_string(step) + " (step 0 starts again)");
}

}  // namespace

// ---- [unipc] ------------------------------------------------------------------------------------

FlowUniPC::FlowUniPC(int steps, double shift, Grid grid) : Sampler(make_schedule("unipc", steps, shift, grid)) {}

void FlowUniPC::reset() {
  next_ = 0;
  last_order_ = 0;
  last_sample_ = m_prev_ = m_prev2_ = torch::Tensor();
}

torch::Tensor FlowUniPC::step(const torch::Tensor& x, const torch::Tensor& velocity, int i) {
  check_step(i);
  if (i == 0) reset();
  check_order("unipc", i, next_);
  check_shapes("unipc", x, velocity, m_prev_);
  const float s_i = float(sigma(i));
  const float lambda_i = lambda_of(s_i);
  const torch::Tensor m = x - double(s_i) * velocity.to(x.scalar_type());

  // UniC: x_i was predicted from last_sample_ = x_{i−1}; with m_i it is recomputed at order p + 1.
  torch::Tensor sample = x;
  if (i > 0) {
    const float s_prev = float(sigma(i - 1)), a_i = 1.0f - s_i;
    const float h = lambda_i - lambda_of(s_prev), hh = -h;
    const float h_phi_1 = f32_expm1(hh), b_h = f32_expm1(hh);
    const torch::Tensor& m0 = m_prev_;
    const torch::Tensor base = double(s_i / s_prev) * last_sample_ - double(a_i * h_phi_1) * m0;
    const torch::Tensor d1_t = m - m0;
    if (last_order_ == 1) {
      sample = base - double(a_i * b_h) * (0.5 * d1_t);
    } else {
      const float r = (lambda_of(float(sigma(i - 2))) - lambda_of(s_prev)) / h;
      const torch::Tensor d1 = (m_prev2_ - m0) / double(r);
      const auto rho = unic_rhos(r, hh, h_phi_1, b_h);
      sample = base - double(a_i * b_h) * (double(rho[0]) * d1 + double(rho[1]) * d1_t);
    }
  }

  m_prev2_ = m_prev_;
  m_prev_ = m;
  // Order 2 once a previous output exists, 1 on the last step (lower_order_final).
  const int order = std::min({2, num_steps() - i, i + 1});
  last_order_ = order;
  last_sample_ = sample;
  next_ = i + 1;

  // UniP: x_{i+1} = (σ_{i+1}/σ_i)·x − α_{i+1}·expm1(−h)·m_i − α_{i+1}·B_h·½·D1, D1 = (m_{i−1} − m_i)/r.
  const float s_next = float(sigma(i + 1)), a_next = 1.0f - s_next;
  const float h = lambda_of(s_next) - lambda_i, hh = -h;
  const float h_phi_1 = f32_expm1(hh), b_h = f32_expm1(hh);
  torch::Tensor out = double(s_next / s_i) * sample - double(a_next * h_phi_1) * m;
  if (order == 2) {
    const float r = (lambda_of(float(sigma(i - 1))) - lambda_i) / h;
    const torch::Tensor d1 = (m_prev2_ - m) / double(r);
    out = out - double(a_next * b_h) * (0.5 * d1);
  }
  return out;
}

// ---- [dpm++2m] ----------------------------------------------------------------------------------

FlowDPMSolver2M::FlowDPMSolver2M(int steps, double shift, Grid grid)
    : Sampler(make_schedule("dpm++2m", steps, shift, grid)) {}

void FlowDPMSolver2M::reset() {
  next_ = 0;
  m_prev_ = torch::Tensor();
}

torch::Tensor FlowDPMSolver2M::step(const torch::Tensor& x, const torch::Tensor& velocity, int i) {
  check_step(i);
  if (i == 0) reset();
  check_order("dpm++2m", i, next_);
  check_shapes("dpm++2m", x, velocity, m_prev_);
  const float s_i = float(sigma(i)), s_next = float(sigma(i + 1)), a_next = 1.0f - s_next;
  const torch::Tensor m = x - double(s_i) * velocity.to(x.scalar_type());
  const float lambda_i = lambda_of(s_i);
  const float h = lambda_of(s_next) - lambda_i;
  const float c = a_next * (f32_exp(-h) - 1.0f);
  torch::Tensor out;
  // First order on the first step (no history) and on the last (σ_n = 0: final_sigmas_type zero).
  if (i == 0 || i == num_steps() - 1) {
    out = double(s_next / s_i) * x - double(c) * m;
  } else {
    const float h0 = lambda_i - lambda_of(float(sigma(i - 1)));
    const float r0 = h0 / h;
    const torch::Tensor d1 = double(1.0f / r0) * (m - m_prev_);
    out = double(s_next / s_i) * x - double(c) * m - double(0.5f * c) * d1;
  }
  m_prev_ = m;
  next_ = i + 1;
  return out;
}

}  // namespace longshot::sampler

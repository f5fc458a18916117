// The samplers' properties: schedules against hand-computed reference values, first-order steps
// equal to Euler, exact integration of a straight flow, convergence order on a Gaussian's exact
// flow, history rules and errors. The step-by-step parity with diffusers is test_scheduler_goldens.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/common/error.h"
#include "engine/sampler/flow_matching.h"

using namespace longshot;
using namespace longshot::sampler;

namespace {

double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// Data x0 ~ N(mu, s²) per element, x_σ = (1 − σ)·x0 + σ·ε. The exact velocity E[ε − x0 | x_σ] is
// linear in x and the exact flow is x_σ = (1 − σ)·mu + sqrt(V(σ))·z, V = (1 − σ)²s² + σ²: a curved
// field with a known solution, so a sampler's global error (and its order) can be measured.
struct GaussianFlow {
  double mu = 0.7, s = 2.0;
  double root_v(double sigma) const { return std::sqrt((1 - sigma) * (1 - sigma) * s * s + sigma * sigma); }
  torch::Tensor velocity(const torch::Tensor& x, double sigma) const {
    const double a = 1.0 - sigma, var = root_v(sigma) * root_v(sigma);
    const auto centred = x - a * mu;
    return (sigma / var) * centred - (mu + (a * s * s / var) * centred);
  }
  torch::Tensor at(const torch::Tensor& z, double sigma) const { return (1 - sigma) * mu + root_v(sigma) * z; }
};

// Mean error at σ = 0 after integrating the exact flow from its point at σ_0.
double flow_error(const std::string& name, int steps, Grid grid) {
  torch::manual_seed(11);
  const auto z = torch::randn({4, 64}, torch::kDouble);
  const GaussianFlow f;
  auto smp = make_sampler(name, steps, 1.0, grid);
  auto x = f.at(z, smp->sigma(0));
  for (int i = 0; i < smp->num_steps(); ++i) x = smp->step(x, f.velocity(x, smp->sigma(i)), i);
  return (x - f.at(z, 0.0)).abs().mean().item<double>();
}

}  // namespace

TEST(Samplers, DiffusersUniPCGrid) {
  // UniPCMultistepScheduler(use_flow_sigmas, flow_shift=5), 4 steps: σ from linspace(1, 1e-3, 5)
  // shifted, the first 1 − 1e-6; timesteps ⌊1000σ⌋.
  FlowUniPC s(4, 5.0);
  EXPECT_EQ(s.grid(), Grid::Diffusers);
  EXPECT_EQ(s.timesteps(), (std::vector<double>{999, 937, 833, 625}));
  ASSERT_EQ(s.sigmas().size(), 5u);
  EXPECT_DOUBLE_EQ(s.sigma(0), double(float(1.0 - 1e-6)));
  EXPECT_NEAR(s.sigma(1), 5 * 0.75025 / (1 + 4 * 0.75025), 1e-7);
  EXPECT_NEAR(s.sigma(3), 5 * 0.25075 / (1 + 4 * 0.25075), 1e-7);
  EXPECT_EQ(s.sigma(4), 0.0);
  for (double v : s.sigmas()) EXPECT_EQ(v, double(float(v))) << "σ is stored as float32, as the references do";
}

TEST(Samplers, WanUniPCGrid) {
  // Wan's FlowUniPCMultistepScheduler: linspace(0.999, 0, 5)[:-1], shifted: 624 where diffusers has 625.
  FlowUniPC s(4, 5.0, Grid::Wan);
  EXPECT_EQ(s.timesteps(), (std::vector<double>{999, 937, 833, 624}));
  EXPECT_NEAR(s.sigma(0), 5 * 0.999 / (1 + 4 * 0.999), 1e-7);
  EXPECT_EQ(s.sigma(4), 0.0);
  // 50 steps, shift 5: the last non-zero σ differs between the two grids (research notes §4.1).
  EXPECT_NEAR(FlowUniPC(50, 5.0, Grid::Wan).sigma(49), 0.0925, 5e-4);
  EXPECT_NEAR(FlowUniPC(50, 5.0, Grid::Diffusers).sigma(49), 0.0968, 5e-4);
}

TEST(Samplers, DpmAndEulerGrids) {
  // DPMSolverMultistepScheduler(use_flow_sigmas): shift(0.999·(1 − i/n)), then 0.
  FlowDPMSolver2M d(5, 3.0);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(d.sigma(i), shift_sigma(0.999 * (1.0 - i / 5.0), 3.0), 1e-7) << i;
  EXPECT_EQ(d.timestep(0), std::trunc(1000 * shift_sigma(0.999, 3.0)));
  // Wan's dpm++: get_sampling_sigmas, which starts at σ = 1 (timestep 1000).
  FlowDPMSolver2M dw(5, 3.0, Grid::Wan);
  EXPECT_EQ(dw.sigma(0), 1.0);
  EXPECT_EQ(dw.timestep(0), 1000.0);
  EXPECT_EQ(dw.sigma(5), 0.0);
  // Euler, Wan grid: the float64 σ_i = shift(1 − i/n) Longshot has always used, timesteps 1000σ.
  FlowMatchEuler e(10, 3.0);
  for (int i = 0; i <= 10; ++i) EXPECT_EQ(e.sigma(i), shift_sigma(1.0 - double(i) / 10, 3.0));
  EXPECT_EQ(e.timestep(4), e.sigma(4) * 1000);
  // Euler, diffusers grid: shift 1 is linspace(1, 1e-3, n) then 0; timesteps float32 σ·1000.
  FlowMatchEuler e1(4, 1.0, Grid::Diffusers);
  EXPECT_NEAR(e1.sigma(0), 1.0, 0);
  EXPECT_NEAR(e1.sigma(1), 0.667, 1e-7);
  EXPECT_NEAR(e1.sigma(3), 0.001, 1e-9);
  EXPECT_EQ(e1.sigma(4), 0.0);
  EXPECT_EQ(e1.timestep(1), double(float(e1.sigma(1)) * 1000.0f));
  // With a shift, FlowMatchEulerDiscreteScheduler shifts its σ_min twice.
  FlowMatchEuler e5(4, 5.0, Grid::Diffusers);
  EXPECT_NEAR(e5.sigma(3), shift_sigma(shift_sigma(0.001, 5.0), 5.0), 1e-7);
  for (auto* s : std::initializer_list<const Sampler*>{&d, &dw, &e, &e1, &e5})
    for (size_t i = 0; i + 1 < s->sigmas().size(); ++i) EXPECT_GT(s->sigmas()[i], s->sigmas()[i + 1]) << s->name();
}

TEST(Samplers, FirstOrderStepsAreEuler) {
  // A first-order step on x0 = x − σv (DDIM) is algebraically x + (σ_next − σ)·v: UniPC and DPM++
  // on their first step, and on their last one (to σ = 0, which returns x0 itself).
  torch::manual_seed(3);
  const auto x = torch::randn({2, 3, 8}, torch::kDouble), v = torch::randn({2, 3, 8}, torch::kDouble);
  for (const std::string name : {"unipc", "dpm++2m"}) {
    for (Grid g : {Grid::Wan, Grid::Diffusers}) {
      auto s = make_sampler(name, 6, 5.0, g);
      const auto euler = x + (s->sigma(1) - s->sigma(0)) * v;
      EXPECT_LT(max_rel(s->step(x, v, 0), euler), 2e-6) << name << " " << grid_name(g);
    }
    auto one = make_sampler(name, 1, 5.0);
    EXPECT_LT(max_rel(one->step(x, v, 0), x - one->sigma(0) * v), 1e-6) << name;
  }
}

TEST(Samplers, StraightFlowIsExact) {
  // With the velocity ε − x0 of a single data point every x0 prediction is x0, all history
  // differences vanish and each step lands on the line: every sampler ends at x0.
  const auto x0 = torch::randn({2, 3, 5}, torch::kDouble), eps = torch::randn({2, 3, 5}, torch::kDouble);
  for (const auto& name : sampler_names()) {
    for (Grid g : {Grid::Wan, Grid::Diffusers}) {
      auto s = make_sampler(name, 7, 3.0, g);
      auto x = (1 - s->sigma(0)) * x0 + s->sigma(0) * eps;  // on the line at σ_0 (which is < 1 on most grids)
      for (int i = 0; i < s->num_steps(); ++i) {
        EXPECT_LT((s->predict_x0(x, eps - x0, i) - x0).abs().max().item<double>(), 1e-5) << name << " step " << i;
        x = s->step(x, eps - x0, i);
      }
      EXPECT_LT((x - x0).abs().max().item<double>(), 1e-5) << name << " " << grid_name(g);
    }
  }
}

TEST(Samplers, SecondOrderOnACurvedFlow) {
  // On the Gaussian's exact flow, halving the step size halves Euler's error and cuts the
  // multistep samplers' by > 2.8× (order 2; UniPC's corrector gives it more, ~4.5×); at 40 steps
  // they are > 5× nearer than Euler. A wrong predictor or corrector coefficient breaks this.
  for (Grid g : {Grid::Wan, Grid::Diffusers}) {
    const double e20 = flow_error("euler", 20, g), e40 = flow_error("euler", 40, g), e80 = flow_error("euler", 80, g);
    EXPECT_NEAR(e20 / e40, 2.0, 0.2) << grid_name(g);
    EXPECT_NEAR(e40 / e80, 2.0, 0.2) << grid_name(g);
    for (const std::string name : {"unipc", "dpm++2m"}) {
      const double m20 = flow_error(name, 20, g), m40 = flow_error(name, 40, g), m80 = flow_error(name, 80, g);
      EXPECT_GT(m20 / m40, 2.8) << name << " " << grid_name(g) << ": " << m20 << " → " << m40;
      EXPECT_GT(m40 / m80, 2.8) << name << " " << grid_name(g) << ": " << m40 << " → " << m80;
      EXPECT_LT(m40, e40 / 5) << name << " " << grid_name(g);
    }
    EXPECT_LT(flow_error("unipc", 40, g), flow_error("dpm++2m", 40, g) / 3) << grid_name(g);
  }
}

TEST(Samplers, HistoryRules) {
  const auto x = torch::randn({3, 4}), v = torch::randn({3, 4});
  for (const std::string name : {"unipc", "dpm++2m"}) {
    auto s = make_sampler(name, 5, 3.0);
    const auto a1 = s->step(x, v, 0), a2 = s->step(a1, v, 1);
    EXPECT_THROW(s->step(a2, v, 3), ParameterError) << name << ": a skipped step";
    // Step 0 starts again: the same inputs give the same outputs.
    EXPECT_TRUE(torch::equal(s->step(x, v, 0), a1));
    EXPECT_TRUE(torch::equal(s->step(a1, v, 1), a2));
    EXPECT_THROW(s->step(torch::randn({3, 5}), torch::randn({3, 5}), 2), ShapeError) << name;
    EXPECT_THROW(s->step(x, torch::randn({4, 3}), 0), ShapeError) << name;
    EXPECT_THROW(s->step(x, v, 5), ParameterError) << name << ": past the last step";
  }
}

TEST(Samplers, FactoryErrors) {
  EXPECT_EQ(std::string(make_sampler("unipc", 3, 1.0)->name()), "unipc");
  EXPECT_EQ(std::string(make_sampler("dpm++2m", 3, 1.0)->name()), "dpm++2m");
  EXPECT_EQ(make_sampler("euler", 3, 1.0)->grid(), Grid::Wan);
  try {
    make_sampler("ddim", 10, 3.0);
    FAIL() << "an unknown sampler was accepted";
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "sampler");
    EXPECT_NE(std::string(e.what()).find("unipc, euler, dpm++2m"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_sampler("unipc", 0, 3.0), ParameterError);
  EXPECT_THROW(make_sampler("dpm++2m", 10, -2.0), ParameterError);
  EXPECT_THROW(make_sampler("unipc", 10, std::nan("")), ParameterError);
  EXPECT_EQ(parse_grid("wan"), Grid::Wan);
  EXPECT_EQ(parse_grid("diffusers"), Grid::Diffusers);
  EXPECT_EQ(parse_grid("auto"), Grid::Auto);
  try {
    parse_grid("karras");
    FAIL() << "an unknown schedule was accepted";
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "schedule");
  }
}

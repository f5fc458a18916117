// Sections: [grids] · [interface and factory] · [euler] · [guidance and noise]. The multistep
// samplers (UniPC, DPM++ 2M) are in multistep.cpp.
#include "engine/sampler/flow_matching.h"

#include <cmath>
#include <iterator>

#include "engine/common/error.h"

namespace longshot::sampler {

// ---- [grids] ------------------------------------------------------------------------------------
// The references build their grids in float64 (numpy) and store σ as float32; the integer
// timesteps are float64 σ·1000 truncated. Each grid below follows its reference's arithmetic
// step by step, so that ⌊1000·σ⌋ falls on the same integer and the stored σ on the same float.

namespace {

constexpr int kTrainTimesteps = 1000;

double as_float32(double v) { return double(float(v)); }

// numpy.linspace(start, stop, num): start + i·step with step = (stop − start)/(num − 1), the last
// value exactly `stop`.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> y(size_t(num), start);
  if (num < 2) return y;
  const double step = (stop - start) / double(num - 1);
  for (int i = 0; i < num; ++i) y[size_t(i)] = double(i) * step + start;
  y.back() = stop;
  return y;
}

// σ (float64, n values) → stored float32 σ with 0 appended, and ⌊1000·σ⌋ from the float64 values.
Schedule truncated(const std::vector<double>& s) {
  Schedule out;
  for (double v : s) {
    out.sigmas.push_back(as_float32(v));
    out.timesteps.push_back(std::trunc(v * kTrainTimesteps));
  }
  out.sigmas.push_back(0.0);
  return out;
}

std::vector<double> shifted(std::vector<double> s, double shift) {
  for (double& v : s) v = shift_sigma(v, shift);
  return s;
}

// Longshot's Euler grid from the start, in float64: σ_i = shift(1 − i/n), timestep 1000·σ_i.
// Equal (up to float32 storage) to Wan's get_sampling_sigmas.
Schedule euler_wan(int n, double shift) {
  Schedule out;
  for (int i = 0; i <= n; ++i) out.sigmas.push_back(shift_sigma(1.0 - double(i) / n, shift));
  for (int i = 0; i < n; ++i) out.timesteps.push_back(out.sigmas[size_t(i)] * kTrainTimesteps);
  return out;
}

// FlowMatchEulerDiscreteScheduler(shift=s).set_timesteps(n). Its constructor shifts the training
// σ (float32) once; set_timesteps spaces from the shifted σ_max to the shifted σ_min and shifts
// again — so σ_min is shift(shift(1/1000)), not shift(1/1000). Timesteps are float32 σ·1000.
Schedule euler_diffusers(int n, double shift) {
  const auto shift32 = [shift](float s) {
    return float(shift) * s / (1.0f + float(shift - 1.0) * s);
  };
  const double sigma_max = shift32(float(kTrainTimesteps) / float(kTrainTimesteps));
  const double sigma_min = shift32(1.0f / float(kTrainTimesteps));
  Schedule out;
  for (double t : linspace(sigma_max * kTrainTimesteps, sigma_min * kTrainTimesteps, n)) {
    const float s = float(shift_sigma(t / kTrainTimesteps, shift));
    out.sigmas.push_back(s);
    out.timesteps.push_back(double(s * float(kTrainTimesteps)));
  }
  out.sigmas.push_back(0.0);
  return out;
}

// Wan's FlowUniPCMultistepScheduler(shift=1).set_timesteps(n, shift=s): σ_max is the float32 of
// 1 − 1/1000, σ_min 0; linspace(σ_max, 0, n+1) without its last value, shifted.
Schedule unipc_wan(int n, double shift) {
  const double sigma_max = as_float32(1.0 - 1.0 / kTrainTimesteps);
  auto s = linspace(sigma_max, 0.0, n + 1);
  s.pop_back();
  return truncated(shifted(s, shift));
}

// UniPCMultistepScheduler(use_flow_sigmas, flow_shift=s): linspace(1, 1/1000, n+1) without its
// last value, shifted; a first σ of 1 becomes 1 − 1e-6 (its log(α) = log(0) would be −∞).
Schedule unipc_diffusers(int n, double shift) {
  auto s = linspace(1.0, 1.0 / kTrainTimesteps, n + 1);
  s.pop_back();
  s = shifted(s, shift);
  if (std::fabs(s[0] - 1.0) < 1e-6) s[0] -= 1e-6;
  return truncated(s);
}

// Wan's dpm++ path: get_sampling_sigmas = shift(linspace(1, 0, n+1)[:n]) handed to
// FlowDPMSolverMultistepScheduler(shift=1), whose own shift is then the identity.
Schedule dpm_wan(int n, double shift) {
  auto s = linspace(1.0, 0.0, n + 1);
  s.pop_back();
  return truncated(shifted(s, shift));
}

// DPMSolverMultistepScheduler(use_flow_sigmas, flow_shift=s): σ = 1 − linspace(1, 1/1000, n+1),
// shifted, reversed, without the (zero) last value.
Schedule dpm_diffusers(int n, double shift) {
  const auto alphas = linspace(1.0, 1.0 / kTrainTimesteps, n + 1);
  std::vector<double> s;
  for (int i = n; i >= 1; --i) s.push_back(shift_sigma(1.0 - alphas[size_t(i)], shift));
  return truncated(s);
}

}  // namespace

double shift_sigma(double sigma, double shift) { return shift * sigma / (1.0 + (shift - 1.0) * sigma); }

namespace {
// The grid table: one name per Grid, parsed and printed from this one list.
struct GridEntry {
  Grid grid;
  const char* name;
};
constexpr GridEntry kGrids[] = {{Grid::Auto, "auto"}, {Grid::Wan, "wan"}, {Grid::Diffusers, "diffusers"}};
}  // namespace

Grid parse_grid(const std::string& name) {
  std::string known;
  const size_t n = std::size(kGrids);
  for (size_t i = 0; i < n; ++i) {
    if (name == kGrids[i].name) return kGrids[i].grid;
    known += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + kGrids[i].name;
  }
  throw ParameterError("schedule", "expected " + known + ", got '" + name + "'");
}

const char* grid_name(Grid grid) {
  for (const auto& g : kGrids)
    if (g.grid == grid) return g.name;
  return "auto";
}

// ---- [interface and factory] --------------------------------------------------------------------

namespace {
// The sampler table: an explicit list built on first use, the one place a sampler's name, its
// grids and its class meet (no static-init self-registration: a static library drops the object
// files nothing references). A new sampler adds one entry; sampler_names() lists them in this order.
struct SamplerEntry {
  std::string name;
  Grid auto_grid;  // what Grid::Auto resolves to
  Schedule (*wan)(int steps, double shift);
  Schedule (*diffusers)(int steps, double shift);
  std::unique_ptr<Sampler> (*make)(int steps, double shift, Grid grid);
};

template <class T>
std::unique_ptr<Sampler> construct(int steps, double shift, Grid grid) {
  return std::make_unique<T>(steps, shift, grid);
}

const std::vector<SamplerEntry>& sampler_table() {
  static const std::vector<SamplerEntry> table = {
      {"unipc", Grid::Diffusers, unipc_wan, unipc_diffusers, construct<FlowUniPC>},
      {"euler", Grid::Wan, euler_wan, euler_diffusers, construct<FlowMatchEuler>},
      {"dpm++2m", Grid::Diffusers, dpm_wan, dpm_diffusers, construct<FlowDPMSolver2M>},
  };
  return table;
}

const SamplerEntry& find_sampler(const std::string& name) {
  std::string known;
  for (const auto& e : sampler_table()) {
    if (e.name == name) return e;
    known += (known.empty() ? "" : ", ") + e.name;
  }
  throw ParameterError("sampler", "unknown sampler '" + name + "' (known: " + known + ")");
}
}  // namespace

Schedule make_schedule(const std::string& sampler, int steps, double shift, Grid grid) {
  const SamplerEntry& entry = find_sampler(sampler);
  if (steps < 1) throw ParameterError("steps", "must be at least 1, got " + std::to_string(steps));
  if (!(shift > 0) || !std::isfinite(shift)) throw ParameterError("shift", "must be positive, got " + std::to_string(shift));
  if (grid == Grid::Auto) grid = entry.auto_grid;
  Schedule s = grid == Grid::Wan ? entry.wan(steps, shift) : entry.diffusers(steps, shift);
  s.grid = grid;
  return s;
}

void Sampler::check_step(int i) const {
  if (i < 0 || i >= num_steps())
    throw ParameterError("step", "must be in [0, " + std::to_string(num_steps()) + "), got " + std::to_string(i));
}

torch::Tensor Sampler::predict_x0(const torch::Tensor& x, const torch::Tensor& velocity, int i) const {
  return x - sigma(i) * velocity.to(x.scalar_type());
}

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& e : sampler_table()) out.push_back(e.name);
    return out;
  }();
  return names;
}

std::unique_ptr<Sampler> make_sampler(const std::string& name, int steps, double shift, Grid grid) {
  return find_sampler(name).make(steps, shift, grid);
}

// ---- [euler] ------------------------------------------------------------------------------------

FlowMatchEuler::FlowMatchEuler(int steps, double shift, Grid grid) : Sampler(make_schedule("euler", steps, shift, grid)) {}

torch::Tensor FlowMatchEuler::step(const torch::Tensor& x, const torch::Tensor& velocity, int i) {
  check_step(i);
  if (velocity.sizes() != x.sizes()) throw ShapeError("euler step: velocity shape differs from the sample's");
  return x + (sigma(i + 1) - sigma(i)) * velocity.to(x.scalar_type());
}

// ---- [guidance and noise] -----------------------------------------------------------------------

torch::Tensor classifier_free_guidance(const torch::Tensor& cond, const torch::Tensor& uncond, double guidance) {
  if (!(guidance >= 0) || !std::isfinite(guidance))
    throw ParameterError("guidance", "must be a finite value >= 0, got " + std::to_string(guidance));
  return uncond + guidance * (cond - uncond);
}

torch::Tensor seeded_noise(const std::vector<int64_t>& shape, uint64_t seed, torch::Device device) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat)).to(device);
}

}  // namespace longshot::sampler

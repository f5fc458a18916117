// Flow-matching samplers (Wan's rectified flow): x_σ = (1 − σ)·x0 + σ·ε, the model predicts the
// velocity v = ε − x0. Euler, Wan's FlowUniPC and flow DPM++ 2M over a shifted σ grid, guidance,
// seeded noise. Sampler room: tensors only; knows neither the model nor the pipeline.
// Sections: [schedule] · [sampler interface] · [samplers] · [guidance and noise]   (docs/sampling.md)
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace longshot::sampler {

// ---- [schedule] ---------------------------------------------------------------------------------

// The time shift σ' = s·σ / (1 + (s − 1)·σ): s > 1 spends more steps at high noise.
double shift_sigma(double sigma, double shift);

// Which reference's σ grid a sampler walks (docs/sampling.md has the formulas):
//   Wan       — Wan2.1's own code: Euler and DPM++ on shift(linspace(1, 0, n+1)) (get_sampling_sigmas),
//               UniPC on shift(linspace(0.999, 0, n+1)[:-1]) then 0 (FlowUniPCMultistepScheduler).
//   Diffusers — diffusers' schedulers, the parity targets: UniPCMultistepScheduler(use_flow_sigmas),
//               DPMSolverMultistepScheduler(use_flow_sigmas), FlowMatchEulerDiscreteScheduler(shift).
//   Auto      — Wan for Euler (Longshot's grid from the start, which the built-in model was trained
//               and evaluated on), Diffusers for UniPC and DPM++.
enum class Grid { Auto, Wan, Diffusers };
// "auto" | "wan" | "diffusers"; ParameterError("schedule") otherwise.
Grid parse_grid(const std::string& name);
const char* grid_name(Grid grid);

struct Schedule {
  Grid grid = Grid::Wan;          // resolved: never Auto
  std::vector<double> sigmas;     // steps + 1 values, decreasing, the last 0
  std::vector<double> timesteps;  // steps values: what the model is given at each step
};
// The schedule `sampler` ("unipc", "euler", "dpm++2m") walks on `grid`. Throws ParameterError
// ("sampler") for an unknown name, ("steps") for steps < 1, ("shift") unless finite and > 0.
Schedule make_schedule(const std::string& sampler, int steps, double shift, Grid grid = Grid::Auto);

// ---- [sampler interface] ------------------------------------------------------------------------

// One sampler walks one schedule: σ_0 > … > σ_n = 0 and the timestep the model sees at each step.
// Call step(x_i, v_i, i) for i = 0, 1, …, n−1 in order; i = 0 starts a new run (multistep samplers
// keep their history between calls).
class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual const char* name() const = 0;
  Grid grid() const { return schedule_.grid; }  // resolved: never Auto

  int num_steps() const { return int(schedule_.timesteps.size()); }
  double sigma(int step) const { return schedule_.sigmas.at(size_t(step)); }  // step in [0, steps]
  double timestep(int step) const { return schedule_.timesteps.at(size_t(step)); }  // step in [0, steps)
  const std::vector<double>& sigmas() const { return schedule_.sigmas; }
  const std::vector<double>& timesteps() const { return schedule_.timesteps; }

  // x_{i+1} from x_i and the (guided) velocity the model gave at (x_i, timestep(i)). Throws
  // ParameterError("step") out of order, ShapeError when v's shape is not x's.
  virtual torch::Tensor step(const torch::Tensor& x, const torch::Tensor& velocity, int step) = 0;
  // x0 = x − σ_i·v: the clean sample the model currently predicts (previews).
  torch::Tensor predict_x0(const torch::Tensor& x, const torch::Tensor& velocity, int step) const;
  // Forgets the history (step(…, 0) does this too).
  virtual void reset() {}

 protected:
  explicit Sampler(Schedule schedule) : schedule_(std::move(schedule)) {}
  // ParameterError("step") unless 0 <= step < steps.
  void check_step(int step) const;

 private:
  Schedule schedule_;
};

// The sampler names make_sampler knows: "unipc", "euler", "dpm++2m".
const std::vector<std::string>& sampler_names();
// Throws as make_schedule.
std::unique_ptr<Sampler> make_sampler(const std::string& name, int steps, double shift, Grid grid = Grid::Auto);

// ---- [samplers] ---------------------------------------------------------------------------------

// First order, no history: x_{i+1} = x_i + (σ_{i+1} − σ_i)·v. Wan grid: σ_i = shift(1 − i/n),
// timestep 1000·σ_i (unrounded). Diffusers grid: FlowMatchEulerDiscreteScheduler's.
class FlowMatchEuler : public Sampler {
 public:
  FlowMatchEuler(int steps, double shift, Grid grid = Grid::Wan);
  const char* name() const override { return "euler"; }
  torch::Tensor step(const torch::Tensor& x, const torch::Tensor& velocity, int step) override;
};

// Multistep UniPC (bh2, order 2) on x0 = x − σ·v: a UniC corrector on the previous step's sample
// with the new model output (no extra forward), then a UniP predictor; order 1 on the first and
// the last step. Timesteps are ⌊1000·σ⌋, as Wan and diffusers hand them to the model.
class FlowUniPC : public Sampler {
 public:
  FlowUniPC(int steps, double shift, Grid grid = Grid::Diffusers);
  const char* name() const override { return "unipc"; }
  torch::Tensor step(const torch::Tensor& x, const torch::Tensor& velocity, int step) override;
  void reset() override;

 private:
  int next_ = 0;
  int last_order_ = 0;          // the predictor order of the previous step (the corrector reuses it)
  torch::Tensor last_sample_;   // x_{i−1} before its predictor, for the corrector
  torch::Tensor m_prev_, m_prev2_;  // x0 predictions at steps i−1 and i−2
};

// Multistep DPM-Solver++ 2M (midpoint) on x0 = x − σ·v: first order on the first and the last
// step, second order between. Timesteps ⌊1000·σ⌋.
class FlowDPMSolver2M : public Sampler {
 public:
  FlowDPMSolver2M(int steps, double shift, Grid grid = Grid::Diffusers);
  const char* name() const override { return "dpm++2m"; }
  torch::Tensor step(const torch::Tensor& x, const torch::Tensor& velocity, int step) override;
  void reset() override;

 private:
  int next_ = 0;
  torch::Tensor m_prev_;  // x0 prediction at step i−1
};

// ---- [guidance and noise] -----------------------------------------------------------------------

// v_uncond + g·(v_cond − v_uncond). Throws ParameterError("guidance") for negative or non-finite g.
torch::Tensor classifier_free_guidance(const torch::Tensor& cond, const torch::Tensor& uncond, double guidance);

// Standard normal noise from a CPU generator seeded with `seed`, so the same seed gives the same
// noise on any device; then moved to `device`.
torch::Tensor seeded_noise(const std::vector<int64_t>& shape, uint64_t seed, torch::Device device = torch::kCPU);

}  // namespace longshot::sampler

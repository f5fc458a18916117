// Mask policies: one class per attention mode behind one interface, registered by name so the
// CLI and the studio can list modes and their parameters. A policy turns a token grid (and, for
// dynamic modes, the layer's Q/K) into a BlockMask. Attention core: no model, no pipeline.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/attention/block_mask.h"
#include "engine/attention/token_grid.h"

namespace longshot::attention {

// One tunable parameter of a mode: the studio makes a slider from it, the CLI a --param key.
struct ParamSpec {
  std::string name;
  std::string help;
  double default_value = 0.0;
  double min = 0.0;
  double max = 1.0;
  bool min_inclusive = false;  // e.g. keep_ratio in (0, 1]
  bool max_inclusive = true;
  bool integer = false;
};

using ParamValues = std::map<std::string, double>;

// What a policy sees when it builds a mask for one attention call.
struct MaskRequest {
  TokenGrid grid;
  int64_t block_size = 128;
  int64_t num_heads = 1;
  int step = 0;          // denoising step index, 0-based
  int num_steps = 1;
  int layer = 0;
  int num_layers = 1;
  // The model's reference horizon: token frames (grid.t) of the clips it was trained on (Wan2.1:
  // 81 video frames = 21 latent frames; 0 = the model does not say). lvsa sizes its budget by it.
  int64_t reference_frames = 0;
  // [B, H, N, D], tokens in the policy's ordering(); defined only when needs_qk().
  torch::Tensor q;
  torch::Tensor k;
  // Optional: q and k already mean-pooled over groups of pool_group consecutive tokens,
  // [B, H, ceil(N / pool_group), D] fp32, made where Q/K were written (the model's fused
  // RMSNorm+RoPE kernel, for the group the policy's qk_pool_group() names), so scoring does not
  // read Q/K again. A policy that pools at another group ignores them.
  torch::Tensor q_pooled;
  torch::Tensor k_pooled;
  int64_t pool_group = 0;
  // Where attention runs. Policies that can build on a CUDA device do so there (lvsa; the
  // dynamic ones follow q), so the mask never crosses to the host in a generation step.
  torch::Device device{torch::kCPU};
};

class MaskPolicy {
 public:
  virtual ~MaskPolicy() = default;
  virtual std::string name() const = 0;
  // The order the caller must put tokens in before attention (and the mask's block order).
  virtual OrderingKind ordering() const { return OrderingKind::Raster; }
  // True when build() reads request.q / request.k.
  virtual bool needs_qk() const { return false; }
  // The token group whose Q/K means build() scores (0: none); a caller that writes Q/K can hand
  // them over pooled (MaskRequest::q_pooled).
  virtual int64_t qk_pool_group(int64_t /*block_size*/) const { return 0; }
  virtual BlockMaskPtr build(const MaskRequest& request) = 0;
  // The resolved parameter values this policy runs with.
  virtual ParamValues params() const = 0;
  // True when the last build() returned a cached mask instead of scoring anew.
  virtual bool last_mask_cached() const { return false; }
  // Forget caches and step-dependent state (a new job starts).
  virtual void reset() {}
};

struct PolicyInfo {
  std::string name;
  std::string summary;  // one line: what the mode is and where it comes from
  std::vector<ParamSpec> params;
  std::function<std::unique_ptr<MaskPolicy>(const ParamValues&)> create;  // takes resolved values
  // Older names that still select this mode (weights, adapters and scripts made before a rename
  // name it so); find_policy accepts them, listings show `name`.
  std::vector<std::string> aliases;
};

// Every registered mode, in a stable order: dense; the papers' modes as their code defines them
// (dynamicrad, dfsattn, lvsa); Longshot's own variants (radial-ratio, radial-mass, dfs-adaptive,
// local-anchors).
const std::vector<PolicyInfo>& registered_policies();
// By name or alias; throws ParameterError("mode", ...) listing the known names when unknown.
const PolicyInfo& find_policy(const std::string& name);
// Defaults overlaid with `overrides`; throws ParameterError naming an unknown key or a value
// outside its range.
ParamValues resolve_params(const PolicyInfo& info, const ParamValues& overrides);
std::unique_ptr<MaskPolicy> create_policy(const std::string& name, const ParamValues& overrides = {});
// Parses "k=v" into overrides; throws ParameterError on malformed text.
void parse_param_assignment(const std::string& text, ParamValues& out);

}  // namespace longshot::attention

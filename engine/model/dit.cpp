// Wan2.1 DiT forward. Sections: [modules] · [helpers] · [forward] · [attention] · [init]
//
// Precision follows Wan under autocast: the residual stream, norms, modulation and RoPE run in
// fp32; linears run in the weights' dtype (bf16 on the GPU benchmark, fp32 on CPU).
// Token order: when the step's policy wants a non-raster ordering (Hilbert), the sequence is
// permuted once after patch embedding and back once before unpatchify; RoPE takes the permuted
// positions. Every other op is token-wise, so no layer permutes anything.
#include "engine/model/dit.h"

#include <chrono>
#include <cmath>

#include <torch/cuda.h>

#include "engine/attention/attend.h"
#include "engine/attention/metrics.h"
#include "engine/common/error.h"
#include "engine/model/fused_ops.h"

namespace longshot::model {

namespace F = torch::nn::functional;

// ---- [modules] ----------------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat);
  return xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps_) * weight.to(torch::kFloat);
}

AttentionProjImpl::AttentionProjImpl(int64_t dim, double eps) {
  q = register_module("q", torch::nn::Linear(dim, dim));
  k = register_module("k", torch::nn::Linear(dim, dim));
  v = register_module("v", torch::nn::Linear(dim, dim));
  o = register_module("o", torch::nn::Linear(dim, dim));
  norm_q = register_module("norm_q", RMSNorm(dim, eps));
  norm_k = register_module("norm_k", RMSNorm(dim, eps));
}

WanBlockImpl::WanBlockImpl(const DiTConfig& c) {
  auto ln = [&](bool affine) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim}).eps(c.eps).elementwise_affine(affine));
  };
  norm1 = register_module("norm1", ln(false));
  self_attn = register_module("self_attn", AttentionProj(c.dim, c.eps));
  norm3 = register_module("norm3", ln(c.cross_attn_norm));
  cross_attn = register_module("cross_attn", AttentionProj(c.dim, c.eps));
  norm2 = register_module("norm2", ln(false));
  ffn = register_module("ffn", torch::nn::Sequential(
                                   torch::nn::Linear(c.dim, c.ffn_dim),
                                   torch::nn::Functional([](const torch::Tensor& x) { return torch::gelu(x, "tanh"); }),
                                   torch::nn::Linear(c.ffn_dim, c.dim)));
  modulation = register_parameter("modulation", torch::randn({1, 6, c.dim}) / std::sqrt(double(c.dim)));
}

WanHeadImpl::WanHeadImpl(const DiTConfig& c) {
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim}).eps(c.eps).elementwise_affine(false)));
  head = register_module("head", torch::nn::Linear(c.dim, c.out_channels * c.patch[0] * c.patch[1] * c.patch[2]));
  modulation = register_parameter("modulation", torch::randn({1, 2, c.dim}) / std::sqrt(double(c.dim)));
}

WanDiTImpl::WanDiTImpl(DiTConfig config) : config_(std::move(config)) {
  config_.validate();
  const auto& c = config_;
  const int64_t patch_inputs = c.in_channels + c.position_channels;
  patch_embedding = register_module(
      "patch_embedding", torch::nn::Conv3d(torch::nn::Conv3dOptions(patch_inputs, c.dim, {c.patch[0], c.patch[1], c.patch[2]})
                                               .stride({c.patch[0], c.patch[1], c.patch[2]})));
  text_embedding = register_module(
      "text_embedding", torch::nn::Sequential(
                            torch::nn::Linear(c.text_dim, c.dim),
                            torch::nn::Functional([](const torch::Tensor& x) { return torch::gelu(x, "tanh"); }),
                            torch::nn::Linear(c.dim, c.dim)));
  time_embedding = register_module("time_embedding", torch::nn::Sequential(torch::nn::Linear(c.freq_dim, c.dim),
                                                                           torch::nn::SiLU(), torch::nn::Linear(c.dim, c.dim)));
  time_projection = register_module("time_projection", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(c.dim, 6 * c.dim)));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) blocks->push_back(WanBlock(c));
  head = register_module("head", WanHead(c));
}

// ---- [helpers] ----------------------------------------------------------------------------------

namespace {

torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x) {
  return torch::linear(x.to(l->weight.scalar_type()), l->weight, l->bias);
}

torch::Tensor layer_norm(const torch::nn::LayerNorm& n, const torch::Tensor& x, double eps) {
  const auto xf = x.to(torch::kFloat);
  if (n->weight.defined())
    return torch::layer_norm(xf, {xf.size(-1)}, n->weight.to(torch::kFloat), n->bias.to(torch::kFloat), eps);
  return torch::layer_norm(xf, {xf.size(-1)}, {}, {}, eps);
}

// Rotates pairs (2i, 2i+1) of x [B, N, H, D] (fp32) by the per-token angles in cos/sin [N, D/2].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto sizes = x.sizes();
  auto pairs = x.reshape({sizes[0], sizes[1], sizes[2], sizes[3] / 2, 2});
  auto x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  auto c = cos.unsqueeze(0).unsqueeze(2), s = sin.unsqueeze(0).unsqueeze(2);
  return torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).reshape(sizes);
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

void sync_if_cuda(const torch::Tensor& t) {
  if (t.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

torch::Tensor sinusoidal_embedding(const torch::Tensor& timesteps, int64_t dim) {
  const int64_t half = dim / 2;
  auto t = timesteps.to(torch::kDouble).reshape({-1});
  auto freqs = torch::pow(10000.0, -torch::arange(half, t.options()) / double(half));
  auto args = torch::outer(t, freqs);
  return torch::cat({torch::cos(args), torch::sin(args)}, 1).to(torch::kFloat);
}

torch::Tensor position_planes(int64_t height, int64_t width, const torch::TensorOptions& options) {
  auto centres = [](int64_t n) { return (torch::arange(n, torch::kFloat) + 0.5f) * (2.0f / float(n)) - 1.0f; };
  auto y = centres(height).view({height, 1}).expand({height, width});
  auto x = centres(width).view({1, width}).expand({height, width});
  return torch::stack({x, y}).to(options);
}

std::array<int64_t, 3> rope_split(int64_t head_dim) {
  const int64_t s = head_dim / 6;
  return {head_dim - 4 * s, 2 * s, 2 * s};
}

int64_t riflex_intrinsic_index(int64_t t_dim, int64_t training_frames, double theta) {
  const double two_pi = 2.0 * M_PI;
  int64_t best = 0;
  double best_diff = 0;
  for (int64_t j = 0; j < t_dim / 2; ++j) {
    const double diff = std::abs(two_pi * std::pow(theta, 2.0 * double(j) / double(t_dim)) - double(training_frames));
    if (j == 0 || diff < best_diff) best = j, best_diff = diff;  // first minimum, as Python's min()
  }
  return best;
}

std::vector<double> temporal_rope_freqs(int64_t t_dim, double theta, int64_t frames, int64_t reference, bool riflex) {
  std::vector<double> f;
  for (int64_t j = 0; 2 * j < t_dim; ++j) f.push_back(1.0 / std::pow(theta, double(2 * j) / double(t_dim)));
  if (riflex && reference > 0 && frames > reference) {
    const double s = double(frames) / double(reference);
    f[size_t(riflex_intrinsic_index(t_dim, reference, theta))] = 2.0 * M_PI / (double(reference) * s);
  }
  return f;
}

AttentionPlan AttentionPlan::training() {
  AttentionPlan plan;
  plan.differentiable = true;
  plan.measure_time = false;
  return plan;
}

double AttentionStats::mean_sparsity() const {
  if (sparsity.empty()) return 0.0;
  double s = 0;
  for (float v : sparsity) s += v;
  return s / double(sparsity.size());
}

attention::TokenGrid WanDiTImpl::token_grid(int64_t frames, int64_t height, int64_t width) const {
  return model::token_grid(config_, frames, height, width);
}

attention::TokenGrid token_grid(const DiTConfig& c, int64_t frames, int64_t height, int64_t width) {
  const auto& p = c.patch;
  if (frames % p[0] || height % p[1] || width % p[2])
    throw ShapeError("latents: size " + std::to_string(frames) + "x" + std::to_string(height) + "x" +
                     std::to_string(width) + " is not divisible by the patch " + std::to_string(p[0]) + "x" +
                     std::to_string(p[1]) + "x" + std::to_string(p[2]));
  return attention::TokenGrid{frames / p[0], height / p[1], width / p[2]};
}

void WanDiTImpl::rope_tables(const attention::TokenGrid& grid, const attention::Ordering* ordering,
                             const torch::Device& device, torch::Tensor& cos, torch::Tensor& sin, bool riflex) {
  const std::string key = "rope " + grid.to_string() + " " +
                          std::to_string(int(ordering ? ordering->kind : attention::OrderingKind::Raster)) + " " +
                          std::to_string(int(riflex)) + " " + device.str();
  auto make = [&] {
    torch::Tensor c, s;
    rope_tables_host(grid, ordering, c, s, riflex);
    return torch::stack({c, s}).to(device);
  };
  const auto both = device_constant(key, make);
  cos = both[0];
  sin = both[1];
}

torch::Tensor WanDiTImpl::device_constant(const std::string& key, const std::function<torch::Tensor()>& make) {
  auto it = constants_.find(key);
  if (it != constants_.end()) return it->second;
  // A handful of grids per process; past that, start over (graphs hold what they read).
  if (constants_.size() >= 16) constants_.clear();
  return constants_[key] = make();
}

std::vector<torch::Tensor> WanDiTImpl::device_constants() const {
  std::vector<torch::Tensor> all;
  for (const auto& [key, t] : constants_) all.push_back(t);
  return all;
}

void WanDiTImpl::rope_tables_host(const attention::TokenGrid& grid, const attention::Ordering* ordering,
                                  torch::Tensor& cos, torch::Tensor& sin, bool riflex) const {
  const auto split = rope_split(config_.head_dim());
  const int64_t extent[3] = {grid.t, grid.h, grid.w};
  for (int a = 0; a < 3; ++a)
    if (extent[a] > config_.rope_max_positions)
      throw ShapeError("latents: token grid " + grid.to_string() + " exceeds the " +
                       std::to_string(config_.rope_max_positions) + " RoPE positions per axis");
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto idx = torch::arange(grid.size(), torch::TensorOptions().dtype(torch::kLong));
  if (ordering && ordering->kind != attention::OrderingKind::Raster)
    idx = torch::tensor(ordering->perm, torch::TensorOptions().dtype(torch::kLong));
  const torch::Tensor pos[3] = {idx.div(grid.h * grid.w, "floor"), idx.div(grid.w, "floor").remainder(grid.h),
                                idx.remainder(grid.w)};
  std::vector<torch::Tensor> angles;
  for (int a = 0; a < 3; ++a) {
    const int64_t part = split[a];
    auto freqs = 1.0 / torch::pow(config_.rope_theta, torch::arange(0, part, 2, opts) / double(part));
    if (a == 0 && riflex) {
      auto t = temporal_rope_freqs(part, config_.rope_theta, grid.t, config_.reference_frames, true);
      freqs = torch::tensor(t, opts);
    }
    angles.push_back(torch::outer(pos[a].to(torch::kDouble), freqs));
  }
  auto ang = torch::cat(angles, 1);
  cos = torch::cos(ang).to(torch::kFloat);
  sin = torch::sin(ang).to(torch::kFloat);
}

// ---- [forward] ----------------------------------------------------------------------------------

torch::Tensor WanDiTImpl::forward(const torch::Tensor& latents, const torch::Tensor& timesteps,
                                  const torch::Tensor& text_emb) {
  return forward(latents, timesteps, text_emb, AttentionPlan::training());
}

torch::Tensor WanDiTImpl::forward(const torch::Tensor& latents, const torch::Tensor& timesteps,
                                  const torch::Tensor& text_emb, const AttentionPlan& plan) {
  return forward_with_stats(latents, timesteps, text_emb, plan).velocity;
}

DiTOutput WanDiTImpl::forward_with_stats(const torch::Tensor& latents, const torch::Tensor& timesteps,
                                         const torch::Tensor& text_emb, const AttentionPlan& plan,
                                         const AttentionProbe& probe) {
  const auto& c = config_;
  if (latents.dim() != 5 || latents.size(1) != c.in_channels)
    throw ShapeError("latents: expected [B, " + std::to_string(c.in_channels) + ", F, H, W], got " +
                     std::string(c10::str(latents.sizes())));
  const int64_t batch = latents.size(0);
  if (timesteps.numel() != batch && timesteps.numel() != 1)
    throw ShapeError("timesteps: expected 1 or " + std::to_string(batch) + " values, got " + std::to_string(timesteps.numel()));
  if (text_emb.dim() != 3 || text_emb.size(2) != c.text_dim || (text_emb.size(0) != batch && text_emb.size(0) != 1))
    throw ShapeError("text_emb: expected [B, L, " + std::to_string(c.text_dim) + "], got " +
                     std::string(c10::str(text_emb.sizes())));
  const auto device = latents.device();
  const auto wdtype = patch_embedding->weight.scalar_type();
  const auto grid = token_grid(latents.size(2), latents.size(3), latents.size(4));

  // Ordering: the policy's, unless the whole step is dense.
  std::unique_ptr<attention::Ordering> ordering;
  torch::Tensor perm, inverse;
  const bool sparse_step = plan.policy && !plan.dense_step;
  if (sparse_step && plan.policy->ordering() != attention::OrderingKind::Raster) {
    ordering = std::make_unique<attention::Ordering>(attention::make_ordering(plan.policy->ordering(), grid));
    perm = torch::tensor(ordering->perm, torch::TensorOptions().dtype(torch::kLong)).to(device);
    inverse = torch::tensor(ordering->inverse, torch::TensorOptions().dtype(torch::kLong)).to(device);
  }
  DiTOutput result;
  auto& stats = result.stats;
  stats.num_layers = int(c.num_layers);
  stats.num_heads = int(c.num_heads);
  stats.sparsity.assign(size_t(c.num_layers * c.num_heads), 0.0f);
  stats.grid = grid;
  if (probe.keep_masks) stats.layer_masks.assign(size_t(c.num_layers), nullptr);
  const ForwardAttention fa{plan, probe, stats, ordering.get(), grid};

  // Patch embedding → [B, N, dim] fp32, raster, then into the step's order.
  auto input = latents.to(wdtype);
  if (c.position_channels > 0) {
    const auto planes = device_constant(
        "planes " + std::to_string(latents.size(3)) + "x" + std::to_string(latents.size(4)) + " " +
            std::string(c10::toString(input.scalar_type())) + " " + device.str(),
        [&] { return position_planes(latents.size(3), latents.size(4), input.options()); });
    input = torch::cat({input, planes.view({1, 2, 1, latents.size(3), latents.size(4)})
                                   .expand({batch, 2, latents.size(2), latents.size(3), latents.size(4)})},
                       1);
  }
  require_residual_fits(residual_, wdtype);  // the model may have moved since set_residual_precision
  // The residual stream (ResidualPrecision): fp32 as Wan's code, or bf16 as diffusers'.
  const auto rdtype = residual_ == ResidualPrecision::Bf16 ? torch::kBFloat16 : torch::kFloat;
  auto x = patch_embedding->forward(input).flatten(2).transpose(1, 2).to(rdtype);
  if (perm.defined()) x = x.index_select(1, perm);
  torch::Tensor cos, sin;
  rope_tables(grid, ordering.get(), device, cos, sin, plan.riflex);

  // Time: sinusoid → MLP → 6-way modulation, all fp32.
  auto t = timesteps.reshape({-1}).to(device);
  if (t.numel() == 1 && batch > 1) t = t.expand({batch});
  auto e = time_embedding->forward(sinusoidal_embedding(t, c.freq_dim).to(wdtype)).to(torch::kFloat);
  auto e0 = time_projection->forward(e.to(wdtype)).to(torch::kFloat).unflatten(1, {6, c.dim});

  // Text: its cross-attention K/V per block, computed once per text tensor (dit_linears.cpp).
  std::vector<torch::Tensor> text_k, text_v;
  text_kv(text_emb, batch, text_k, text_v);

  // GPU inference with 16-bit weights: the norms, modulation and gated residuals run as fused
  // kernels (fused_ops.h), the same arithmetic in fp32 without the intermediate tensors.
  const bool fuse = fused::applies(x) && (wdtype == torch::kBFloat16 || wdtype == torch::kHalf) && c.dim % 8 == 0 &&
                    c.head_dim() % 8 == 0;
  if (fuse) x = x.contiguous();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (plan.cancel && plan.cancel->load()) throw Cancelled();
    auto& b = *blocks[l]->as<WanBlockImpl>();
    const BlockInUse in_use(*this, l);  // fp8 / offloaded weights: this block's, in compute form
    if (op_marker) op_marker->block(int(l));
    auto m = (b.modulation.to(torch::kFloat) + e0).chunk(6, 1);  // each [B, 1, dim]
    mark("modulation");
    if (fuse) {
      // Each branch's output projection adds into x from its GEMM where it can (into_residual);
      // otherwise it returns y and the fused gated add follows.
      auto add = [&](const torch::Tensor& y, const torch::Tensor& gate) {
        if (!y.defined()) return;
        fused::gated_residual_add_(x, y, gate);
        mark("residual");
      };
      const auto h = fused::layernorm_modulate(x, m[0], m[1], c.eps, wdtype);
      mark("norm1+modulate");
      Residual self_res{x, m[2]};
      add(self_attention(b, h, cos, sin, int(l), fa, true, &self_res), m[2]);
      const auto n3 = b.norm3->weight.defined() ? fused::layernorm_affine(x, b.norm3->weight, b.norm3->bias, c.eps, wdtype)
                                                : fused::layernorm_modulate(x, {}, {}, c.eps, wdtype);
      mark("norm3");
      Residual cross_res{x, {}};
      add(cross_attention(b, l, n3, text_k[size_t(l)], text_v[size_t(l)], true, &cross_res), {});
      const auto f = fused::layernorm_modulate(x, m[3], m[4], c.eps, wdtype);
      mark("norm2+modulate");
      Residual ffn_res{x, m[5]};
      add(ffn(l, f, &ffn_res), m[5]);
      continue;
    }
    // Each update in fp32, then back to the stream's dtype (a no-op for the fp32 stream).
    auto h = layer_norm(b.norm1, x, c.eps) * (1 + m[1]) + m[0];
    mark("norm1+modulate");
    x = (x.to(torch::kFloat) + self_attention(b, h, cos, sin, int(l), fa, false).to(torch::kFloat) * m[2]).to(rdtype);
    mark("residual");
    const auto n3 = layer_norm(b.norm3, x, c.eps);
    mark("norm3");
    x = (x.to(torch::kFloat) + cross_attention(b, l, n3, text_k[size_t(l)], text_v[size_t(l)], false).to(torch::kFloat))
            .to(rdtype);
    mark("residual");
    auto f = layer_norm(b.norm2, x, c.eps) * (1 + m[4]) + m[3];
    mark("norm2+modulate");
    x = (x.to(torch::kFloat) + ffn(l, f.to(wdtype)).to(torch::kFloat) * m[5]).to(rdtype);
    mark("residual");
  }
  if (plan.cancel && plan.cancel->load()) throw Cancelled();

  auto hm = (head->modulation.to(torch::kFloat) + e.unsqueeze(1)).chunk(2, 1);
  auto out = linear(head->head, layer_norm(head->norm, x, c.eps) * (1 + hm[1]) + hm[0]).to(torch::kFloat);
  if (inverse.defined()) out = out.index_select(1, inverse);

  // Unpatchify: [B, N, pt·ph·pw·C] → [B, C, F, H, W].
  const auto& p = c.patch;
  out = out.reshape({batch, grid.t, grid.h, grid.w, p[0], p[1], p[2], c.out_channels})
            .permute({0, 7, 1, 4, 2, 5, 3, 6})
            .reshape({batch, c.out_channels, grid.t * p[0], grid.h * p[1], grid.w * p[2]});
  result.velocity = out;
  return result;
}

// ---- [attention] --------------------------------------------------------------------------------

attention::MaskRequest layer_mask_request(const AttentionPlan& plan, const DiTConfig& c, int layer,
                                          const attention::TokenGrid& grid, const torch::Device& device) {
  attention::MaskRequest req;
  req.grid = grid;
  req.block_size = plan.block_size;
  req.num_heads = c.num_heads;
  req.step = plan.step;
  req.num_steps = plan.num_steps;
  req.layer = layer;
  req.num_layers = int(c.num_layers);
  req.reference_frames = c.reference_frames;
  req.device = device;
  return req;
}

namespace {

// The step's mask for a sparse layer, from the policy (ShapeError when it returns none).
attention::BlockMaskPtr layer_mask(const AttentionPlan& plan, const DiTConfig& c, int layer,
                                   const attention::TokenGrid& grid, const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& q_pooled, const torch::Tensor& k_pooled, int64_t pool_group) {
  attention::MaskRequest req = layer_mask_request(plan, c, layer, grid, q.device());
  if (plan.policy->needs_qk()) {
    // Mask selection is not differentiated (training a mask adapter scores detached Q/K).
    req.q = q.detach();
    req.k = k.detach();
    req.q_pooled = q_pooled;
    req.k_pooled = k_pooled;
    req.pool_group = pool_group;
  }
  auto mask = plan.policy->build(req);
  if (!mask) throw ShapeError("mode '" + plan.policy->name() + "' returned no mask for layer " + std::to_string(layer));
  return mask;
}

// How a self-attention layer asks attend(), which alone picks the backend from these options.
attention::AttendOptions self_attention_options(const AttentionPlan& plan) {
  attention::AttendOptions o;
  o.backend = plan.backend;
  o.differentiable = plan.differentiable;
  o.fp32_as_bf16 = true;
  return o;
}

void record_mask(AttentionStats& stats, const attention::BlockMask& mask, int layer, int64_t heads,
                 attention::BlockMaskPtr keep) {
  if (keep) stats.layer_masks[size_t(layer)] = std::move(keep);
  for (int64_t h = 0; h < heads; ++h)
    stats.sparsity[size_t(layer * heads + h)] = float(mask.num_heads == 1 ? mask.block_sparsity() : mask.head_block_sparsity(h));
}

// The inspected layer's mask, recall estimate and one query's dense distribution (raster order).
void inspect_layer(const AttentionProbe& probe, const attention::MaskPolicy* policy, AttentionStats& st,
                   const attention::BlockMaskPtr& mask, const torch::Tensor& q, const torch::Tensor& k,
                   const attention::TokenGrid& grid, const attention::Ordering* ordering) {
  const int64_t N = q.size(2), H = q.size(1);
  st.inspected_mask = mask;
  st.inspected_mask_cached = mask && policy->last_mask_cached();
  torch::NoGradGuard no_grad;
  if (probe.recall) {
    if (!mask) {
      st.recall = 1.0;
    } else {
      const int64_t stride = std::max<int64_t>(1, N / std::max<int64_t>(1, probe.recall_queries));
      st.recall = attention::attention_recall(q, k, *mask, stride);
    }
  }
  if (probe.heatmap) {
    int64_t query = probe.query;
    if (query < 0 || query >= N) query = grid.index(grid.t / 2, grid.h / 2, grid.w / 2);
    const int64_t head = std::clamp<int64_t>(probe.head, 0, H - 1);
    const bool permuted = ordering && ordering->kind != attention::OrderingKind::Raster;
    auto probs = attention::query_probabilities(q, k, head, permuted ? ordering->inverse[size_t(query)] : query);
    if (permuted)
      probs = probs.index_select(0, torch::tensor(ordering->inverse, torch::TensorOptions().dtype(torch::kLong)).to(probs.device()));
    st.inspected_probs = probs.to(torch::kCPU).contiguous();
  }
}

}  // namespace

torch::Tensor WanDiTImpl::self_attention(WanBlockImpl& b, const torch::Tensor& x, const torch::Tensor& cos,
                                         const torch::Tensor& sin, int layer, const ForwardAttention& fa,
                                         bool fuse, Residual* into) {
  const auto& c = config_;
  const int64_t B = x.size(0), N = x.size(1), H = c.num_heads, D = c.head_dim();
  auto& a = *b.self_attn;
  const auto vdtype = a.v->weight.scalar_type();
  const auto& plan = fa.plan;
  const bool dense_layer = !plan.policy || plan.dense_step || layer < plan.dense_first_layers ||
                           layer >= c.num_layers - plan.dense_last_layers;
  // A dynamic mode scores Q/K group means: the fused kernel takes them while it writes Q/K.
  const int64_t pool_group =
      fuse && !dense_layer && plan.policy->needs_qk() ? plan.policy->qk_pool_group(plan.block_size) : 0;
  // The mask adapter adds its low-rank deltas to the projections of sparse layers only.
  const MaskAdapter* ad = plan.use_adapter && !dense_layer ? adapter.get() : nullptr;
  auto& lin = linears(layer);
  auto delta = [&](torch::Tensor y, MaskAdapter::Proj p, const torch::Tensor& in) {
    return ad ? y + ad->delta(layer, p, in.to(y.scalar_type())) : y;
  };
  // q, k, v from one GEMM: column slices of one [B, N, 3·dim] output (rows 3·dim apart).
  auto qkv = lin.self_qkv.forward(x, precision_);
  qkv[0] = delta(qkv[0], MaskAdapter::Q, x);
  qkv[1] = delta(qkv[1], MaskAdapter::K, x);
  qkv[2] = delta(qkv[2], MaskAdapter::V, x);
  mark("qkv projection");
  torch::Tensor q, k, v, q_pooled, k_pooled;
  if (fuse) {
    // RMSNorm + RoPE in one kernel each (reading the strided slices); [B, H, N, D] stay views of
    // [B, N, H, D] memory (the attention kernels and SDPA read strided rows).
    q = fused::rmsnorm_rope(qkv[0], a.norm_q->weight, cos, sin, a.norm_q->eps(), D, pool_group,
                            pool_group > 0 ? &q_pooled : nullptr)
            .view({B, N, H, D});
    k = fused::rmsnorm_rope(qkv[1], a.norm_k->weight, cos, sin, a.norm_k->eps(), D, pool_group,
                            pool_group > 0 ? &k_pooled : nullptr)
            .view({B, N, H, D});
    q = q.permute({0, 2, 1, 3});
    k = k.permute({0, 2, 1, 3});
    v = qkv[2].view({B, N, H, D}).permute({0, 2, 1, 3});
  } else {
    q = apply_rope(a.norm_q->forward(qkv[0]).view({B, N, H, D}), cos, sin);
    k = apply_rope(a.norm_k->forward(qkv[1]).view({B, N, H, D}), cos, sin);
    v = qkv[2].reshape({B, N, H, D});
    q = q.to(vdtype).permute({0, 2, 1, 3}).contiguous();
    k = k.to(vdtype).permute({0, 2, 1, 3}).contiguous();
    v = v.permute({0, 2, 1, 3}).contiguous();
  }
  mark("q/k norm+rope");

  attention::BlockMaskPtr mask;
  double t0 = 0;
  if (fa.probe.on_qkv) fa.probe.on_qkv(layer, q, k, v);
  if (plan.measure_time) {
    sync_if_cuda(q);
    t0 = now_ms();
  }
  if (!dense_layer) {
    mask = layer_mask(plan, c, layer, fa.grid, q, k, q_pooled, k_pooled, pool_group);
    mark("mask build");
    if (plan.measure_time) {
      sync_if_cuda(q);
      fa.stats.mask_ms += now_ms() - t0;
    }
  }
  const auto out = attention::attend(q, k, v, {mask.get()}, self_attention_options(plan));
  if (mask) record_mask(fa.stats, *mask, layer, H, fa.probe.keep_masks ? mask : nullptr);
  mark("self-attention");
  if (plan.measure_time) {
    sync_if_cuda(out);
    fa.stats.attention_ms += now_ms() - t0;
  }
  if (layer == fa.probe.layer) inspect_layer(fa.probe, plan.policy, fa.stats, mask, q, k, fa.grid, fa.ordering);
  mark("inspection");
  const auto attn = out.permute({0, 2, 1, 3}).reshape({B, N, c.dim});
  if (!ad && into_residual(lin.self_o, attn, into)) {
    mark("o projection + residual");
    return {};
  }
  auto y = delta(lin.self_o.forward(attn, precision_)[0], MaskAdapter::O, attn);
  mark("o projection");
  return y;
}

torch::Tensor WanDiTImpl::cross_attention(WanBlockImpl& b, int64_t layer, const torch::Tensor& x, const torch::Tensor& k,
                                          const torch::Tensor& v, bool fuse, Residual* into) {
  const auto& c = config_;
  const int64_t B = x.size(0), N = x.size(1), H = c.num_heads, D = c.head_dim();
  auto& a = *b.cross_attn;
  auto& lin = linears(layer);
  const auto yq = lin.cross_q.forward(x, precision_)[0];
  auto q = (fuse ? fused::rmsnorm_rope(yq, a.norm_q->weight, {}, {}, a.norm_q->eps(), D)
                 : a.norm_q->forward(yq).to(a.v->weight.scalar_type()))
               .view({B, N, H, D})
               .permute({0, 2, 1, 3});
  mark("cross q projection");
  attention::AttendOptions options;
  options.differentiable = true;  // the text path trains with the rest of the block
  options.fp32_as_bf16 = true;
  auto out = attention::attend(q, k, v, {}, options);
  mark("cross-attention");
  const auto attn = out.permute({0, 2, 1, 3}).reshape({B, N, c.dim});
  if (into_residual(lin.cross_o, attn, into)) {
    mark("cross o projection + residual");
    return {};
  }
  auto y = lin.cross_o.forward(attn, precision_)[0];
  mark("cross o projection");
  return y;
}

// ---- [init] -------------------------------------------------------------------------------------

void WanDiTImpl::init_random(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : named_parameters()) {
    const auto& name = item.key();
    auto& p = item.value();
    auto opts = torch::TensorOptions().dtype(torch::kFloat);
    torch::Tensor value;
    const bool is_norm = name.find("norm") != std::string::npos;
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) {
      value = torch::zeros(p.sizes(), opts);
    } else if (is_norm) {
      value = torch::ones(p.sizes(), opts);
    } else if (name.find("modulation") != std::string::npos) {
      value = torch::randn(p.sizes(), gen, opts) / std::sqrt(double(config_.dim));
    } else {
      int64_t receptive = 1;
      for (int64_t d = 2; d < p.dim(); ++d) receptive *= p.size(d);
      const double fan_in = double(p.size(1) * receptive), fan_out = double(p.size(0) * receptive);
      const double bound = std::sqrt(6.0 / (fan_in + fan_out));
      value = torch::rand(p.sizes(), gen, opts) * (2 * bound) - bound;
    }
    p.copy_(value.to(p.options()));
  }
}

}  // namespace longshot::model

// WanDiT's linear layers at inference (dit.h [WanDiT], projections.h): each block's projections as
// FusedLinear sets (q/k/v one GEMM, cross-attention k/v one GEMM), the FFN with its timing marks,
// the text's cross-attention K/V through the TextKVCache, and the precision switch.
// With autograd on (training) every layer runs as its own torch::linear, as before.
#include <memory>

#include "engine/common/error.h"
#include "engine/model/dit.h"
#include "engine/model/fused_ops.h"

namespace longshot::model {

void WanDiTImpl::set_linear_precision(LinearPrecision precision) {
  if (precision == LinearPrecision::Fp8) {
    const auto why = fp8_unsupported_reason(patch_embedding->weight.device());
    if (!why.empty()) throw ParameterError("precision", "fp8: " + why);
    if (patch_embedding->weight.scalar_type() != torch::kBFloat16)
      throw ParameterError("precision", "fp8 linears need the model in bf16, it is in " +
                                            std::string(c10::toString(patch_embedding->weight.scalar_type())));
  }
  precision_ = precision;
}

void WanDiTImpl::set_residual_precision(ResidualPrecision precision) {
  require_residual_fits(precision, patch_embedding->weight.scalar_type());
  residual_ = precision;
}

WanDiTImpl::BlockLinears& WanDiTImpl::linears(int64_t layer) {
  if (linears_.size() != blocks->size()) {
    linears_.clear();
    for (size_t l = 0; l < blocks->size(); ++l) {
      auto& b = *blocks[l]->as<WanBlockImpl>();
      auto ffn_linear = [&](size_t i) {
        auto impl = std::dynamic_pointer_cast<torch::nn::LinearImpl>(b.ffn->ptr(i));
        if (!impl) throw ShapeError("block " + std::to_string(l) + ": ffn." + std::to_string(i) + " is not a Linear");
        return torch::nn::Linear(impl);
      };
      auto& s = *b.self_attn;
      auto& c = *b.cross_attn;
      linears_.push_back(BlockLinears{FusedLinear({s.q, s.k, s.v}), FusedLinear({s.o}), FusedLinear({c.q}),
                                      FusedLinear({c.k, c.v}), FusedLinear({c.o}), FusedLinear({ffn_linear(0)}),
                                      FusedLinear({ffn_linear(2)})});
    }
  }
  return linears_[size_t(layer)];
}

bool WanDiTImpl::into_residual(FusedLinear& lin, const torch::Tensor& h, Residual* into, bool gelu_input) {
  return into != nullptr && fused::residual_epilogue_applies(into->x) &&
         lin.residual_add_(into->x, h, into->gate, precision_, gelu_input);
}

torch::Tensor WanDiTImpl::ffn(int64_t layer, const torch::Tensor& h, Residual* into) {
  auto& lin = linears(layer);
  if (precision_ == LinearPrecision::Fp8) {  // GELU fused into the down projection's quantisation
    const auto up = lin.ffn_up.forward(h, precision_)[0];
    mark("ffn up");
    if (into_residual(lin.ffn_down, up, into, /*gelu_input=*/true)) {
      mark("ffn down + residual");
      return {};
    }
    auto y = lin.ffn_down.forward(up, precision_, /*gelu_input=*/true)[0];
    mark("ffn down");
    return y;
  }
  // Native: GELU in the up projection's GEMM epilogue where that fusion applies (fused_ops.h: the
  // GPU without autograd, its A/B switches); otherwise the separate ops.
  torch::Tensor g;
  if (fused::ffn_epilogue_applies(h)) {
    g = lin.ffn_up.forward_gelu(h, /*fused_epilogue=*/true);
    mark("ffn up + gelu");
  } else {
    g = lin.ffn_up.forward(h, precision_)[0];
    mark("ffn up");
    g = torch::gelu(g, "tanh");
    mark("gelu");
  }
  if (into_residual(lin.ffn_down, g, into)) {
    mark("ffn down + residual");
    return {};
  }
  auto y = lin.ffn_down.forward(g, precision_)[0];
  mark("ffn down");
  return y;
}

void WanDiTImpl::text_kv(const torch::Tensor& text_emb, int64_t batch, std::vector<torch::Tensor>& k,
                         std::vector<torch::Tensor>& v) {
  const auto& c = config_;
  // Every weight the K/V depend on; read after the GEMMs ran, since tying re-points them.
  auto key = [&] {
    std::vector<torch::Tensor> ws;
    for (const auto& p : text_embedding->parameters()) ws.push_back(p);
    for (size_t l = 0; l < blocks->size(); ++l) {
      auto& a = *blocks[l]->as<WanBlockImpl>()->cross_attn;
      for (const auto& t : {a.k->weight, a.k->bias, a.v->weight, a.v->bias, a.norm_k->weight}) ws.push_back(t);
    }
    return weights_key(ws);
  };
  // Not with autograd (training must see fresh K/V) nor for an inference tensor (no version counter).
  const bool cacheable = !torch::GradMode::is_enabled() && !text_emb.is_inference();
  if (cacheable) {
    if (const auto* e = text_cache_.find(text_emb, batch, precision_, key())) {
      k = e->k;
      v = e->v;
      return;
    }
  }
  // Text: zero-padded (or cut) to text_len as Wan does, then the MLP.
  const auto device = patch_embedding->weight.device();
  const auto wdtype = patch_embedding->weight.scalar_type();
  auto ctx = text_emb.to(device).to(torch::kFloat);
  if (ctx.size(0) != batch) ctx = ctx.expand({batch, ctx.size(1), ctx.size(2)});
  if (ctx.size(1) > c.text_len) ctx = ctx.narrow(1, 0, c.text_len);
  if (ctx.size(1) < c.text_len)
    ctx = torch::cat({ctx, torch::zeros({batch, c.text_len - ctx.size(1), c.text_dim}, ctx.options())}, 1);
  const auto context = text_embedding->forward(ctx.to(wdtype));
  const int64_t L = context.size(1), H = c.num_heads, D = c.head_dim();
  k.clear();
  v.clear();
  for (size_t l = 0; l < blocks->size(); ++l) {
    auto& a = *blocks[l]->as<WanBlockImpl>()->cross_attn;
    // Stored weights (block_store.h): only what the text's K/V read comes to the device here.
    const BlockInUse in_use(*this, int64_t(l), {"cross_attn.k.", "cross_attn.v.", "cross_attn.norm_k."});
    const auto kv = linears(int64_t(l)).cross_kv.forward(context, precision_);
    k.push_back(a.norm_k->forward(kv[0]).to(a.v->weight.scalar_type()).view({batch, L, H, D}).permute({0, 2, 1, 3}));
    // Own memory for V, so a cached entry does not keep the whole k/v GEMM output alive.
    v.push_back(kv[1].reshape({batch, L, H, D}).permute({0, 2, 1, 3}).contiguous());
  }
  if (cacheable) {
    TextKVCache::Entry e;
    e.text = text_emb;
    e.text_version = int64_t(text_emb._version());
    e.batch = batch;
    e.precision = precision_;
    e.weights = key();
    e.k = k;
    e.v = v;
    text_cache_.insert(std::move(e));
  }
}

}  // namespace longshot::model

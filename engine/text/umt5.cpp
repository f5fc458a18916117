// umT5 encoder: [SECTION] config — [SECTION] weight names and loading — [SECTION] forward.
#include "engine/text/umt5.h"

#include <cmath>
#include <sstream>

#include <torch/torch.h>

#include "engine/attention/attend.h"
#include "engine/common/error.h"
#include "engine/io/fp8.h"
#include "engine/text/checkpoint.h"

namespace longshot::text {

// ---------------------------------------------------------------------------------------------
// [SECTION] config
// ---------------------------------------------------------------------------------------------

std::string UMT5Config::describe() const {
  std::ostringstream s;
  s << "vocab " << vocab << ", d_model " << d_model << ", " << num_heads << " heads x " << d_kv << ", d_ff " << d_ff
    << ", " << num_layers << " layers, " << num_buckets << " buckets";
  return s.str();
}

bool UMT5Config::operator==(const UMT5Config& o) const {
  return vocab == o.vocab && d_model == o.d_model && d_kv == o.d_kv && num_heads == o.num_heads && d_ff == o.d_ff &&
         num_layers == o.num_layers && num_buckets == o.num_buckets && max_distance == o.max_distance && eps == o.eps;
}

const char* to_string(UMT5Layout layout) { return layout == UMT5Layout::Wan ? "wan" : "transformers"; }

// ---------------------------------------------------------------------------------------------
// [SECTION] weight names and loading
// ---------------------------------------------------------------------------------------------

namespace {

// A weight matrix as held: float in the working dtype, or fp8 bits plus an optional fp32 scale
// (ComfyUI "scaled" files: the real weight is bits × scale, scale per tensor or per output row).
struct Weight {
  torch::Tensor w, scale;
  bool fp8 = false, e5m2 = false;

  torch::Tensor value(torch::ScalarType dtype) const {
    if (!fp8) return w;
    auto x = decode_fp8(w, e5m2, torch::kFloat);
    if (scale.defined()) x = x * (scale.numel() == 1 ? scale.reshape({}) : scale.reshape({-1, 1}));
    return x.to(dtype);
  }
  // Rows of an embedding table; fp8 tables decode only the rows asked for.
  torch::Tensor rows(const torch::Tensor& ids, torch::ScalarType dtype) const {
    if (!fp8) return w.index_select(0, ids);
    auto x = decode_fp8(w.index_select(0, ids), e5m2, torch::kFloat);
    if (scale.defined()) x = x * (scale.numel() == 1 ? scale.reshape({}) : scale.reshape({-1}).index_select(0, ids).unsqueeze(1));
    return x.to(dtype);
  }
  int64_t bytes() const { return (w.defined() ? w.nbytes() : 0) + (scale.defined() ? scale.nbytes() : 0); }
};

struct Layer {
  Weight q, k, v, o, wi0, wi1, wo;
  torch::Tensor ln1, ln2, rel;  // norms [d_model], relative bias [num_buckets, num_heads]
};

enum class Part { Q, K, V, O, Rel, Ln1, Wi0, Wi1, Wo, Ln2 };

std::string block_name(UMT5Layout layout, const std::string& prefix, int64_t i, Part p) {
  const std::string n = std::to_string(i);
  if (layout == UMT5Layout::Wan) {
    const std::string b = prefix + "blocks." + n + ".";
    switch (p) {
      case Part::Q: return b + "attn.q.weight";
      case Part::K: return b + "attn.k.weight";
      case Part::V: return b + "attn.v.weight";
      case Part::O: return b + "attn.o.weight";
      case Part::Rel: return b + "pos_embedding.embedding.weight";
      case Part::Ln1: return b + "norm1.weight";
      case Part::Wi0: return b + "ffn.gate.0.weight";  // the GELU branch
      case Part::Wi1: return b + "ffn.fc1.weight";     // the linear branch
      case Part::Wo: return b + "ffn.fc2.weight";
      case Part::Ln2: return b + "norm2.weight";
    }
  }
  const std::string b = prefix + "encoder.block." + n + ".layer.";
  switch (p) {
    case Part::Q: return b + "0.SelfAttention.q.weight";
    case Part::K: return b + "0.SelfAttention.k.weight";
    case Part::V: return b + "0.SelfAttention.v.weight";
    case Part::O: return b + "0.SelfAttention.o.weight";
    case Part::Rel: return b + "0.SelfAttention.relative_attention_bias.weight";
    case Part::Ln1: return b + "0.layer_norm.weight";
    case Part::Wi0: return b + "1.DenseReluDense.wi_0.weight";
    case Part::Wi1: return b + "1.DenseReluDense.wi_1.weight";
    case Part::Wo: return b + "1.DenseReluDense.wo.weight";
    case Part::Ln2: return b + "1.layer_norm.weight";
  }
  return "";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

struct UMT5Encoder::State {
  UMT5Config config;
  UMT5Layout layout = UMT5Layout::Transformers;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
  std::string identity;
  Weight embed;
  std::vector<Layer> layers;
  torch::Tensor final_norm;
  bool fp8 = false;
};

UMT5Encoder::UMT5Encoder() = default;
UMT5Encoder::~UMT5Encoder() = default;
UMT5Encoder::UMT5Encoder(UMT5Encoder&&) noexcept = default;
UMT5Encoder& UMT5Encoder::operator=(UMT5Encoder&&) noexcept = default;

namespace {

// Which names a checkpoint uses: its layout, the key prefix (e.g. a bundle's
// "text_encoders.umt5xxl.transformer.") and the names of the two tensors outside the blocks.
struct Naming {
  UMT5Layout layout = UMT5Layout::Transformers;
  std::string prefix, embed, final_norm;
};

// Read off block 0's q weight; IoError naming the file when no umT5 tensor is there.
Naming find_naming(const Checkpoint& ck) {
  const auto names = ck.names();
  Naming m;
  bool found = false;
  for (const auto& n : names) {
    for (auto [l, tail] : {std::pair{UMT5Layout::Transformers, std::string("encoder.block.0.layer.0.SelfAttention.q.weight")},
                           std::pair{UMT5Layout::Wan, std::string("blocks.0.attn.q.weight")}}) {
      if (!ends_with(n, tail)) continue;
      const auto p = n.substr(0, n.size() - tail.size());
      if (!p.empty() && p.back() != '.') continue;
      m.layout = l, m.prefix = p, found = true;
    }
    if (found) break;
  }
  if (!found)
    throw IoError("text encoder weights '" + ck.path() + "': no umT5 encoder tensors (looked for 'encoder.block.0.layer.0." +
                  "SelfAttention.q.weight' (transformers/diffusers/ComfyUI) and 'blocks.0.attn.q.weight' (Wan .pth); " +
                  "the file has " + std::to_string(names.size()) + " tensors" +
                  (names.empty() ? std::string() : ", the first '" + names.front() + "'") + ")");
  const bool wan = m.layout == UMT5Layout::Wan;
  m.embed = wan ? m.prefix + "token_embedding.weight" : m.prefix + "shared.weight";
  if (!wan && !ck.contains(m.embed) && ck.contains(m.prefix + "encoder.embed_tokens.weight"))
    m.embed = m.prefix + "encoder.embed_tokens.weight";
  m.final_norm = wan ? m.prefix + "norm.weight" : m.prefix + "encoder.final_layer_norm.weight";
  return m;
}

std::string where(const Checkpoint& ck, const std::string& n) {
  return "text encoder weights '" + ck.info(n).file + "': tensor '" + n + "'";
}

std::vector<int64_t> shape_of(const Checkpoint& ck, const std::string& n, size_t rank) {
  const auto& i = ck.info(n);  // IoError naming the tensor when missing
  if (i.shape.size() != rank)
    throw ShapeError(where(ck, n) + " has shape " + shape_text(i.shape) + ", expected rank " + std::to_string(rank));
  return i.shape;
}

// Sizes: the expected config, else read off the shapes (then checked tensor by tensor on load). A
// block past num_layers means the file is another model than the config: ShapeError.
UMT5Config read_config(const Checkpoint& ck, const Naming& m, const UMT5LoadOptions& options) {
  UMT5Config c;
  if (options.expect) {
    c = *options.expect;
  } else {
    const auto e = shape_of(ck, m.embed, 2);
    const auto q = shape_of(ck, block_name(m.layout, m.prefix, 0, Part::Q), 2);
    const auto r = shape_of(ck, block_name(m.layout, m.prefix, 0, Part::Rel), 2);
    const auto f = shape_of(ck, block_name(m.layout, m.prefix, 0, Part::Wi0), 2);
    c.vocab = e[0], c.d_model = e[1], c.num_buckets = r[0], c.num_heads = r[1], c.d_ff = f[0];
    if (c.num_heads <= 0 || q[0] % c.num_heads != 0)
      throw ShapeError(where(ck, block_name(m.layout, m.prefix, 0, Part::Q)) + " has " + std::to_string(q[0]) +
                       " rows, not a multiple of the " + std::to_string(c.num_heads) + " heads of the relative bias");
    c.d_kv = q[0] / c.num_heads;
    c.num_layers = 0;
    while (ck.contains(block_name(m.layout, m.prefix, c.num_layers, Part::Q))) ++c.num_layers;
  }
  const std::string block_prefix = m.prefix + (m.layout == UMT5Layout::Wan ? "blocks." : "encoder.block.");
  for (const auto& n : ck.names()) {
    if (n.compare(0, block_prefix.size(), block_prefix) != 0) continue;
    const auto dot = n.find('.', block_prefix.size());
    const auto idx = n.substr(block_prefix.size(), dot - block_prefix.size());
    if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoll(idx) >= c.num_layers)
      throw ShapeError(where(ck, n) + " belongs to block " + idx + ", but the encoder has " + std::to_string(c.num_layers) +
                       " layers (" + c.describe() + ")");
  }
  return c;
}

// Loads tensors onto the device after checking dtype and shape: matrices as Weights (fp8 kept as
// bits with their scale, a scaled float weight folded once), vectors in the working dtype.
class WeightReader {
 public:
  WeightReader(const Checkpoint& ck, const UMT5LoadOptions& options) : ck_(ck), options_(options) {}
  bool saw_fp8() const { return fp8_; }

  Weight weight(const std::string& n, const std::vector<int64_t>& want) {
    check(n, want);
    const auto& i = ck_.info(n);
    Weight w;
    w.scale = scale_of(n, want[0]);
    if (is_float8(i.dtype)) {
      w.fp8 = true;
      w.e5m2 = i.dtype == WeightDtype::F8_E5M2;
      w.w = ck_.load(n).to(options_.device);
      fp8_ = true;
    } else if (w.scale.defined()) {  // a float weight with a scale: apply it once, in fp32
      auto t = ck_.load(n).to(options_.device, torch::kFloat);
      w.w = (t * (w.scale.numel() == 1 ? w.scale.reshape({}) : w.scale.reshape({-1, 1}))).to(options_.dtype);
      w.scale = torch::Tensor();
    } else {  // straight to the working dtype: no fp32 copy on the device (it would set the peak)
      w.w = ck_.load(n).to(options_.device, options_.dtype);
    }
    return w;
  }

  torch::Tensor vector(const std::string& n, const std::vector<int64_t>& want) {
    check(n, want);
    auto t = ck_.load(n);
    if (is_float8(ck_.info(n).dtype)) t = decode_fp8(t, ck_.info(n).dtype == WeightDtype::F8_E5M2, torch::kFloat);
    return t.to(options_.device, options_.dtype);
  }

 private:
  void check(const std::string& n, const std::vector<int64_t>& want) const {
    const auto& i = ck_.info(n);
    if (!is_floating(i.dtype))
      throw ShapeError(where(ck_, n) + " has dtype " + to_string(i.dtype) +
                       ", expected a float type (F32, F16, BF16, F8_E4M3, F8_E5M2)");
    if (i.shape != want) throw ShapeError(where(ck_, n) + " has shape " + shape_text(i.shape) + ", expected " + shape_text(want));
  }

  torch::Tensor scale_of(const std::string& n, int64_t rows) const {
    const std::string base = n.substr(0, n.size() - std::string("weight").size());
    for (const auto& s : {base + "scale_weight", base + "weight_scale"}) {
      if (!ck_.contains(s)) continue;
      const auto& i = ck_.info(s);
      if (i.dtype != WeightDtype::F32 && i.dtype != WeightDtype::F16 && i.dtype != WeightDtype::BF16)
        throw ShapeError(where(ck_, s) + " has dtype " + to_string(i.dtype) + ", expected a float scale");
      if (i.numel() != 1 && i.numel() != rows)
        throw ShapeError(where(ck_, s) + " has shape " + shape_text(i.shape) +
                         ": a weight scale holds 1 value or one per row (" + std::to_string(rows) + ")");
      return ck_.load(s).to(torch::kFloat).to(options_.device);
    }
    return {};
  }

  const Checkpoint& ck_;
  const UMT5LoadOptions& options_;
  bool fp8_ = false;
};

}  // namespace

UMT5Encoder UMT5Encoder::load(const std::string& path, const UMT5LoadOptions& options) {
  if (options.dtype != torch::kFloat && options.dtype != torch::kBFloat16 && options.dtype != torch::kHalf)
    throw ParameterError("dtype", "the text encoder computes in float32, bfloat16 or float16");
  Checkpoint ck(path);
  const Naming m = find_naming(ck);
  const UMT5Config c = read_config(ck, m, options);

  auto st = std::make_unique<State>();
  st->config = c;
  st->layout = m.layout;
  st->device = options.device;
  st->dtype = options.dtype;
  st->identity = ck.identity();

  WeightReader read(ck, options);
  const int64_t D = c.d_model, I = c.inner_dim(), F = c.d_ff;
  st->embed = read.weight(m.embed, {c.vocab, D});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto name = [&](Part p) { return block_name(m.layout, m.prefix, l, p); };
    Layer L;
    L.q = read.weight(name(Part::Q), {I, D});
    L.k = read.weight(name(Part::K), {I, D});
    L.v = read.weight(name(Part::V), {I, D});
    L.o = read.weight(name(Part::O), {D, I});
    L.rel = read.vector(name(Part::Rel), {c.num_buckets, c.num_heads});
    L.ln1 = read.vector(name(Part::Ln1), {D});
    L.wi0 = read.weight(name(Part::Wi0), {F, D});
    L.wi1 = read.weight(name(Part::Wi1), {F, D});
    L.wo = read.weight(name(Part::Wo), {D, F});
    L.ln2 = read.vector(name(Part::Ln2), {D});
    st->layers.push_back(std::move(L));
  }
  st->final_norm = read.vector(m.final_norm, {D});
  st->fp8 = read.saw_fp8();
  SPDLOG_DEBUG("umT5: {} ({} layout, {}{})", ck.path(), to_string(m.layout), c.describe(), st->fp8 ? ", fp8" : "");
  UMT5Encoder enc;
  enc.s_ = std::move(st);
  return enc;
}

bool UMT5Encoder::loaded() const { return s_ != nullptr; }

void UMT5Encoder::release() { s_.reset(); }

namespace {
[[noreturn]] void not_loaded() { throw Error("umT5 encoder: no weights loaded (released or never loaded)"); }
}  // namespace

const UMT5Config& UMT5Encoder::config() const {
  if (!s_) not_loaded();
  return s_->config;
}
UMT5Layout UMT5Encoder::layout() const {
  if (!s_) not_loaded();
  return s_->layout;
}
torch::Device UMT5Encoder::device() const {
  if (!s_) not_loaded();
  return s_->device;
}
torch::ScalarType UMT5Encoder::dtype() const {
  if (!s_) not_loaded();
  return s_->dtype;
}
bool UMT5Encoder::has_fp8() const { return s_ && s_->fp8; }
const std::string& UMT5Encoder::identity() const {
  if (!s_) not_loaded();
  return s_->identity;
}

int64_t UMT5Encoder::weight_bytes() const {
  if (!s_) return 0;
  int64_t n = s_->embed.bytes() + s_->final_norm.nbytes();
  for (const auto& l : s_->layers)
    n += l.q.bytes() + l.k.bytes() + l.v.bytes() + l.o.bytes() + l.wi0.bytes() + l.wi1.bytes() + l.wo.bytes() + l.ln1.nbytes() +
         l.ln2.nbytes() + l.rel.nbytes();
  return n;
}

void UMT5Encoder::to(torch::Device device, c10::optional<torch::ScalarType> dtype) {
  if (!s_) not_loaded();
  const auto dt = dtype.value_or(s_->dtype);
  if (dt != torch::kFloat && dt != torch::kBFloat16 && dt != torch::kHalf)
    throw ParameterError("dtype", "the text encoder computes in float32, bfloat16 or float16");
  auto move = [&](Weight& w) {
    w.w = w.fp8 ? w.w.to(device) : w.w.to(device, dt);
    if (w.scale.defined()) w.scale = w.scale.to(device);
  };
  auto vec = [&](torch::Tensor& t) { t = t.to(device, dt); };
  move(s_->embed);
  for (auto& l : s_->layers) {
    for (Weight* w : {&l.q, &l.k, &l.v, &l.o, &l.wi0, &l.wi1, &l.wo}) move(*w);
    vec(l.ln1), vec(l.ln2), vec(l.rel);
  }
  vec(s_->final_norm);
  s_->device = device;
  s_->dtype = dt;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] forward
// ---------------------------------------------------------------------------------------------

namespace {

// T5 RMS norm: variance in fp32, the normalised value cast back to the working dtype, then × weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  auto xf = x.to(torch::kFloat);
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return w * y.to(w.scalar_type());
}

// Relative position → bucket (bidirectional): half the buckets per direction, half of those exact,
// the rest log-spaced up to max_distance. The float ops mirror transformers' so the rounding of
// the log at bucket edges is the same.
torch::Tensor position_buckets(int64_t L, int64_t num_buckets, int64_t max_distance) {
  auto pos = torch::arange(L, torch::kLong);
  auto rel = pos.unsqueeze(0) - pos.unsqueeze(1);  // [q, k]: memory − query
  const int64_t half = num_buckets / 2;
  auto buckets = (rel > 0).to(torch::kLong) * half;
  rel = rel.abs();
  const int64_t max_exact = half / 2;
  auto large = max_exact + (torch::log(rel.to(torch::kFloat) / double(max_exact)) /
                            std::log(double(max_distance) / double(max_exact)) * double(half - max_exact))
                               .to(torch::kLong);
  large = torch::min(large, torch::full_like(large, half - 1));
  return buckets + torch::where(rel < max_exact, rel, large);
}

torch::Tensor clamp_half(torch::Tensor x) {
  // fp16 only (as transformers): keep inf out of the residual stream.
  if (x.scalar_type() != torch::kHalf) return x;
  if (torch::isinf(x).any().item<bool>()) x = x.clamp(-65504.0 + 1000, 65504.0 - 1000);
  return x;
}

}  // namespace

torch::Tensor UMT5Encoder::encode(const torch::Tensor& ids_in, const torch::Tensor& mask_in) const {
  if (!s_) not_loaded();
  const auto& c = s_->config;
  if (ids_in.dim() != 2) throw ShapeError("umT5 encode: token ids must be [B, L], got " + c10::str(ids_in.sizes()));
  if (mask_in.sizes() != ids_in.sizes())
    throw ShapeError("umT5 encode: mask " + c10::str(mask_in.sizes()) + " does not match token ids " + c10::str(ids_in.sizes()));
  if (ids_in.scalar_type() != torch::kLong && ids_in.scalar_type() != torch::kInt)
    throw ShapeError("umT5 encode: token ids must be int64, got " + std::string(c10::toString(ids_in.scalar_type())));
  torch::NoGradGuard no_grad;
  const int64_t B = ids_in.size(0), L = ids_in.size(1), D = c.d_model, H = c.num_heads, dk = c.d_kv;
  const auto dt = s_->dtype;
  const auto dev = s_->device;
  auto ids = ids_in.to(torch::kCPU, torch::kLong);
  auto mask = mask_in.to(torch::kCPU).ne(0);
  if (ids.numel() > 0) {
    const auto lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= c.vocab)
      throw ShapeError("umT5 encode: token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary of " +
                       std::to_string(c.vocab));
  }
  // Longest valid prefix when every row is right-padded (the mask is 1…1 0…0).
  const auto lengths = mask.sum(1);
  const auto prefix = torch::arange(L, torch::kLong).unsqueeze(0) < lengths.unsqueeze(1);
  const int64_t Lv = L == 0 ? 0 : (prefix.eq(mask).all().item<bool>() ? lengths.max().item<int64_t>() : L);
  auto out = torch::zeros({B, L, D}, torch::TensorOptions().dtype(dt).device(dev));
  if (Lv == 0 || B == 0) return out;
  ids = ids.narrow(1, 0, Lv);
  mask = mask.narrow(1, 0, Lv);

  auto x = s_->embed.rows(ids.reshape({-1}).to(dev), dt).view({B, Lv, D});
  // Padding keys: the dtype's lowest value added to the scores (exp → exactly 0 after the max shift).
  const double lowest = dt == torch::kFloat ? -3.4028234663852886e38 : dt == torch::kHalf ? -65504.0 : -3.3895313892515355e38;
  auto key_bias = torch::zeros({B, 1, 1, Lv}, torch::kFloat).masked_fill(mask.logical_not().view({B, 1, 1, Lv}), lowest).to(dev, dt);
  const auto buckets = position_buckets(Lv, c.num_buckets, c.max_distance).to(dev);

  attention::AttendOptions t5_attention;
  t5_attention.scale = 1.0;
  for (const auto& l : s_->layers) {
    auto h = rms_norm(x, l.ln1, c.eps);
    auto q = torch::linear(h, l.q.value(dt)).view({B, Lv, H, dk}).transpose(1, 2);
    auto k = torch::linear(h, l.k.value(dt)).view({B, Lv, H, dk}).transpose(1, 2);
    auto v = torch::linear(h, l.v.value(dt)).view({B, Lv, H, dk}).transpose(1, 2);
    auto bias = l.rel.index_select(0, buckets.reshape({-1})).view({Lv, Lv, H}).permute({2, 0, 1}).unsqueeze(0);
    // Eager attention (the bias picks it): scores in dt with no 1/sqrt(d_kv) (T5's init absorbs
    // it), relative-position and padding bias added, probabilities in fp32, as transformers runs T5.
    auto a = attention::attend(q, k, v, {nullptr, bias + key_bias}, t5_attention).transpose(1, 2).reshape({B, Lv, H * dk});
    x = clamp_half(x + torch::linear(a, l.o.value(dt)));
    h = rms_norm(x, l.ln2, c.eps);
    auto gated = torch::gelu(torch::linear(h, l.wi0.value(dt)), "tanh") * torch::linear(h, l.wi1.value(dt));
    x = clamp_half(x + torch::linear(gated, l.wo.value(dt)));
  }
  x = rms_norm(x, s_->final_norm, c.eps);
  x = x * mask.to(dev).unsqueeze(-1).to(dt);
  out.narrow(1, 0, Lv).copy_(x);
  return out;
}

}  // namespace longshot::text

// fp8 decoding through a value table (fp8.h).
#include "engine/io/fp8.h"

#include <cmath>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "engine/common/error.h"

namespace longshot::io {

namespace {

torch::Tensor make_table(bool e5m2) {
  std::vector<float> v(256);
  for (int b = 0; b < 256; ++b) {
    const float sign = (b & 0x80) ? -1.f : 1.f;
    if (e5m2) {
      const int e = (b >> 2) & 0x1f, m = b & 3;
      if (e == 31) v[size_t(b)] = m == 0 ? sign * INFINITY : NAN;
      else if (e == 0) v[size_t(b)] = sign * std::ldexp(float(m) / 4.f, -14);
      else v[size_t(b)] = sign * std::ldexp(1.f + float(m) / 4.f, e - 15);
    } else {
      const int e = (b >> 3) & 0xf, m = b & 7;
      if (e == 15 && m == 7) v[size_t(b)] = NAN;  // e4m3fn: no infinities, only this NaN pattern
      else if (e == 0) v[size_t(b)] = sign * std::ldexp(float(m) / 8.f, -6);
      else v[size_t(b)] = sign * std::ldexp(1.f + float(m) / 8.f, e - 7);
    }
  }
  return torch::from_blob(v.data(), {256}, torch::kFloat).clone();
}

}  // namespace

const torch::Tensor& fp8_values(bool e5m2) {
  static const torch::Tensor e4m3 = make_table(false), e5m2_table = make_table(true);
  return e5m2 ? e5m2_table : e4m3;
}

torch::Tensor fp8_lookup(bool e5m2, float scale, torch::ScalarType dtype, const torch::Device& device) {
  auto t = fp8_values(e5m2);
  if (scale != 1.f) t = t * torch::tensor(scale, torch::kFloat);
  return t.to(dtype).to(device);
}

torch::Tensor decode_fp8_with(const torch::Tensor& bits, const torch::Tensor& table) {
  if (bits.scalar_type() != torch::kByte)
    throw ShapeError("decode_fp8: expected uint8 bits, got " + std::string(c10::toString(bits.scalar_type())));
  // 16 M indices per gather: 128 MB of int64 at most, whatever the weight's size.
  constexpr int64_t kChunk = int64_t(1) << 24;
  const auto flat = bits.reshape({-1});
  auto out = torch::empty({flat.numel()}, table.options());
  for (int64_t s = 0; s < flat.numel(); s += kChunk) {
    const int64_t n = std::min(kChunk, flat.numel() - s);
    auto part = out.narrow(0, s, n);
    torch::index_select_out(part, table, 0, flat.narrow(0, s, n).to(torch::kLong));
  }
  return out.view(bits.sizes());
}

torch::Tensor decode_fp8(const torch::Tensor& bits, bool e5m2, torch::ScalarType dtype) {
  // Gather in fp32 (fp64 when asked), then convert: each value rounds once.
  const auto table_dtype = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  return decode_fp8_with(bits, fp8_lookup(e5m2, 1.f, table_dtype, bits.device())).to(dtype);
}

}  // namespace longshot::io

// Strict integer parsing: digit by digit with overflow checks, because std::stoll accepts
// leading spaces, '+' and trailing junk, and the casts after it wrap silently.
#include "engine/common/parse.h"

#include <string>

namespace longshot {

bool parse_uint64(const std::string& text, uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  uint64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

bool parse_int64(const std::string& text, int64_t& out, int64_t min_value, int64_t max_value) {
  const bool negative = !text.empty() && text[0] == '-';
  uint64_t magnitude = 0;
  if (!parse_uint64(negative ? text.substr(1) : text, magnitude)) return false;
  // |INT64_MIN| = INT64_MAX + 1 fits a uint64_t.
  const uint64_t limit = negative ? uint64_t(INT64_MAX) + 1 : uint64_t(INT64_MAX);
  if (magnitude > limit) return false;
  const int64_t v = negative ? (magnitude == limit ? INT64_MIN : -int64_t(magnitude)) : int64_t(magnitude);
  if (v < min_value || v > max_value) return false;
  out = v;
  return true;
}

bool parse_byte_size(const std::string& text, int64_t& out) {
  size_t i = 0;
  std::string whole, fraction;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') whole += text[i++];
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') fraction += text[i++];
    if (fraction.empty()) return false;
  }
  uint64_t w = 0;
  if (whole.empty() || whole.size() > 19 || !parse_uint64(whole, w)) return false;
  std::string unit;
  for (; i < text.size(); ++i) unit += char(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i]);
  int shift = 0;  // "" or "B": bytes
  if (!unit.empty() && unit != "B") {
    const auto at = std::string("KMGT").find(unit[0]);
    const std::string tail = unit.substr(1);
    if (at == std::string::npos || (tail != "" && tail != "B" && tail != "IB")) return false;
    shift = 10 * int(at + 1);
  }
  if (shift == 0 && !fraction.empty()) return false;  // a fraction of a byte
  // whole · 2^shift + 0.fraction · 2^shift, rejecting anything above 2^62.
  if (w > (uint64_t(1) << 62) >> shift) return false;
  long double v = (long double)(w << shift);
  long double place = 1;  // digit by digit: no locale (a studio may run under a ',' decimal one)
  for (const char c : fraction) v += (place /= 10) * (long double)(c - '0') * (long double)(uint64_t(1) << shift);
  if (v < 1 || v > (long double)(uint64_t(1) << 62)) return false;
  out = int64_t(v);
  return true;
}

}  // namespace longshot

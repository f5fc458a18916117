// Strict integer parsing: digit by digit with overflow checks, because std::stoll accepts
// leading spaces, '+' and trailing junk, and the casts after it wrap silently.
#include "engine/common/parse.h"

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

}  // namespace longshot

// Strict number parsing for text that comes from users and files (CLI flags, checkpoint metadata,
// presets): the whole text must be the number, and a value that does not fit is refused instead
// of wrapping. Common room: no model, no IO.
#pragma once
#include <cstdint>
#include <string>

namespace longshot {

// Decimal integer, optional leading '-', nothing else (no spaces, '+', exponent or fraction).
// False when malformed or outside [min_value, max_value]; `out` is untouched then.
bool parse_int64(const std::string& text, int64_t& out, int64_t min_value = INT64_MIN, int64_t max_value = INT64_MAX);
// Decimal digits only (no sign); false when malformed or above 2^64 − 1.
bool parse_uint64(const std::string& text, uint64_t& out);
// A memory size: decimal digits with an optional fraction, then an optional binary unit K, M, G or
// T (also KB/KiB, ..., any case; G = 2^30 bytes) — "24G", "23.5GiB", "512M", "1073741824". False
// when malformed, zero, or above 2^62; `out` is untouched then.
bool parse_byte_size(const std::string& text, int64_t& out);

}  // namespace longshot

// Checks on the files and text that Longshot reads from others (checkpoints, presets, traces) and
// on the paths it writes to, shared by every reader and writer so that each refuses the same
// things with the same words. IO room: paths and bytes only — no model, no pipeline.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace longshot::io {

// `what '<path>'` must name an existing regular file (symbolic links followed). Checked with
// stat() before any open(): opening a FIFO blocks until a writer comes, a device may never end.
// Throws IoError: "does not exist", "is a folder", "is a FIFO (named pipe), not a regular file"...
void require_regular_file(const std::string& path, const std::string& what);

// A destination about to be replaced by rename(): absent, or a regular file. A device node, FIFO,
// socket or folder there is refused (IoError) — renaming over /dev/null would replace the device.
void require_replaceable(const std::string& path);

// True when both name the same existing file (same device and inode), or — when either is
// absent — the same normalised absolute path.
bool same_file(const std::string& a, const std::string& b);

// Each output must differ from every input and from every other output, so that writing one
// never destroys another: (flag, path) pairs, empty paths ignored. Throws ParameterError naming
// both flags, e.g. "--out and --model name the same file 'x'".
using NamedPath = std::pair<std::string, std::string>;
void require_distinct_paths(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs);

// The deepest nesting of arrays/objects in JSON text, counted by a flat scan that knows strings
// and escapes; stops counting once past `limit` (so the return is at most limit + 1). Readers check
// it before parsing: nothing downstream may then recurse without bound on untrusted input.
size_t json_nesting_depth(const char* begin, const char* end, size_t limit);

// A short, bounded rendering of a JSON value for error messages — never a recursive dump() of
// untrusted input: at most `max_chars` characters and a few levels, with "…" for the rest.
std::string json_brief(const nlohmann::json& value, size_t max_chars = 80);

}  // namespace longshot::io

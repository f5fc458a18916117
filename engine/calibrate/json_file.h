// The calibrate room's versioned JSON files (calibration tables, motion routers): one reader that
// checks the file, its nesting, format tag and version with the same words for both, and one
// writer that replaces the destination only when the whole file is written.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace longshot::calibrate {

// `path` as a JSON object whose "format" is `format` and whose integer "version" is `version`.
// Throws IoError "<what> '<path>': ..." naming what is wrong (missing, not a regular file, nested
// too deep, not valid JSON, another format, another version). `oldest` > 0: versions oldest..version
// are read (the caller tells them apart).
nlohmann::json read_versioned_json(const std::string& path, const std::string& what, const std::string& format,
                                   int version, int oldest = 0);

// `j` into `path` through a hidden temporary renamed on success (indent < 0: one line). Throws
// IoError "<what> '<path>': ..." when it cannot be written; the destination is then untouched.
void write_json_file(const std::string& path, const std::string& what, const nlohmann::json& j, int indent);

}  // namespace longshot::calibrate

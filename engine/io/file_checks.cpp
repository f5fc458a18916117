// File-kind checks (stat before open), output/input path collisions and bounded JSON handling.
#include "engine/io/file_checks.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"

namespace longshot::io {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string normalised(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
  return ec ? std::filesystem::path(path).lexically_normal().string() : p.string();
}

}  // namespace

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) throw IoError(what + " '" + path + "' does not exist");
    throw IoError("cannot open " + what + " '" + path + "': " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) throw IoError(what + " '" + path + "' is a folder, not a file");
    throw IoError(what + " '" + path + "' is " + kind_of(st.st_mode) + ", not a regular file");
  }
}

void require_replaceable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // absent (or unreachable: the write itself says why)
  if (S_ISREG(st.st_mode)) return;
  throw IoError("cannot write '" + path + "': it exists and is " + kind_of(st.st_mode) +
                "; only a regular file is replaced");
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return normalised(a) == normalised(b);
}

void require_distinct_paths(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& [flag, path] = outputs[i];
    if (path.empty()) continue;
    for (size_t j = i + 1; j < outputs.size(); ++j)
      if (!outputs[j].second.empty() && same_file(path, outputs[j].second))
        throw ParameterError(flag, "--" + flag + " and --" + outputs[j].first + " name the same file '" + path +
                                       "'; one would overwrite the other");
    for (const auto& [in_flag, in_path] : inputs)
      if (!in_path.empty() && same_file(path, in_path))
        throw ParameterError(flag, "--" + flag + " names '" + path + "', which is the " + in_flag +
                                       " being read; writing it would destroy the input");
  }
}

size_t json_nesting_depth(const char* begin, const char* end, size_t limit) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char* p = begin; p != end; ++p) {
    const char c = *p;
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

namespace {

// Depth-bounded (≤ 3 levels of recursion) so a hostile value cannot exhaust the stack.
void brief_into(const nlohmann::json& v, std::string& out, size_t max_chars, int levels) {
  if (out.size() > max_chars) return;
  if (v.is_array() || v.is_object()) {
    if (levels == 0) {
      out += v.is_array() ? "[…]" : "{…}";
      return;
    }
    out += v.is_array() ? '[' : '{';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (out.size() > max_chars) break;
      if (!first) out += ", ";
      first = false;
      if (v.is_object()) out += "\"" + it.key().substr(0, 32) + "\": ";
      brief_into(*it, out, max_chars, levels - 1);
    }
    out += v.is_array() ? ']' : '}';
  } else if (v.is_string() && v.get_ref<const std::string&>().size() > max_chars) {
    out += nlohmann::json(v.get_ref<const std::string&>().substr(0, max_chars)).dump();
  } else {
    out += v.dump();  // a scalar: no recursion
  }
}

}  // namespace

std::string json_brief(const nlohmann::json& value, size_t max_chars) {
  std::string out;
  brief_into(value, out, max_chars, 3);
  if (out.size() > max_chars) out = out.substr(0, max_chars) + "…";
  return out;
}

}  // namespace longshot::io

#include "engine/calibrate/json_file.h"

#include <fstream>
#include <iterator>

#include "engine/common/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_checks.h"

namespace longshot::calibrate {

namespace {

constexpr size_t kMaxNesting = 16;  // tables and routers nest 4 levels; more is not ours

}  // namespace

nlohmann::json read_versioned_json(const std::string& path, const std::string& what, const std::string& format,
                                   int version, int oldest) {
  const auto fail = [&](const std::string& why) { throw IoError(what + " '" + path + "': " + why); };
  io::require_regular_file(path, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open (missing or unreadable)");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (io::json_nesting_depth(text.data(), text.data() + text.size(), kMaxNesting) > kMaxNesting)
    fail("nested deeper than " + std::to_string(kMaxNesting) + " levels: not a " + format + " file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    std::string why = e.what();
    if (why.size() > 160) why = why.substr(0, 160) + "...";
    fail("not valid JSON (" + why + ")");
  }
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != format)
    fail("not a " + format + " file");
  if (!j.contains("version") || !j["version"].is_number_integer()) fail("has no integer 'version'");
  const int64_t v = j["version"].get<int64_t>();
  if (oldest <= 0 || oldest > version) oldest = version;
  if (v < oldest || v > version)
    fail("version " + io::json_brief(j["version"]) + " is not supported (this build reads " +
         (oldest == version ? std::to_string(version) : std::to_string(oldest) + " to " + std::to_string(version)) + ")");
  return j;
}

void write_json_file(const std::string& path, const std::string& what, const nlohmann::json& j, int indent) {
  io::TempFile tmp(path);
  {
    std::ofstream out(tmp.path(), std::ios::binary);
    if (!out) throw IoError(what + " '" + path + "': cannot open for writing");
    out << j.dump(indent) << "\n";
    out.flush();
    if (!out) throw IoError(what + " '" + path + "': write failed");
  }
  tmp.commit();
}

}  // namespace longshot::calibrate

// Asset lookup. The install prefix and the source folder are compiled into this file alone
// (engine/CMakeLists.txt), so changing them rebuilds one object.
#include "engine/common/assets.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace longshot {

namespace fs = std::filesystem;

std::vector<std::string> asset_dirs() {
  std::vector<std::string> dirs;
  auto add = [&](const fs::path& p) {
    const std::string s = p.lexically_normal().string();
    if (!s.empty() && std::find(dirs.begin(), dirs.end(), s) == dirs.end()) dirs.push_back(s);
  };
  if (const char* env = std::getenv("LONGSHOT_ASSETS"); env && *env) add(env);
  // Relative to the running program: an installed tree moved elsewhere still finds its data.
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) add(self.parent_path().parent_path() / "share" / "longshot");
#ifdef LONGSHOT_INSTALL_PREFIX
  add(fs::path(LONGSHOT_INSTALL_PREFIX) / "share" / "longshot");
#endif
#ifdef LONGSHOT_SOURCE_DIR
  const char* no_source = std::getenv("LONGSHOT_NO_SOURCE_ASSETS");
  if (!(no_source && *no_source && std::string(no_source) != "0")) add(fs::path(LONGSHOT_SOURCE_DIR) / "assets");
#endif
  return dirs;
}

std::string find_asset(const std::string& name) {
  for (const auto& dir : asset_dirs()) {
    const auto p = fs::path(dir) / name;
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  return "";
}

std::string expected_asset_path(const std::string& name) {
  const auto dirs = asset_dirs();
  return dirs.empty() ? name : (fs::path(dirs.front()) / name).string();
}

std::string asset_search_text(const std::string& name) {
  std::string text = "'" + name + "' not found; looked in: ";
  const auto dirs = asset_dirs();
  for (size_t i = 0; i < dirs.size(); ++i) text += (i ? ", " : "") + dirs[i];
  return text + " (set LONGSHOT_ASSETS to the folder that holds it)";
}

}  // namespace longshot

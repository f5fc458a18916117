#include "ui/resources.h"

#include <algorithm>
#include <map>
#include <utility>

#include "engine/common/error.h"

namespace longshot::ui {
namespace detail {
extern const std::pair<const char*, const char*> kEmbeddedResources[];
extern const int kEmbeddedResourceCount;
}  // namespace detail

namespace {
const std::map<std::string, std::string>& table() {
  static const std::map<std::string, std::string> t = [] {
    std::map<std::string, std::string> m;
    for (int i = 0; i < detail::kEmbeddedResourceCount; ++i)
      m.emplace(detail::kEmbeddedResources[i].first, detail::kEmbeddedResources[i].second);
    return m;
  }();
  return t;
}
}  // namespace

const std::string& embedded_resource(const std::string& name) {
  const auto it = table().find(name);
  if (it == table().end()) throw IoError("embedded resource '" + name + "' is not compiled into the studio");
  return it->second;
}

std::vector<std::string> embedded_resource_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : table()) names.push_back(name);
  return names;
}

}  // namespace longshot::ui

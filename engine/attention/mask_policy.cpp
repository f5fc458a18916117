// The mode registry (an explicit table) and parameter resolution.
#include "engine/attention/mask_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "engine/attention/policies.h"
#include "engine/common/error.h"

namespace longshot::attention {

const std::vector<PolicyInfo>& registered_policies() {
  static const std::vector<PolicyInfo> table = {
      dense_policy_info(),  dynamicrad_policy_info(),     dfsattn_policy_info(), lvsa_policy_info(),
      radial_policy_info(), radial_dynamic_policy_info(), dfs_policy_info(),     local_anchors_policy_info()};
  return table;
}

const PolicyInfo& find_policy(const std::string& name) {
  std::string known;
  for (const auto& info : registered_policies()) {
    if (info.name == name || std::find(info.aliases.begin(), info.aliases.end(), name) != info.aliases.end())
      return info;
    known += (known.empty() ? "" : ", ") + info.name;
  }
  throw ParameterError("mode", "unknown mode '" + name + "'; known modes: " + known);
}

namespace {
std::string format_number(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

ParamValues resolve_params(const PolicyInfo& info, const ParamValues& overrides) {
  ParamValues values;
  for (const auto& p : info.params) values[p.name] = p.default_value;
  for (const auto& [key, value] : overrides) {
    // `name`, not the binding itself: C++17 lambdas may not capture structured bindings (clang refuses).
    const std::string& name = key;
    const auto spec = std::find_if(info.params.begin(), info.params.end(), [&](const ParamSpec& p) { return p.name == name; });
    if (spec == info.params.end()) {
      std::string known;
      for (const auto& p : info.params) known += (known.empty() ? "" : ", ") + p.name;
      throw ParameterError(key, "mode '" + info.name + "' has no such parameter" +
                                    (known.empty() ? std::string(" (it takes none)") : "; it takes: " + known));
    }
    const bool below = spec->min_inclusive ? value < spec->min : value <= spec->min;
    const bool above = spec->max_inclusive ? value > spec->max : value >= spec->max;
    if (!std::isfinite(value) || below || above) {
      throw ParameterError(key, format_number(value) + " is outside " + (spec->min_inclusive ? "[" : "(") +
                                    format_number(spec->min) + ", " + format_number(spec->max) +
                                    (spec->max_inclusive ? "]" : ")"));
    }
    if (spec->integer && std::floor(value) != value) {
      throw ParameterError(key, "must be an integer, got " + format_number(value));
    }
    values[key] = value;
  }
  return values;
}

std::unique_ptr<MaskPolicy> create_policy(const std::string& name, const ParamValues& overrides) {
  const PolicyInfo& info = find_policy(name);
  return info.create(resolve_params(info, overrides));
}

void parse_param_assignment(const std::string& text, ParamValues& out) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ParameterError("param", "expected key=value, got '" + text + "'");
  }
  const std::string key = text.substr(0, eq), value = text.substr(eq + 1);
  const char* begin = value.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (value.empty() || end != begin + value.size()) {
    throw ParameterError(key, "value '" + value + "' is not a number");
  }
  out[key] = v;
}

}  // namespace longshot::attention

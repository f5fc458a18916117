// The model config table (one of the registries built the same way, docs/architecture.md): it
// holds the Wan configs, tiny and both built-in models without any earlier registration call, no
// name twice, every name resolves, "builtin" is the built-in model, and an unknown name is refused
// with a message listing every config.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "engine/common/error.h"
#include "engine/model/builtin_model.h"
#include "engine/model/dit_config.h"

using namespace longshot;
using namespace longshot::model;

// gtest_discover_tests runs each case in its own process, so this one's first lookup is the
// table's first use: nothing registered the built-in models before it.
TEST(ConfigTable, HoldsEveryShippedConfigWithoutRegistration) {
  EXPECT_TRUE(has_config(kBuiltinName));
  std::vector<std::string> names;
  for (const auto& c : registered_configs()) names.push_back(c.name);
  const std::vector<std::string> shipped = {"wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "tiny", kBuiltinName, kBuiltinSparseName};
  ASSERT_GE(names.size(), shipped.size());
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + long(shipped.size())), shipped);
  EXPECT_EQ(find_config(kBuiltinSparseName).default_weights, builtin_weights_path(kBuiltinSparseName));
}

TEST(ConfigTable, NoNameTwiceAndEveryNameResolves) {
  std::set<std::string> seen;
  for (const auto& c : registered_configs()) {
    EXPECT_TRUE(seen.insert(c.name).second) << "'" << c.name << "' is listed twice";
    EXPECT_FALSE(c.summary.empty()) << c.name;
    EXPECT_NO_THROW(c.validate()) << c.name;
    EXPECT_EQ(find_config(c.name).name, c.name);
  }
  EXPECT_EQ(resolve_builtin_name("builtin"), kBuiltinName);
  EXPECT_TRUE(has_config(resolve_builtin_name("builtin")));
  EXPECT_EQ(resolve_builtin_name("tiny"), "tiny");
}

TEST(ConfigTable, UnknownNameListsEveryConfig) {
  try {
    find_config("no-such-model");
    FAIL() << "an unknown config was accepted";
  } catch (const ParameterError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown model config 'no-such-model'"), std::string::npos) << msg;
    for (const auto& c : registered_configs()) EXPECT_NE(msg.find(c.name), std::string::npos) << msg;
  }
}

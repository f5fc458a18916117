// The mode table (one of the registries built the same way, docs/architecture.md): no name or
// alias appears twice, every listed name and alias resolves to its own entry and builds a policy of
// that name, and an unknown name is refused with a message listing every mode.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "engine/attention/mask_policy.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::attention;

TEST(Registry, NoModeNameOrAliasTwice) {
  std::map<std::string, std::string> owner;  // name or alias -> the mode listing it
  for (const auto& info : registered_policies()) {
    EXPECT_FALSE(info.name.empty());
    EXPECT_TRUE(owner.emplace(info.name, info.name).second) << "'" << info.name << "' is listed twice (also by "
                                                            << owner[info.name] << ")";
    for (const auto& alias : info.aliases) {
      EXPECT_TRUE(owner.emplace(alias, info.name).second)
          << "alias '" << alias << "' of " << info.name << " is also a name or alias of " << owner[alias];
    }
  }
  EXPECT_GE(owner.size(), registered_policies().size());
}

TEST(Registry, EveryNameAndAliasResolves) {
  int aliases = 0;
  for (const auto& info : registered_policies()) {
    std::vector<std::string> names = info.aliases;
    names.insert(names.begin(), info.name);
    for (const auto& name : names) {
      const PolicyInfo& found = find_policy(name);
      EXPECT_EQ(&found, &info) << name;
      EXPECT_EQ(create_policy(name)->name(), info.name) << name;
    }
    aliases += int(info.aliases.size());
  }
  // The renames that older weights, adapters and scripts still use.
  EXPECT_EQ(find_policy("radial").name, "radial-ratio");
  EXPECT_EQ(find_policy("radial-dynamic").name, "radial-mass");
  EXPECT_EQ(find_policy("dfs").name, "dfs-adaptive");
  EXPECT_GE(aliases, 3);
}

TEST(Registry, UnknownModeListsEveryName) {
  try {
    find_policy("no-such-mode");
    FAIL() << "an unknown mode was accepted";
  } catch (const ParameterError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown mode 'no-such-mode'"), std::string::npos) << msg;
    for (const auto& info : registered_policies()) EXPECT_NE(msg.find(info.name), std::string::npos) << msg;
  }
}

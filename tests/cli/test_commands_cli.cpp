// The command table through the real `longshot` binary: `--help` lists each command once, in
// alphabetical order; every listed name runs (`NAME --help` prints its usage); an unknown command
// and an unknown mode are refused with the messages users see. `longshot models` lists the built-in
// models, which nothing registers before the lookup any more (the config table holds them).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/common/temp_dir.h"

namespace {

struct Out {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Arguments here are plain words (no quotes inside), so single-quoting each is enough.
Out run_cli(const std::vector<std::string>& args) {
  longshot::testing::TempDir d("longshot_cli_commands");
  std::string cmd = "LONGSHOT_THREADS=1 '" + std::string(LONGSHOT_CLI_PATH) + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + d.file("out.txt") + "' 2>'" + d.file("err.txt") + "'";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(d.file("out.txt")), slurp(d.file("err.txt"))};
}

// The names of the "Commands:" section of `longshot --help` (up to the blank line after it).
std::vector<std::string> listed_commands(const std::string& help) {
  std::istringstream in(help);
  std::string line;
  while (std::getline(in, line) && line != "Commands:") {
  }
  std::vector<std::string> names;
  while (std::getline(in, line) && !line.empty()) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    names.push_back(name);
  }
  return names;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

}  // namespace

TEST(Commands, HelpListsEachCommandOnceInOrderAndEveryOneResolves) {
  const Out help = run_cli({"--help"});
  ASSERT_EQ(help.rc, 0) << help.err;
  const auto names = listed_commands(help.out);
  EXPECT_EQ(names, (std::vector<std::string>{"calibrate", "demo", "encode-text", "eval", "generate", "masks", "models",
                                             "vae-decode", "vae-encode"}))
      << help.out;
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size()) << "a command is listed twice";
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const auto& name : names) {
    const Out usage = run_cli({name, "--help"});
    EXPECT_EQ(usage.rc, 0) << name << ": " << usage.err;
    EXPECT_NE(lower(usage.out).find("usage: longshot " + name), std::string::npos) << name << ": " << usage.out;
  }
}

TEST(Commands, UnknownCommandAndModeAreRefused) {
  const Out bad = run_cli({"no-such-command"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_EQ(bad.err, "longshot: unknown command 'no-such-command'. Run 'longshot --help' for the list.\n");
  const Out none = run_cli({});
  EXPECT_EQ(none.rc, 2);
  EXPECT_NE(none.out.find("Commands:"), std::string::npos);

  const Out mode = run_cli({"masks", "--mode", "no-such-mode"});
  EXPECT_EQ(mode.rc, 1) << mode.out;
  for (const char* m : {"unknown mode 'no-such-mode'", "dense", "radial-ratio", "local-anchors"})
    EXPECT_NE(mode.err.find(m), std::string::npos) << m << " not in: " << mode.err;
}

TEST(Commands, ModelsListsTheBuiltinModelsWithoutRegistration) {
  const Out models = run_cli({"models"});
  ASSERT_EQ(models.rc, 0) << models.err;
  for (const char* name : {"wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "tiny", "longshot-builtin ", "longshot-builtin-sparse"})
    EXPECT_NE(models.out.find(name), std::string::npos) << name << " not in: " << models.out;
}

// remove_tree (engine/common): the project's one way to delete a folder tree. It replaced
// std::filesystem::remove_all, whose call bound to the copy exported by pip LibTorch's libtorch.so
// and crashed (null jump) on the GPU machine; the last test keeps that call out of the tree.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "engine/common/remove_tree.h"
#include "tests/common/temp_dir.h"

namespace fs = std::filesystem;
using longshot::remove_tree;

namespace {
void touch(const fs::path& p) { std::ofstream(p) << "x"; }
}  // namespace

TEST(RemoveTree, RemovesAFolderWithEverythingInIt) {
  longshot::testing::TempDir d("remove_tree");
  const auto root = d.path / "tree";
  fs::create_directories(root / "a" / "b");
  touch(root / "f");
  touch(root / "a" / "g");
  touch(root / "a" / "b" / "h");
  std::error_code ec;
  EXPECT_EQ(remove_tree(root.string(), &ec), 6u);  // tree, a, b and three files
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(fs::exists(root));
}

TEST(RemoveTree, AFileAndAMissingPath) {
  longshot::testing::TempDir d("remove_tree");
  touch(d.path / "one");
  EXPECT_EQ(remove_tree(d.file("one")), 1u);
  EXPECT_FALSE(fs::exists(d.path / "one"));
  std::error_code ec;
  EXPECT_EQ(remove_tree(d.file("never-there"), &ec), 0u);
  EXPECT_FALSE(ec) << "a missing path is not an error, as with remove_all";
  EXPECT_EQ(remove_tree("", &ec), 0u);
}

TEST(RemoveTree, RemovesLinksWithoutFollowingThem) {
  longshot::testing::TempDir d("remove_tree");
  fs::create_directories(d.path / "keep");
  touch(d.path / "keep" / "precious");
  fs::create_directories(d.path / "tree");
  fs::create_directory_symlink(d.path / "keep", d.path / "tree" / "link");
  EXPECT_EQ(remove_tree((d.path / "tree").string()), 2u);
  EXPECT_TRUE(fs::exists(d.path / "keep" / "precious")) << "the link's target must survive";
}

TEST(RemoveTree, ReportsWhatItCouldNotRemove) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores folder permissions";
  longshot::testing::TempDir d("remove_tree");
  fs::create_directories(d.path / "locked");
  touch(d.path / "locked" / "f");
  ::chmod((d.path / "locked").c_str(), 0500);
  std::error_code ec;
  remove_tree((d.path / "locked").string(), &ec);
  ::chmod((d.path / "locked").c_str(), 0700);
  EXPECT_TRUE(ec);
  EXPECT_TRUE(fs::exists(d.path / "locked" / "f"));
}

// The crash this replaced came back with any new remove_all call: none in the sources.
TEST(RemoveTree, NoStdRemoveAllInTheSources) {
  const fs::path src(LONGSHOT_SOURCE_DIR);
  const std::regex call(R"((std::filesystem|fs)::remove_all\s*\()");
  std::vector<std::string> found;
  for (const char* room : {"engine", "app", "ui", "tests", "fuzz"}) {
    if (!fs::exists(src / room)) continue;
    for (const auto& e : fs::recursive_directory_iterator(src / room)) {
      const auto ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".cpp" && ext != ".h" && ext != ".cu" && ext != ".cuh")) continue;
      std::ifstream in(e.path());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (std::regex_search(text, call)) found.push_back(e.path().string());
    }
  }
  EXPECT_TRUE(found.empty()) << "std::filesystem::remove_all in " << found.size() << " file(s), e.g. "
                             << (found.empty() ? "" : found[0]) << ": use longshot::remove_tree";
}

// A scratch folder for one test, removed with everything in it when the test ends. Shared by the
// test areas that write files (weights, MP4s, traces, CLI outputs).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "engine/common/remove_tree.h"

namespace longshot::testing {

class TempDir {
 public:
  // `prefix` names the area in the folder name, so leftovers of a crashed test are recognisable.
  explicit TempDir(const std::string& prefix = "longshot") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    longshot::remove_tree(path, &ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
};

}  // namespace longshot::testing

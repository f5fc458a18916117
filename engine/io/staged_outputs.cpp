// Staged outputs: hidden siblings of the destinations, renamed into place together.
#include "engine/io/staged_outputs.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/common/error.h"
#include "engine/common/remove_tree.h"
#include "engine/io/atomic_file.h"

namespace longshot::io {

namespace fs = std::filesystem;

StagedOutputs::StagedOutputs() = default;

StagedOutputs::~StagedOutputs() {
  if (committed_) return;
  for (const auto& f : folders_) {
    std::error_code ec;
    longshot::remove_tree(f.staging_dir, &ec);
  }
  // files_: each TempFile removes its own temporary.
}

std::string StagedOutputs::add_file(const std::string& final_path) {
  files_.push_back(std::make_unique<TempFile>(final_path));
  return files_.back()->path();
}

std::string StagedOutputs::add_folder(const std::string& final_dir) {
  if (final_dir.empty()) throw IoError("output folder path is empty");
  const fs::path dest = fs::path(final_dir).lexically_normal();
  fs::path parent = dest.parent_path();
  if (dest.filename().empty()) parent = dest.parent_path().parent_path();  // "dir/" → "dir"
  const std::string leaf = dest.filename().empty() ? dest.parent_path().filename().string() : dest.filename().string();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  if (fs::exists(dest, ec) && !fs::is_directory(dest, ec))
    throw IoError("cannot write frames to '" + final_dir + "': it exists and is not a folder");
  if (!fs::is_directory(parent, ec))
    throw IoError("cannot write frames to '" + final_dir + "': folder '" + parent.string() + "' does not exist");
  if (::access(parent.c_str(), W_OK) != 0)
    throw IoError("cannot write frames to '" + final_dir + "': folder '" + parent.string() + "' is not writable");
  static std::atomic<unsigned> counter{0};
  const fs::path staging =
      parent / ("." + leaf + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  if (!fs::create_directory(staging, ec) || ec)
    throw IoError("cannot write frames to '" + final_dir + "': cannot create '" + staging.string() + "'" +
                  (ec ? ": " + ec.message() : std::string()));
  folders_.push_back({dest.string(), staging.string()});
  return staging.string();
}

std::string StagedOutputs::renamed(std::string message, const std::string& staging, const std::string& final_path) {
  for (size_t at = message.find(staging); !staging.empty() && at != std::string::npos;
       at = message.find(staging, at + final_path.size()))
    message.replace(at, staging.size(), final_path);
  return message;
}

void StagedOutputs::commit() {
  for (auto& f : files_) f->commit();
  for (const auto& f : folders_) {
    std::error_code ec;
    if (!fs::exists(f.final_dir, ec)) {
      if (std::rename(f.staging_dir.c_str(), f.final_dir.c_str()) != 0)
        throw IoError("cannot write frames to '" + f.final_dir + "': rename failed: " + std::strerror(errno));
      continue;
    }
    // An existing folder keeps its other files; ours replace those of the same names.
    for (const auto& e : fs::directory_iterator(f.staging_dir)) {
      const auto to = fs::path(f.final_dir) / e.path().filename();
      if (std::rename(e.path().c_str(), to.c_str()) != 0)
        throw IoError("cannot write '" + to.string() + "': rename failed: " + std::strerror(errno));
    }
    fs::remove(f.staging_dir, ec);
  }
  committed_ = true;
}

}  // namespace longshot::io

#include "engine/io/atomic_file.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/common/error.h"
#include "engine/io/file_checks.h"

namespace longshot::io {

TempFile::TempFile(std::string final_path) : final_path_(std::move(final_path)) {
  namespace fs = std::filesystem;
  if (final_path_.empty()) throw IoError("output path is empty");
  const fs::path dest(final_path_);
  fs::path dir = dest.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError("cannot write '" + final_path_ + "': folder '" + dir.string() + "' does not exist");
  if (fs::is_directory(dest, ec)) throw IoError("cannot write '" + final_path_ + "': it is a folder");
  require_replaceable(final_path_);
  if (::access(dir.c_str(), W_OK) != 0)
    throw IoError("cannot write '" + final_path_ + "': folder '" + dir.string() + "' is not writable");
  static std::atomic<unsigned> counter{0};
  temp_path_ = (dir / ("." + dest.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                       std::to_string(counter++)))
                   .string();
}

TempFile::~TempFile() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void TempFile::commit() {
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    throw IoError("cannot write '" + final_path_ + "': rename failed: " + std::strerror(errno));
  committed_ = true;
}

}  // namespace longshot::io

// Several outputs of one job written as one: each goes to a hidden staging file or folder beside
// its destination, and commit() renames them all into place at the end. Until then an error, a
// cancel or a signal leaves no trace (the destructor removes what was staged), so a run never
// leaves an MP4 without its trace, half a PNG set, or a *.tmp file. IO room: paths only.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/common/error.h"

namespace longshot::io {

class TempFile;

class StagedOutputs {
 public:
  StagedOutputs();
  ~StagedOutputs();
  StagedOutputs(const StagedOutputs&) = delete;
  StagedOutputs& operator=(const StagedOutputs&) = delete;

  // Reserves `final_path` (its folder must exist and be writable; an existing destination must be
  // a regular file) and returns the staging path to write it to. IoError naming final_path.
  std::string add_file(const std::string& final_path);
  // Reserves folder `final_dir` (created at commit when missing; an existing one must be a folder,
  // and its files of the same names are replaced) and returns the staging folder, already created.
  std::string add_folder(const std::string& final_dir);
  // Renames every staged output into place (files first, then folders' files). IoError on failure.
  void commit();

  // add_file / add_folder, then `write(staging_path)`. An IoError the writer throws comes back
  // naming the destination where it named the hidden staging path ("cannot write 'clip.mp4': No
  // space left on device"): the user never sees the staging name.
  template <class Write>
  void write_file(const std::string& final_path, Write&& write) {
    const std::string staging = add_file(final_path);
    try {
      write(staging);
    } catch (const IoError& e) {
      throw IoError(renamed(e.what(), staging, final_path));
    }
  }
  template <class Write>
  void write_folder(const std::string& final_dir, Write&& write) {
    const std::string staging = add_folder(final_dir);
    try {
      write(staging);
    } catch (const IoError& e) {
      throw IoError(renamed(e.what(), staging, folders_.back().final_dir));
    }
  }

 private:
  // `message` with every `staging` replaced by `final_path`.
  static std::string renamed(std::string message, const std::string& staging, const std::string& final_path);

  struct Folder {
    std::string final_dir, staging_dir;
  };
  std::vector<std::unique_ptr<TempFile>> files_;
  std::vector<Folder> folders_;
  bool committed_ = false;
};

}  // namespace longshot::io

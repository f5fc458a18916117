// Write-to-temporary-then-rename: an output file appears complete or not at all. A TempFile not
// committed (an exception, a cancelled job) removes its temporary in the destructor.
// IO room: no model, no pipeline.
#pragma once
#include <string>

namespace longshot::io {

class TempFile {
 public:
  // Checks that the destination folder exists and is writable and that an existing destination is
  // a regular file (never a device node or FIFO); throws IoError naming `final_path`.
  explicit TempFile(std::string final_path);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  // Where to write: a hidden sibling of the destination.
  const std::string& path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  // Renames the temporary over the destination; throws IoError on failure.
  void commit();

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

}  // namespace longshot::io

#include "engine/common/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

namespace longshot {

namespace {

// nftw's callback cannot capture; one walk per thread at a time, so thread-local state is enough.
thread_local std::uintmax_t removed_count = 0;
thread_local int first_errno = 0;

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  if (std::remove(path) == 0)
    ++removed_count;
  else if (first_errno == 0)
    first_errno = errno;
  return 0;  // keep going: remove what can be removed
}

}  // namespace

std::uintmax_t remove_tree(const std::string& path, std::error_code* error) {
  if (error) error->clear();
  struct stat st {};
  if (path.empty() || ::lstat(path.c_str(), &st) != 0) {
    if (error && !path.empty() && errno != ENOENT) *error = std::error_code(errno, std::generic_category());
    return 0;
  }
  removed_count = 0;
  first_errno = 0;
  // FTW_DEPTH: children before their folder; FTW_PHYS: a link is an entry, not its target.
  if (::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0 && first_errno == 0) first_errno = errno;
  if (error && first_errno != 0) *error = std::error_code(first_errno, std::generic_category());
  return removed_count;
}

}  // namespace longshot

// Removing a file or a folder tree, in place of std::filesystem::remove_all.
// Why: the pip builds of LibTorch 2.x (the GPU machine's 2.11) export their own copy of
// std::filesystem::remove_all from libtorch.so; a binary linked against it binds its calls to that
// copy, which jumps through a null pointer (SIGSEGV, seen in every run_job on CUDA). This walks the
// tree with POSIX nftw instead. No LibTorch, no other room.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

namespace longshot {

// Removes `path` and, for a folder, everything under it. Links are removed, never followed. Returns
// how many entries were removed (0 when nothing was there). Never throws: the first failure's code
// goes to *error when given (cleared on success), and the walk goes on with the rest.
std::uintmax_t remove_tree(const std::string& path, std::error_code* error = nullptr);

}  // namespace longshot

// Where Longshot's shipped data files (built-in weights, colormaps) are found: LONGSHOT_ASSETS,
// beside the executable (<exe>/../share/longshot), the install prefix (<prefix>/share/longshot),
// then the source tree for developers (off with LONGSHOT_NO_SOURCE_ASSETS=1). Common room: paths
// only — no model, no IO formats.
#pragma once
#include <string>
#include <vector>

namespace longshot {

// The folders searched, in order (each once; some may not exist).
std::vector<std::string> asset_dirs();
// The first `<dir>/<name>` that exists, else "".
std::string find_asset(const std::string& name);
// Where `name` should be when it exists nowhere: the first search folder's copy (for messages).
std::string expected_asset_path(const std::string& name);
// "looked in: A, B, C" for `name`, with the way out: for error messages.
std::string asset_search_text(const std::string& name);

}  // namespace longshot

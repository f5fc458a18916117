#include "engine/common/threads.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>

namespace longshot {

namespace {
int env_count(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  const int n = std::atoi(v);
  return n > 0 ? n : 0;
}
}  // namespace

int init_cpu_threads() {
  static const int wanted = [] {
    if (const int n = env_count("LONGSHOT_THREADS")) return n;
    if (const int n = env_count("OMP_NUM_THREADS")) return n;
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  try {
    if (at::get_num_threads() != wanted) at::set_num_threads(wanted);
  } catch (const std::exception&) {
    // A native (non-OpenMP) pool refuses resizing once it ran work: keep what it has.
  }
  return at::get_num_threads();
}

}  // namespace longshot

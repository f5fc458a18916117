#include "engine/common/address_space.h"

#include <sys/mman.h>
#include <sys/resource.h>

#include <mutex>
#include <string>

#include <torch/torch.h>

#include "engine/common/error.h"

namespace longshot {

void ensure_address_space_headroom(std::size_t headroom) {
  rlimit lim{};
  if (getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return;
  void* p = mmap(nullptr, headroom, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw Error("the address-space limit (ulimit -v " + std::to_string(lim.rlim_cur / 1024) +
                " KiB) leaves less than " + std::to_string(headroom >> 20) +
                " MiB free above what this process has mapped; OpenBLAS would hang instead of failing. "
                "Raise it by at least that much, or lift it (ulimit -v unlimited)");
  }
  munmap(p, headroom);
  // Once per thread that runs tensor work: OpenBLAS maps a buffer per calling thread on first use.
  thread_local bool warmed = false;
  if (!warmed) {
    torch::NoGradGuard no_grad;
    const auto a = torch::ones({256, 256});
    (void)torch::mm(a, a).sum().item<float>();
    warmed = true;
  }
}

}  // namespace longshot

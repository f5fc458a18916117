// Address-space headroom before CPU tensor work. Debian's OpenBLAS does not fail when it cannot
// map its GEMM buffers (e.g. under a low `ulimit -v`): it spins in blas_memory_alloc forever, deaf
// to Ctrl-C (reliability probe F5). Checking the limit first turns that hang into an error.
#pragma once
#include <cstddef>

namespace longshot {

// The headroom a job needs above what the process has mapped: OpenBLAS's buffers (tens of MiB per
// thread) plus the first activations.
inline constexpr std::size_t kAddressSpaceHeadroom = std::size_t(512) << 20;

// With no address-space limit (RLIMIT_AS infinite), does nothing. Otherwise tries to reserve
// `headroom` bytes of address space (PROT_NONE, released at once); when that fails, throws Error
// naming the limit and `ulimit -v`. When it succeeds, runs one small matrix product so OpenBLAS
// maps its buffers now, while there is room (it keeps and reuses them).
void ensure_address_space_headroom(std::size_t headroom = kAddressSpaceHeadroom);

}  // namespace longshot

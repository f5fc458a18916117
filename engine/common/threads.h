// CPU threads for LibTorch's intra-op work. Debian's LibTorch starts with one thread on the
// 2-core machines we build on (its core detection), and with its OpenMP backend the count is per
// OS thread: every thread that runs tensor work (main, generator worker) calls this once.
#pragma once

namespace longshot {

// Sets LibTorch's intra-op threads for the calling thread: LONGSHOT_THREADS if set (> 0), else
// OMP_NUM_THREADS if set (LibTorch's own rule), else every hardware thread. Returns the count.
int init_cpu_threads();

}  // namespace longshot

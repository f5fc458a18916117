// Which block-sparse kernel runs (no CUDA headers: the LibTorch adapter's callers see it too).
#pragma once

namespace longshot::attention::cuda {

// Auto takes the Hopper kernel (TMA + wgmma; mask block 128; compute capability 9.0 with sm_90a
// code in the build) where it applies and the mma.sync kernel (sm_80+) everywhere else. Mma and
// Hopper force one (benchmarks, tests); forcing Hopper where it cannot run is an error.
enum class KernelPath : int { Auto = 0, Mma = 1, Hopper = 2 };

}  // namespace longshot::attention::cuda

// The GPU tests' guard: a case skips, with the reason, where no usable CUDA device exists (CI),
// so the suite compiles and reports everywhere but runs only on the GPU machine.
#pragma once
#include <gtest/gtest.h>

#include "engine/attention/cuda/torch_adapter.h"

#define SKIP_WITHOUT_GPU()                                                                          \
  do {                                                                                              \
    if (!longshot::attention::cuda::device_available())                                             \
      GTEST_SKIP() << "no GPU for the CUDA kernel: " << longshot::attention::cuda::unavailable_reason(); \
  } while (0)

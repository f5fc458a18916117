# CUDA is optional: kernels build when nvcc exists; they run only where a GPU exists.
set(LONGSHOT_HAS_CUDA OFF)
if(NOT LONGSHOT_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Which GPUs the kernels are built for. An explicit CMAKE_CUDA_ARCHITECTURES wins; otherwise
    # LONGSHOT_CUDA_ARCHS picks a set: "ci" (80;90a: the mma.sync floor and the H100's own code,
    # two archs keep CI's 2-core build short), "workstation" (the cards people own: A100 80,
    # RTX 3090 86, RTX 4090 89, H100/H200 90a, and RTX 5090 120 where nvcc >= 12.8 knows it;
    # the `cuda` preset's default) or "native" (only this machine's GPU, CMake >= 3.24).
    # The Hopper kernel runs on 90a code only; every other arch gets the mma.sync kernel,
    # chosen at run time (engine/attention/cuda/block_sparse_dispatch.cu).
    set(LONGSHOT_CUDA_ARCHS "ci" CACHE STRING "CUDA architecture set: ci, workstation or native")
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      if(LONGSHOT_CUDA_ARCHS STREQUAL "ci")
        set(_archs "80;90a")
      elseif(LONGSHOT_CUDA_ARCHS STREQUAL "workstation")
        execute_process(COMMAND ${CMAKE_CUDA_COMPILER} --list-gpu-arch OUTPUT_VARIABLE _nvcc_archs ERROR_QUIET)
        set(_archs "80;86;89;90a")
        if(_nvcc_archs MATCHES "compute_120")
          list(APPEND _archs 120)
        endif()
      elseif(LONGSHOT_CUDA_ARCHS STREQUAL "native")
        set(_archs native)
      else()
        message(FATAL_ERROR "LONGSHOT_CUDA_ARCHS=${LONGSHOT_CUDA_ARCHS}: expected ci, workstation or native "
                            "(or set CMAKE_CUDA_ARCHITECTURES to a list such as 80;90a)")
      endif()
      set(CMAKE_CUDA_ARCHITECTURES "${_archs}" CACHE STRING "CUDA architectures")
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(LONGSHOT_HAS_CUDA ON)
    # The adapter takes LibTorch's current stream only from a CUDA LibTorch (c10_cuda); a CPU
    # LibTorch (Debian's, CI) cannot hold CUDA tensors, so the kernels are compiled but never run.
    if(TARGET c10_cuda OR TARGET torch_cuda OR C10_CUDA_LIBRARY)
      add_compile_definitions(LONGSHOT_TORCH_CUDA=1)
      set(LONGSHOT_TORCH_CUDA ON)
    else()
      set(LONGSHOT_TORCH_CUDA OFF)
    endif()
    message(STATUS "Longshot: CUDA kernels ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES}, CUDA LibTorch ${LONGSHOT_TORCH_CUDA})")
  elseif(LONGSHOT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LONGSHOT_CUDA=ON but nvcc was not found: install the CUDA Toolkit or set CMAKE_CUDA_COMPILER")
  else()
    message(STATUS "Longshot: nvcc not found, CPU-only build")
  endif()
endif()

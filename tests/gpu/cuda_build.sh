# Sourced by the GPU scripts (tests/gpu/*.sh), not run: `cuda_build LOG TARGET...` builds the
# targets in build/cuda, configuring that folder first when it is new (python torch's LibTorch,
# .thirdparty/, tests and benches on). On failure it prints the configure log's tail or the build's
# errors and exits the calling script with 1.
cuda_build() {
  local log=$1 prefix
  shift
  if [ ! -f build/cuda/CMakeCache.txt ]; then
    prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
    cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
      -DLONGSHOT_BUILD_TESTS=ON -DLONGSHOT_BUILD_BENCH=ON >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  fi
  cmake --build build/cuda --target "$@" -j16 >>"$log" 2>&1 \
    || { grep -E "error|Error" -A3 "$log" | head -60; exit 1; }
}

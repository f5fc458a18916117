#!/usr/bin/env bash
# On the GPU machine (python torch, nvcc; header-only deps carried in .thirdparty/): configure,
# build the GPU targets, run the GPU tests, then the attention benchmark and its library
# baselines. Logs and JSON go to $OUT (or ./gpu-out).
#   tests/gpu/run_gpu_suite.sh [--quick] [--no-tests] [--no-bench] [--no-flex]
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
quick= ; tests=1 ; bench=1 ; flex=1
for a in "$@"; do
  case $a in
    --quick) quick=--quick ;;
    --no-tests) tests= ;;
    --no-bench) bench= ;;
    --no-flex) flex= ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
export TORCH_CUDA_ARCH_LIST=9.0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DLONGSHOT_BUILD_TESTS=ON >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
grep -E "Longshot:" "$out/build.log"
build() {  # target: build it, or show the first errors
  cmake --build build/cuda --target "$1" -j16 >>"$out/build.log" 2>&1 \
    || { grep -E "error|Error" -A3 "$out/build.log" | head -60; return 1; }
  echo "built $1"
}
if [ -n "$tests" ] && build test_gpu; then
  ./build/cuda/tests/test_gpu 2>&1 | tee "$out/test_gpu.log" | grep -vE "^\[ *(RUN|OK) " | tail -40
fi
if [ -n "$bench" ] && build bench_attention; then
  rm -rf /tmp/masks && mkdir -p /tmp/masks
  ./build/cuda/tests/bench/bench_attention $quick --json "$out/bench_ours.json" --export-dir /tmp/masks \
    2>&1 | tee "$out/bench.log"
  if [ -n "$flex" ]; then
    python3 tests/bench/flex_baseline.py --ours "$out/bench_ours.json" --mask-dir /tmp/masks \
      --out "$out/bench_merged.json" 2>&1 | tee "$out/flex.log" | grep -v "^  "
  fi
fi

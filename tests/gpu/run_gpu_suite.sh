#!/usr/bin/env bash
# On the GPU machine (python torch, nvcc; header-only deps carried in .thirdparty/): configure,
# build the GPU targets in one parallel build, run the GPU tests, then the benchmarks asked for.
# Logs and JSON go to $OUT (or ./gpu-out); the device tool brings back only a handful of files,
# so build logs stay in /tmp and only their errors are printed.
#   tests/gpu/run_gpu_suite.sh [--quick] [--no-tests] [--no-bench] [--no-flex] [--e2e] [--eval]
#                              [--archs workstation|native|ci] [--mma-too]
#     --quick  attention bench at N = 32,760 only      --e2e   bench_e2e at 21x30x52 and 126x30x52
#     --eval   the built-in model's eval table (longshot eval, all modes, horizons 1,2,4, 2 seeds)
#     --archs  which GPUs the kernels are built for (cmake/Cuda.cmake; default workstation:
#              80;86;89;90a[;120]); the cubins in the binary are listed with cuobjdump
#     --mma-too  run the GPU tests a second time with the Hopper kernel off (LONGSHOT_KERNEL_PATH=mma)
# From a fresh clone: make .thirdparty/ on any Debian 12 machine with `bash tools/make_thirdparty.sh`
# (the GPU machine has no apt), copy it beside the clone, then run this script.
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
quick= ; tests=1 ; bench=1 ; flex=1 ; e2e= ; evaltable= ; archs=workstation ; mma=
while [ $# -gt 0 ]; do
  a=$1; shift
  case $a in
    --archs) archs=${1:-}; shift ;;
    --mma-too) mma=1 ;;
    --quick) quick=--quick ;;
    --no-tests) tests= ;;
    --no-bench) bench= ;;
    --no-flex) flex= ;;
    --e2e) e2e=1 ;;
    --eval) evaltable=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
[ -f .thirdparty/include/nlohmann/json.hpp ] || [ -d .thirdparty/include ] \
  || { echo "no .thirdparty/: make it on a Debian machine with tools/make_thirdparty.sh and copy it here" >&2; exit 2; }
# LibTorch's CMake adds -gencode flags from TORCH_CUDA_ARCH_LIST (it autodetects the local GPU
# without it), so it must name the same archs as ours; 9.0a, not 9.0: plain sm_90 code has empty
# Hopper kernel bodies (the dispatch would then fall back to mma.sync).
case $archs in
  workstation) tal="8.0;8.6;8.9;9.0a"; nvcc --list-gpu-arch 2>/dev/null | grep -q compute_120 && tal="$tal;12.0" ;;
  ci) tal="8.0;9.0a" ;;
  native) tal="" ;;
  *) echo "--archs $archs: expected workstation, native or ci" >&2; exit 2 ;;
esac
[ -n "$tal" ] && export TORCH_CUDA_ARCH_LIST="$tal"
export PYTHONUNBUFFERED=1
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DLONGSHOT_CUDA_ARCHS=$archs -DLONGSHOT_BUILD_TESTS=ON -DLONGSHOT_BUILD_BENCH=ON >/tmp/build.log 2>&1 || { tail -40 /tmp/build.log; exit 1; }
grep -E "Longshot:" /tmp/build.log
targets=
[ -n "$tests" ] && targets="$targets test_gpu"
[ -n "$bench" ] && targets="$targets bench_attention"
[ -n "$e2e" ] && targets="$targets bench_e2e"
[ -n "$evaltable" ] && targets="$targets longshot"
cmake --build build/cuda --target $targets -j16 >>/tmp/build.log 2>&1 \
  || { grep -E "error|Error" -A3 /tmp/build.log | head -60; }
echo "built in $(( $(date +%s) - t0 )) s"
if [ -n "$tests" ] && [ -x build/cuda/tests/test_gpu ]; then
  ./build/cuda/tests/test_gpu 2>&1 | tee "$out/test_gpu.log" | grep -vE "^\[ *(RUN|OK) " | tail -40
  if [ -n "$mma" ]; then
    echo "--- the GPU tests again with the Hopper kernel off (LONGSHOT_KERNEL_PATH=mma)"
    LONGSHOT_KERNEL_PATH=mma ./build/cuda/tests/test_gpu 2>&1 | tee "$out/test_gpu_mma.log" | grep -vE "^\[ *(RUN|OK) " | tail -20
  fi
  echo "--- cubins per architecture in the kernel libraries (cuobjdump --list-elf)"
  for lib in $(find build/cuda/engine -name '*.a'); do cuobjdump --list-elf "$lib" 2>/dev/null; done \
    | grep -oE "sm_[0-9]+a?" | sort | uniq -c
fi
if [ -n "$evaltable" ] && [ -x build/cuda/app/longshot ]; then
  timeout ${EVAL_TIMEOUT:-200} ./build/cuda/app/longshot eval --modes all --horizons 1,2,4 --seeds 2 2>/tmp/eval.log | tee "$out/eval_table.md"
  tail -3 /tmp/eval.log
fi
if [ -n "$e2e" ] && [ -x build/cuda/tests/bench/bench_e2e ]; then
  timeout ${E2E_TIMEOUT:-240} ./build/cuda/tests/bench/bench_e2e --grid 21x30x52 --grid 126x30x52 --reps 2 --json "$out/bench_e2e.json" \
    2>&1 | tee "$out/bench_e2e.log" | tail -20
fi
if [ -n "$bench" ] && [ -x build/cuda/tests/bench/bench_attention ]; then
  rm -rf /tmp/masks && mkdir -p /tmp/masks
  ./build/cuda/tests/bench/bench_attention $quick --json "$out/bench_ours.json" --export-dir /tmp/masks \
    2>&1 | tee "$out/bench.log"
  if [ -n "$flex" ]; then
    python3 tests/bench/flex_baseline.py --ours "$out/bench_ours.json" --mask-dir /tmp/masks \
      --out "$out/bench_merged.json" 2>&1 | tee "$out/flex.log" | grep -v "^  "
  fi
fi
echo "total $(( $(date +%s) - t0 )) s"

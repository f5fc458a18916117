#!/usr/bin/env bash
# On the GPU machine (python torch, nvcc; header-only deps carried in .thirdparty/): configure,
# build the GPU targets in one parallel build, run the GPU tests, then the benchmarks asked for.
# Logs and JSON go to $OUT (or ./gpu-out); the device tool brings back only a handful of files,
# so build logs stay in /tmp and only their errors are printed.
#   tests/gpu/run_gpu_suite.sh [--quick] [--no-tests] [--no-bench] [--no-flex] [--e2e] [--eval]
#     --quick  attention bench at N = 32,760 only      --e2e   bench_e2e at 21x30x52 and 126x30x52
#     --eval   the built-in model's eval table (longshot eval, all modes, horizons 1,2,4, 2 seeds)
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
quick= ; tests=1 ; bench=1 ; flex=1 ; e2e= ; evaltable=
for a in "$@"; do
  case $a in
    --quick) quick=--quick ;;
    --no-tests) tests= ;;
    --no-bench) bench= ;;
    --no-flex) flex= ;;
    --e2e) e2e=1 ;;
    --eval) evaltable=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
# 9.0a: LibTorch's CMake adds -gencode flags from this list; plain 9.0 would add an sm_90 build
# whose Hopper kernel bodies are empty (the dispatch then falls back to mma.sync).
export TORCH_CUDA_ARCH_LIST=9.0a PYTHONUNBUFFERED=1
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DLONGSHOT_BUILD_TESTS=ON -DLONGSHOT_BUILD_BENCH=ON >/tmp/build.log 2>&1 || { tail -40 /tmp/build.log; exit 1; }
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

#!/usr/bin/env bash
# On the GPU machine: the papers' modes and presets (issue 21). Builds test_gpu, bench_e2e and the
# CLI (cuda preset, as run_gpu_suite.sh), then
#   1. test_gpu: every registered mode's mask through the kernel against the reference;
#   2. bench_e2e: one Wan2.1-1.3B step (random bf16 weights, 2 of 30 blocks timed) per preset at
#      81 frames (21x30x52), 4x (81x30x52) and 6x (121x30x52) — sparsity, step time, attention
#      share, the one-shot mask build (first_forward_mask_ms in the JSON);
#   3. longshot eval on the built-in model with every preset at 1x, 2x, 4x: sparsity, step time,
#      adherence, temporal health, loop score, PSNR/SSIM vs dense.
# Output in $OUT (or ./gpu-out): test_gpu_presets.log, bench_presets.{log,json}, eval_presets.md.
#   tests/gpu/paper_presets.sh [--no-tests] [--no-bench] [--no-eval]
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
tests=1 ; bench=1 ; evaltable=1
for a in "$@"; do
  case $a in
    --no-tests) tests= ;;
    --no-bench) bench= ;;
    --no-eval) evaltable= ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
export TORCH_CUDA_ARCH_LIST=9.0a PYTHONUNBUFFERED=1
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DLONGSHOT_BUILD_TESTS=ON -DLONGSHOT_BUILD_BENCH=ON >/tmp/build.log 2>&1 || { tail -40 /tmp/build.log; exit 1; }
cmake --build build/cuda --target test_gpu bench_e2e longshot -j16 >>/tmp/build.log 2>&1 \
  || { grep -E "error|Error" -A3 /tmp/build.log | head -60; }
echo "built in $(( $(date +%s) - t0 )) s"
if [ -n "$tests" ] && [ -x build/cuda/tests/test_gpu ]; then
  ./build/cuda/tests/test_gpu --gtest_filter='GpuKernel.EveryModeMaskMatchesReference:DynamicMasksGpu.*' 2>&1 \
    | tee "$out/test_gpu_presets.log" | grep -vE "^\[ *(RUN|OK) " | tail -20
fi
if [ -n "$bench" ] && [ -x build/cuda/tests/bench/bench_e2e ]; then
  timeout ${BENCH_TIMEOUT:-300} ./build/cuda/tests/bench/bench_e2e --layers 2 --reps 2 \
    --grid 21x30x52 --grid 81x30x52 --grid 121x30x52 \
    --mode dense-sdpa --mode dense --preset dynamicrad-wan14b --preset radial-attention --preset dfsattn-wan \
    --preset lvsa-wan --mode radial-ratio --mode local-anchors --json "$out/bench_presets.json" \
    2>&1 | tee "$out/bench_presets.log" | tail -30
fi
if [ -n "$evaltable" ] && [ -x build/cuda/app/longshot ]; then
  timeout ${EVAL_TIMEOUT:-240} ./build/cuda/app/longshot eval --modes dense,radial-ratio --presets all \
    --horizons 1,2,4 --seeds 2 2>/tmp/eval_presets.log | tee "$out/eval_presets.md"
fi
echo "total $(( $(date +%s) - t0 )) s"

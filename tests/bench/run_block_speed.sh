#!/usr/bin/env bash
# Issue 22 in one GPU-machine call: build bench_block + test_gpu (sm_90a only, to keep the call
# short), then (1) the GPU tests of the block's linears (FP8 vs bf16 errors, strided q/k/v, the
# fused ops), (2) bench_block — our block op by op at 32,760 and 196,560 tokens, bf16 and FP8,
# exporting the radial ~90 % mask it ran (after bench_norm_quant, the row kernels alone) — and (3) tests/bench/block_torch.py — the same block in
# PyTorch under torch.compile (SDPA cuDNN; FlexAttention on that mask) and diffusers' eager step,
# with ours beside it. Each step is capped so everything ends DEADLINE seconds after the start
# (the device tool stops a command at 600 s). Results in $OUT: bench_block.{json,log}, bench_norm_quant.log,
# block_torch.{json,log}, test_gpu_block.log, gpu.txt.
#   bash tests/bench/run_block_speed.sh     (.thirdparty carried; diffusers at .device/diffusers/src)
# Env: DEADLINE (s, 540), GRIDS ("21x30x52 126x30x52"), REPS (3), TESTS=0 / TORCH_BENCH=0 to skip.
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
res=/tmp/block-speed
rm -rf "$res"
mkdir -p "$out" "$res/masks"
export PYTHONPATH=$PWD/.device/diffusers/src PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0a
t0=$(date +%s)
deadline=$(( t0 + ${DEADLINE:-540} ))
left() { echo $(( deadline - $(date +%s) )); }
cap() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $(( l > 5 ? l : 5 )) || echo "$1"; }
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DLONGSHOT_BUILD_TESTS=ON -DLONGSHOT_BUILD_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90a >"$res/configure.log" 2>&1 \
  || { tail -40 "$res/configure.log"; exit 1; }
targets="bench_block bench_norm_quant"
[ "${TESTS:-1}" != 0 ] && targets="$targets test_gpu"
cmake --build build/cuda --target $targets -j16 >"$res/build.log" 2>&1 \
  || grep -E "error" -A3 "$res/build.log" | head -60
stamp "built $targets"

if [ "${TESTS:-1}" != 0 ] && [ -x build/cuda/tests/test_gpu ]; then
  timeout "$(cap 90)" ./build/cuda/tests/test_gpu --gtest_filter='Fp8Linear.*:Fp8Lt.*:Fp8Quant.*:FusedProjections.*:FusedOps.*' 2>&1 \
    | tee "$out/test_gpu_block.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |rel-L2|Failure|tests ran"
  stamp "test_gpu (block linears)"
fi

# The row kernels alone, each in its two forms (seconds; exits 1 when a form's check fails).
if [ -x build/cuda/tests/bench/bench_norm_quant ]; then
  timeout "$(cap 30)" ./build/cuda/tests/bench/bench_norm_quant 2>&1 | tee "$out/bench_norm_quant.log" | grep -E "ms|FAILED|passed"
  stamp "bench_norm_quant"
fi

grid_args=()
for g in ${GRIDS:-21x30x52 126x30x52}; do grid_args+=(--grid "$g"); done
if [ -x build/cuda/tests/bench/bench_block ]; then
  timeout "$(cap 170)" ./build/cuda/tests/bench/bench_block "${grid_args[@]}" --fp8 --reps "${REPS:-3}" \
    --export-masks "$res/masks" --json "$out/bench_block.json" 2>&1 | tee "$out/bench_block.log" | grep -v "^  "
  stamp "bench_block"
fi

if [ "${TORCH_BENCH:-1}" != 0 ]; then
  budget=$(( $(left) - 15 ))
  timeout "$(cap 400)" python3 tests/bench/block_torch.py --masks "$res/masks" --ours "$out/bench_block.json" \
    --out "$out/block_torch.json" --budget "$budget" 2>&1 | tee "$out/block_torch.log" | grep -v "^  "
  stamp "block_torch"
fi

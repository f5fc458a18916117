#!/usr/bin/env bash
# On the GPU machine (python torch, nvcc; header-only deps carried in .thirdparty/): build
# longshot-train and longshot, train the built-in model for at most TRAIN_SECONDS (resuming from
# $OUT/run or RESUME_DIR when given), export fp16 weights, then run the eval table. Everything
# lands in $OUT (checkpoint files stay under 16 MB each).
#   app/train/gpu_train.sh [TRAIN_SECONDS=420 (0 = no training)] [EVAL_SEEDS=1 (0 = no eval)]   (extra longshot-train flags: $TRAIN_FLAGS)
set -uo pipefail
seconds=${1:-420}
seeds=${2:-1}
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out/run"
[ -n "${RESUME_DIR:-}" ] && cp "$RESUME_DIR"/*.safetensors "$out/run/" 2>/dev/null
export TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
t0=$(date +%s)
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DLONGSHOT_BUILD_TESTS=OFF -DLONGSHOT_BUILD_BENCH=OFF >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
cmake --build build/cuda --target longshot-train longshot -j16 >>"$out/build.log" 2>&1 \
  || { grep -E "error|Error" -A3 "$out/build.log" | head -60; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
[ "$seconds" -gt 0 ] && timeout $(( seconds + 120 )) ./build/cuda/app/train/longshot-train --out "$out/run" --time-limit "$seconds" \
  --batch 32 --preview-every 0 --save-every 1000 --export "$out/longshot-builtin.safetensors" ${TRAIN_FLAGS:-} \
  2>&1 | tee "$out/train_stdout.log" | grep -vE "^\[.*\] \[info\] step [0-9]*[1-9]0 " | tail -60
weights="$out/longshot-builtin.safetensors"
[ -f "$weights" ] || weights="$PWD/assets/longshot-builtin.safetensors"  # TRAIN_SECONDS=0: eval the shipped weights
if [ "$seeds" -gt 0 ] && [ -f "$weights" ]; then
  LONGSHOT_BUILTIN_WEIGHTS="$weights" timeout 150 ./build/cuda/app/longshot eval \
    --modes all --horizons 1,2,4 --seeds "$seeds" 2>"$out/eval.log" | tee "$out/eval_table.md"
  tail -5 "$out/eval.log"
fi

#!/usr/bin/env bash
# On the GPU machine (python torch, nvcc; header-only deps carried in .thirdparty/): build
# longshot-train and longshot, train the built-in model (resuming from RUN_DIR, or from RESUME_DIR's
# files when given), export fp16 weights, then run the eval table. Results land in $OUT; the
# checkpoint (4 files under 16 MB each) and the newest preview are copied to $OUT/run so a later call on a fresh machine can
# resume from it (carry it and set RESUME_DIR).
#   app/train/gpu_train.sh [TRAIN_SECONDS=420 (0 = no training; "fill" = until DEADLINE_S)] [EVAL_SEEDS=1 (0 = no eval)]
# Environment: TRAIN_FLAGS (extra longshot-train flags), RUN_DIR (default build/train-run, kept
# between calls on a warm machine), RESUME_DIR, DEADLINE_S (seconds after the script's start by
# which training must end, for "fill"; default 540), CUDA_ARCHS (default 90a), EXTRA_TARGETS (built
# in the background while training).
set -uo pipefail
start=$(date +%s)
seconds=${1:-420}
seeds=${2:-1}
out=${OUT:-$PWD/gpu-out}
run=${RUN_DIR:-$PWD/build/train-run}
mkdir -p "$run" "$out/run"
[ -n "${RESUME_DIR:-}" ] && cp "$RESUME_DIR"/*.safetensors "$run/" 2>/dev/null
export TORCH_CUDA_ARCH_LIST=9.0a  # not 9.0: that adds an sm_90 build without the Hopper kernel bodies
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee /tmp/gpu.txt
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a}" -DLONGSHOT_BUILD_TESTS=ON -DLONGSHOT_BUILD_BENCH=ON \
  >/tmp/build.log 2>&1 || { tail -40 /tmp/build.log; exit 1; }
cmake --build build/cuda --target longshot-train longshot -j16 >>/tmp/build.log 2>&1 \
  || { grep -E "error|Error" -A3 /tmp/build.log | head -60; exit 1; }
echo "built in $(( $(date +%s) - start )) s"
bg=
if [ -n "${EXTRA_TARGETS:-}" ]; then
  (nice cmake --build build/cuda --target $EXTRA_TARGETS -j6 >/tmp/build_extra.log 2>&1; echo "extra targets rc $?" >>/tmp/build_extra.log) &
  bg=$!
fi
[ "$seconds" = fill ] && seconds=$(( ${DEADLINE_S:-540} - ($(date +%s) - start) ))
if [ "$seconds" -gt 0 ]; then
  timeout $(( seconds + 60 )) ./build/cuda/app/train/longshot-train --out "$run" --time-limit "$seconds" \
    --batch 32 --preview-every 0 --save-every 1000 --export "$out/longshot-builtin.safetensors" ${TRAIN_FLAGS:-} \
    2>&1 | tee "$out/train_stdout.log" | tail -40
  # The device tool brings back a handful of files: the checkpoint and the newest preview.
  cp "$run"/*.safetensors "$out/run/" 2>/dev/null
  last=$(ls -t "$run"/preview_*_1.ppm 2>/dev/null | head -1); [ -n "$last" ] && cp "$last" "$out/run/"
fi
[ -n "$bg" ] && { wait "$bg"; tail -3 /tmp/build_extra.log; }
weights="$out/longshot-builtin.safetensors"
[ -f "$weights" ] || weights="$PWD/assets/longshot-builtin.safetensors"  # TRAIN_SECONDS=0: eval the shipped weights
if [ "$seeds" -gt 0 ] && [ -f "$weights" ]; then
  LONGSHOT_BUILTIN_WEIGHTS="$weights" timeout ${EVAL_TIMEOUT:-150} ./build/cuda/app/longshot eval \
    --modes all --horizons 1,2,4 --seeds "$seeds" 2>"$out/eval.log" | tee "$out/eval_table.md"
  tail -5 "$out/eval.log"
fi
echo "total $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# On the GPU machine: build bench_vae against python torch's CUDA LibTorch (as run_gpu_suite.sh
# does), then run the Wan2.1 VAE parity + speed script against diffusers (carried at
# .device/diffusers/src). Results: $OUT/wan_vae_parity.{json,md}; the build log stays in /tmp.
#   tests/gpu/wan_vae_parity.sh
set -euo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
export OUT="$out" TORCH_CUDA_ARCH_LIST=9.0a PYTHONUNBUFFERED=1
export DIFFUSERS_SRC=${DIFFUSERS_SRC:-$PWD/.device/diffusers/src}
export VAE_BUDGET_S=${VAE_BUDGET_S:-240}  # standalone: time for the extras too
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
# shellcheck source=tests/gpu/cuda_build.sh
. "$(dirname "$0")/cuda_build.sh"
cuda_build /tmp/vae_build.log bench_vae
echo "bench_vae built in $(( $(date +%s) - t0 )) s"
BENCH_VAE=build/cuda/tests/bench/bench_vae python3 tests/gpu/wan_vae_parity.py 2>&1 | tee "$out/wan_vae_parity.log" | grep -v "^\$ "

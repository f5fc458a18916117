#!/usr/bin/env bash
# One GPU-machine call for the real-Wan2.1 work: build (sm_90a only, to keep the call short), the
# GPU suite, then the parity scripts against diffusers / transformers, each under its own time
# limit, most important first. Everything lands in $OUT/results.tgz (the device tool brings back
# few files) plus the short logs printed here.
#   tests/gpu/run_release_checks.sh        (diffusers carried at .device/diffusers/src, .thirdparty carried)
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
res=/tmp/release-checks
mkdir -p "$out" "$res"
export PYTHONPATH=$PWD/.device/diffusers/src PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0a
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
# The device tool stops a command at 600 s: every step gets at most its cap and never more than
# what is left before DEADLINE seconds after the start.
deadline=$(( t0 + ${DEADLINE:-575} ))
cap() { local left=$(( deadline - $(date +%s) )); [ "$left" -lt "$1" ] && echo $(( left > 5 ? left : 5 )) || echo "$1"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$res/gpu.txt"
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
  -DLONGSHOT_BUILD_TESTS=ON -DLONGSHOT_BUILD_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90a >"$res/configure.log" 2>&1 \
  || { tail -40 "$res/configure.log"; }
grep -E "Longshot:" "$res/configure.log"
keep=-k; [ -f build/cuda/build.ninja ] && keep="-k 0"
cmake --build build/cuda --target ${TARGETS:-test_gpu longshot bench_vae} -j16 -- $keep >"$res/build.log" 2>&1 \
  || grep -E "error" -A3 "$res/build.log" | head -60
stamp "built"
finish() { tar czf "$out/results.tgz" -C "$res" . 2>/dev/null; stamp "done"; }
trap finish EXIT
if [ -x build/cuda/tests/test_gpu ]; then
  timeout $(cap 60) ./build/cuda/tests/test_gpu 2>&1 | tee "$res/test_gpu.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure" | head -30
  stamp "test_gpu"
  OUT=$res timeout $(cap ${PIPE_T:-110}) python3 tests/gpu/wan_pipeline_parity.py /tmp/wpp 2>&1 | tee "$res/wan_pipeline_parity.log" | tail -12
  rm -rf /tmp/wpp
  stamp "pipeline parity"
fi
if [ -x build/cuda/tests/bench/bench_vae ]; then
  OUT=$res BENCH_VAE=build/cuda/tests/bench/bench_vae timeout $(cap ${VAE_T:-110}) python3 tests/gpu/wan_vae_parity.py 2>&1 \
    | tee "$res/wan_vae_parity.log" | grep -v '^\$ ' | tail -25
  rm -rf /tmp/wan_vae_parity
  stamp "vae parity"
fi
if [ -x build/cuda/app/longshot ]; then
  OUT=$res timeout $(cap ${UMT5_T:-200}) python3 tests/gpu/umt5_parity.py ${UMT5_ARGS:---reps 2} 2>&1 | tee "$res/umt5_parity.log" | grep -v "^ *warn" | tail -25
  stamp "umt5 parity"
fi

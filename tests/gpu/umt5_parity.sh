#!/usr/bin/env bash
# On the GPU machine: build `longshot` (build/cuda, configured as run_gpu_suite.sh does when the
# folder is new), then tests/gpu/umt5_parity.py — umT5-XXL parity with transformers and the
# encoder's timings. Results in $OUT/umt5_parity.{json,md}. Extra arguments go to the script
# (e.g. --layers 12, --no-cpu, --no-extra). Optional stages (2-core timing, the .pth and fp8 layouts)
# are skipped once UMT5_BUDGET_S (default 200) seconds have passed; the python part is killed at
# UMT5_TIMEOUT (default 290) s, with the results of the stages done kept in the JSON.
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
export OUT=$out PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0a
t0=$(date +%s)
# shellcheck source=tests/gpu/cuda_build.sh
. "$(dirname "$0")/cuda_build.sh"
cuda_build /tmp/umt5_build.log longshot
echo "longshot built in $(( $(date +%s) - t0 )) s"
free -g | head -2; df -h /tmp | tail -1
timeout ${UMT5_TIMEOUT:-290} python3 tests/gpu/umt5_parity.py "$@" 2>&1 | tee "$out/umt5_parity.log" | grep -v "^ *warn"
rc=${PIPESTATUS[0]}
echo "umt5 parity: exit $rc, $(( $(date +%s) - t0 )) s in all"
exit $rc

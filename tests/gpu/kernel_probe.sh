#!/usr/bin/env bash
# Builds and runs tests/gpu/kernel_probe.cu on the GPU machine in about a minute (no LibTorch, no
# CMake): every kernel file compiles in parallel, then the probe checks and times both paths.
#   tests/gpu/kernel_probe.sh [--sass]   (--sass: count HGMMA / local-memory ops in the Hopper kernel)
set -euo pipefail
out=${OUT:-/tmp/probe-out}
obj=/tmp/probe-obj
mkdir -p "$out" "$obj"
flags=(-O3 -std=c++17 --expt-relaxed-constexpr -lineinfo -I. -gencode arch=compute_80,code=sm_80
       -gencode arch=compute_90a,code=sm_90a)
t0=$(date +%s)
pids=()
for f in engine/attention/cuda/*.cu tests/gpu/kernel_probe.cu; do
  nvcc "${flags[@]}" -Xptxas -v -c "$f" -o "$obj/$(basename "$f" .cu).o" >"$obj/$(basename "$f" .cu).log" 2>&1 &
  pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail = 1 ]; then grep -h -B2 -A6 "error" "$obj"/*.log | head -60; exit 1; fi
grep -h -A2 "sm90.*sm_90a" "$obj"/block_sparse_sm90_*.log | grep -E "registers|spill" | sort | uniq -c
nvcc "${flags[@]}" "$obj"/*.o -o "$obj/kernel_probe"
echo "built in $(( $(date +%s) - t0 )) s"
if [ "${1:-}" = --sass ]; then
  cuobjdump --dump-sass "$obj/block_sparse_sm90_bf16_d128.o" > "$out/sm90_bf16_d128.sass" 2>&1 || true
  echo "SASS: $(grep -c HGMMA "$out/sm90_bf16_d128.sass") HGMMA, $(grep -cE 'LDL|STL' "$out/sm90_bf16_d128.sass") LDL/STL"
fi
"$obj/kernel_probe" 2>&1 | tee "$out/kernel_probe.log"

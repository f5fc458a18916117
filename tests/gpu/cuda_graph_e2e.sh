#!/usr/bin/env bash
# On the GPU machine: `longshot generate --cuda-graphs` end to end (issue 22's CUDA graphs).
# Builds `longshot` (build/cuda, configured as run_gpu_suite.sh does when the folder is new),
# writes random text embeddings, then runs the Wan2.1-1.3B shape with random weights at 480x832 x
# 81 frames (32,760 tokens), 4 steps with guidance 5 (two forwards a step), --no-recall (the recall
# probe would keep the conditional forward eager), for dense and radial-ratio at keep_ratio 0.1:
# each eagerly and with --cuda-graphs. Prints each run's time line and the "cuda graphs:" log
# lines, and whether the frames are identical (cmp). The first step of a graph run pays the
# capture (one eager warm-up forward + the capture), so compare the s/step of longer runs with
# STEPS=N. Logs in $OUT/graph_*.log.
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
export OUT=$out
steps=${STEPS:-4}
t0=$(date +%s)
# shellcheck source=tests/gpu/cuda_build.sh
. "$(dirname "$0")/cuda_build.sh"
cuda_build /tmp/graph_build.log longshot
echo "longshot built in $(( $(date +%s) - t0 )) s"

ctx=/tmp/graph_ctx.safetensors
python3 - "$ctx" <<'EOF'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
save_file({"context": torch.randn(64, 4096, generator=g)}, sys.argv[1])
EOF

cli=./build/cuda/app/longshot
run() {  # name, extra flags...
  local name=$1; shift
  rm -rf "/tmp/graph_png_$name"
  "$cli" generate --prompt "graph check" --random-weights --text-embeddings "$ctx" --model wan2.1-t2v-1.3b \
    --size 832x480 --frames 81 --steps "$steps" --guidance 5 --device cuda --no-recall \
    --png-dir "/tmp/graph_png_$name" "$@" >"$out/graph_$name.log" 2>&1
  local rc=$?
  echo "== $name (exit $rc)"
  grep -E "^(time|attention|mean sparsity)|cuda graphs|error" "$out/graph_$name.log"
  return $rc
}
same() { if cmp -s <(cat /tmp/graph_png_$1/*.png) <(cat /tmp/graph_png_$2/*.png); then echo "frames: $1 = $2 (identical)"; else echo "frames: $1 != $2 (DIFFERENT)"; fi; }

run dense_eager --mode dense
run dense_graph --mode dense --cuda-graphs
same dense_eager dense_graph
run radial_eager --mode radial-ratio --param keep_ratio=0.1
run radial_graph --mode radial-ratio --param keep_ratio=0.1 --cuda-graphs
same radial_eager radial_graph
run dfs_graph --mode dfs-adaptive --cuda-graphs  # a Q/K-scored mode: eager, with the reason logged
echo "cuda graph e2e: $(( $(date +%s) - t0 )) s in all"

#!/usr/bin/env bash
# Issue 25's acceptance on the built-in model: for each motion regime, N held-out world captions
# (the router's held-out seed) generated dense, with a mode's defaults and with --regime auto (the
# router + the model's shipped lookup table). Per setting: PSNR against the dense video (ffmpeg's
# psnr filter on the PNG frames: global MSE over all frames and channels) and the mean sparsity the
# summary prints; per regime and horizon, the means. Results: $OUT/regimes.md and $OUT/runs.tsv.
#
# usage: tools/eval_regimes.sh [--bin PATH] [--out DIR] [--per-regime N] [--horizons "1 4"]
#                              [--size PX] [--steps S] [--mode M] [--jobs J] [--device auto|cpu|cuda]
#                              [--calibration TABLE.json] (default: the model's shipped table; a
#                              version-2 table applies its 1x or 4x horizon by the job's frame count)
#                              [--block B] (mask block, default 128; the shipped table was tuned at
#                              32 px with block 32 = 2 blocks per frame, as 64 px with block 128)
#                              [--report-only] (remake runs.tsv / regimes.md from $OUT/runs, no generation)
#                              [--keep] (skip a generation whose frames and summary are already in
#                              $OUT/runs from the same command line, kept in <run>.cmd: an interrupted
#                              run resumes, more prompts extend a smaller one; another binary path,
#                              size, block, table… makes it again)
# PSNR: ffmpeg if installed, else python3 tools/psnr_frames.py (the same figure).
# GPU machine (lead): tools/eval_regimes.sh --bin build/cuda/app/longshot --out "$OUT" --jobs 8
set -euo pipefail

BIN=build/release/app/longshot
OUT=${OUT:-/tmp/longshot-eval-regimes}
PER=12
HORIZONS="1 4"
SIZE=64
STEPS=20
MODE=dynamicrad
JOBS=2
DEVICE=auto
CALIBRATION=
BLOCK=128
TRAIN_FRAMES=32
REPORT_ONLY=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --per-regime) PER=$2; shift 2 ;;
    --horizons) HORIZONS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --calibration) CALIBRATION=$(realpath "$2"); shift 2 ;;
    --block) BLOCK=$2; shift 2 ;;
    --report-only) REPORT_ONLY=1; shift ;;
    --keep) KEEP=1; shift ;;
    *) echo "eval_regimes.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
# PSNR: ffmpeg's psnr filter when ffmpeg is installed, else tools/psnr_frames.py (the same figure,
# checked equal to 6 decimals on these PNGs; the GPU machine has python3 + torchvision, maybe no ffmpeg).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# PSNR_TOOL=ffmpeg|python3 in the environment forces one.
if [ -n "${PSNR_TOOL:-}" ]; then :
elif command -v ffmpeg >/dev/null; then PSNR_TOOL=ffmpeg
elif command -v python3 >/dev/null; then PSNR_TOOL=python3
else echo "eval_regimes.sh: needs ffmpeg or python3 for the PSNR" >&2; exit 2; fi
case "$PSNR_TOOL" in ffmpeg|python3) ;; *) echo "eval_regimes.sh: PSNR_TOOL must be ffmpeg or python3, got '$PSNR_TOOL'" >&2; exit 2 ;; esac
[ -x "$BIN" ] || { echo "eval_regimes.sh: no longshot binary at '$BIN' (--bin)" >&2; exit 2; }
mkdir -p "$OUT/runs"
# The router's held-out captions (pipeline::train_world_router trains on seed 0, holds out 0x51f15e).
[ "$REPORT_ONLY" = 1 ] || "$BIN" calibrate --world-prompts "$PER" --seed 5370206 > "$OUT/prompts.tsv"

# One generation: id, horizon, setting → PNG frames + its summary.
run_one() {
  local id=$1 horizon=$2 setting=$3 prompt=$4
  local dir="$OUT/runs/$id-h$horizon-$setting" frames=$((TRAIN_FRAMES * horizon))
  local extra=()
  case "$setting" in
    dense) extra=(--mode dense) ;;
    defaults) extra=(--mode "$MODE") ;;
    routed) extra=(--mode "$MODE" --regime auto ${CALIBRATION:+--calibration "$CALIBRATION"}) ;;
  esac
  local cmd=("$BIN" generate --prompt "$prompt" --frames "$frames" --size "${SIZE}x${SIZE}" --steps "$STEPS" --seed "$id"
    --device "$DEVICE" --block "$BLOCK" "${extra[@]}" --png-dir "$dir")
  # --keep: a finished run (its summary names the frames it wrote) of the same command is not made again.
  if [ "$KEEP" = 1 ] && grep -q '^wrote ' "$dir.summary" 2>/dev/null && [ -d "$dir" ] &&
     [ "$(cat "$dir.cmd" 2>/dev/null)" = "${cmd[*]}" ]; then return 0; fi
  rm -rf "$dir"
  printf '%s' "${cmd[*]}" > "$dir.cmd"
  "${cmd[@]}" > "$dir.summary" 2> "$dir.log" || { echo "FAILED $dir (see $dir.log)" >&2; return 1; }
}
export -f run_one
export OUT TRAIN_FRAMES SIZE STEPS MODE BIN DEVICE CALIBRATION BLOCK KEEP

i=0
: > "$OUT/jobs.txt"
while IFS=$'\t' read -r regime prompt; do
  for h in $HORIZONS; do
    for s in dense defaults routed; do printf '%s\0%s\0%s\0%s\0' "$i" "$h" "$s" "$prompt" >> "$OUT/jobs.txt"; done
  done
  i=$((i + 1))
done < "$OUT/prompts.tsv"
if [ "$REPORT_ONLY" = 0 ]; then
  START=$(date +%s)
  # A failed generation is named (FAILED …) but does not stop the others or the report: its row
  # gets empty figures, and --report-only remakes the tables once it has been rerun.
  xargs -0 -n 4 -P "$JOBS" bash -c 'run_one "$@"' _ < "$OUT/jobs.txt" || echo "eval_regimes.sh: some generations failed (FAILED lines above)" >&2
  echo "generated in $(( $(date +%s) - START )) s" >&2
fi

psnr() {  # dense dir, other dir → PSNR of the global MSE
  if [ "$PSNR_TOOL" = ffmpeg ]; then
    ffmpeg -nostdin -hide_banner -nostats -i "$1/frame_%05d.png" -i "$2/frame_%05d.png" -lavfi psnr -f null - 2>&1 |
      sed -n 's/.*average:\([0-9.inf]*\).*/\1/p' | tail -1
  else
    python3 "$HERE/psnr_frames.py" "$1" "$2"
  fi
}
# Every PSNR first, JOBS at a time, each into "<run>.psnr" (python3 pays a torch import per pair:
# 216 pairs one by one would take minutes on the GPU machine); a failed run's file is empty.
psnr_to_file() { psnr "$1" "$2" > "$2.psnr" 2> "$2.psnr.log" || : > "$2.psnr"; }
export -f psnr psnr_to_file
export PSNR_TOOL HERE
: > "$OUT/psnr_jobs.txt"
i=0
while IFS=$'\t' read -r regime prompt; do
  for h in $HORIZONS; do
    for s in defaults routed; do printf '%s\0%s\0' "$OUT/runs/$i-h$h-dense" "$OUT/runs/$i-h$h-$s" >> "$OUT/psnr_jobs.txt"; done
  done
  i=$((i + 1))
done < "$OUT/prompts.tsv"
xargs -0 -n 2 -P "$JOBS" bash -c 'psnr_to_file "$@"' _ < "$OUT/psnr_jobs.txt" || true
sparsity() { sed -n 's/^mean sparsity *\([0-9.]*\)%.*/\1/p' "$1.summary"; }
regime_of() { sed -n 's/^regime *\([a-z]*\) (auto.*/\1/p' "$1.summary"; }

printf 'regime\tprompt_id\thorizon\tsetting\tpsnr_db\tsparsity_pct\trouted_to\n' > "$OUT/runs.tsv"
i=0
while IFS=$'\t' read -r regime prompt; do
  for h in $HORIZONS; do
    d="$OUT/runs/$i-h$h-dense"
    for s in defaults routed; do
      x="$OUT/runs/$i-h$h-$s"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$regime" "$i" "$h" "$s" "$(cat "$x.psnr" 2>/dev/null)" "$(sparsity "$x")" \
        "$( [ "$s" = routed ] && regime_of "$x" || echo -)" >> "$OUT/runs.tsv"
    done
  done
  i=$((i + 1))
done < "$OUT/prompts.tsv"

# Means per regime, horizon and setting; router accuracy on these prompts.
awk -F'\t' -v tool="$PSNR_TOOL" 'NR > 1 {
    if ($5 == "" || $6 == "") { missing++; next }  # a failed or missing generation: not averaged
    k = $1 "\t" $3 "\t" $4; n[k]++; p[k] += ($5 == "inf" ? 100 : $5); sp[k] += $6
    if ($4 == "routed") { tot[$1]++; ok[$1] += ($7 == $1) }
    # Per prompt, routed against the defaults of the same prompt and horizon (the row before it).
    pk = $1 "\t" $2 "\t" $3
    if ($4 == "defaults") { dp[pk] = ($5 == "inf" ? 100 : $5); ds[pk] = $6 }
    else if ($4 == "routed" && (pk in dp)) {
      c = $1 "\t" $3; both[c]++; bp[c] += (($5 == "inf" ? 100 : $5) > dp[pk]); bs[c] += ($6 >= ds[pk])
    }
  }
  END {
    print "| regime | horizon | setting | runs | PSNR vs dense (dB) | mean sparsity (%) | routed: higher PSNR / sparsity >= defaults (prompts) |"
    print "|---|---|---|---|---|---|---|"
    for (k in n) {
      split(k, a, "\t"); win = ""
      if (a[3] == "routed") { c = a[1] "\t" a[2]; win = sprintf("%d / %d of %d", bp[c], bs[c], both[c]) }
      printf "| %s | %s× | %s | %d | %.2f | %.2f | %s |\n", a[1], a[2], a[3], n[k], p[k] / n[k], sp[k] / n[k], win | "sort"
    }
    close("sort")
    print ""
    for (r in tot) printf "router on these prompts, %s: %d of %d routed to %s\n", r, ok[r], tot[r], r
    printf "PSNR by %s%s\n", tool, (missing ? sprintf("; %d runs without figures left out (see runs.tsv)", missing) : "")
  }' "$OUT/runs.tsv" > "$OUT/regimes.md"
cat "$OUT/regimes.md"

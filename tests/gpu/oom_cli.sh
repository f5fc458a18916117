#!/usr/bin/env bash
# On the GPU machine: out of GPU memory mid-job through `longshot generate` (issue 20, issue 27).
# The tiny model at 256x256 x 64 frames under a 128 MiB cap fails in its first denoising step (its
# numbers: tests/gpu/test_oom_gpu.cpp): exit 1, the message, and nothing left in the output folder
# (no MP4 or PNG folder, no *.tmp-*). Then the control: 16 frames without a cap writes the video
# (an MP4, or PNGs where the build has no FFmpeg).
# Needs build/cuda/app/longshot (tests/gpu/run_gpu_suite.sh or offload_e2e.sh builds it).
# Prints PASS or FAIL lines; exits non-zero on any FAIL.
set -uo pipefail
cli=${LONGSHOT:-./build/cuda/app/longshot}
[ -x "$cli" ] || { echo "FAIL: no $cli (build it: cmake --build build/cuda --target longshot)"; exit 2; }
dir=$(mktemp -d /tmp/longshot_oom_cli.XXXXXX)   # the output folder: must stay empty
logs=$(mktemp -d /tmp/longshot_oom_logs.XXXXXX)
trap 'rm -rf "$dir" "$logs"' EXIT
fails=0
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

args=(generate --model tiny --prompt "a red ball" --size 256x256 --steps 2 --device cuda --no-recall)
# The GPU machine's build has no FFmpeg (no apt there): then the frames go to a PNG folder inside
# the output folder, which must not even be created by the failed run.
if "$cli" --version 2>/dev/null | grep -qi "ffmpeg: *off\|without ffmpeg" || ! ldd "$cli" | grep -q libavcodec; then
  dest=(--png-dir "$dir/frames"); made() { [ -s "$dir/frames/frame_0000.png" ] || ls "$dir/frames"/*.png >/dev/null 2>&1; }
else
  dest=(--out "$dir/c.mp4"); made() { [ -s "$dir/c.mp4" ]; }
fi
"$cli" "${args[@]}" --frames 64 --max-gpu-memory 128M "${dest[@]}" \
  >"$logs/out.txt" 2>"$logs/err.txt"
rc=$?
err=$(cat "$logs/err.txt")
echo "capped run: exit $rc; stderr:"; echo "$err" | sed 's/^/  | /'
check "exit 1" '[ "$rc" = 1 ]'
check "the message" 'grep -qF "longshot generate: error: out of GPU memory during denoising step 1 of 2 at 256x256, 64 frames (--max-gpu-memory 128 MiB): " <<<"$err"'
check "no backtrace" '! grep -q "frame #" <<<"$err"'
check "output folder empty" '[ -z "$(ls -A "$dir")" ]'

"$cli" "${args[@]}" --frames 16 "${dest[@]}" >"$logs/control.txt" 2>&1
rc=$?
echo "control run: exit $rc"; grep -E "^(peak memory|wrote)|error" "$logs/control.txt" | sed 's/^/  | /'
check "control without a cap: exit 0" '[ "$rc" = 0 ]'
check "control wrote the video (${dest[0]})" made
[ "$fails" = 0 ] && echo "oom_cli: all passed" || echo "oom_cli: $fails failed"
exit $((fails > 0))

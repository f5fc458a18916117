#!/usr/bin/env bash
# Device call: the oracle fixtures (CPU, python), then a check that the GPU build configures and
# builds from a fresh tree with the carried .thirdparty (tools/make_thirdparty.sh).
set -uo pipefail
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
export PYTHONPATH=$PWD/.device/diffusers/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, transformers, diffusers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'diffusers', diffusers.__version__)"
t0=$(date +%s)
python3 tools/oracle_fixtures.py /tmp/fx 2>&1 | tail -30 && tar czf "$out/fixtures.tgz" -C /tmp/fx .
echo "fixtures in $(( $(date +%s) - t0 )) s"
if [ "${1:-}" = "--build" ]; then
  timeout 330 bash tests/gpu/run_gpu_suite.sh --no-bench 2>&1 | tail -25
fi

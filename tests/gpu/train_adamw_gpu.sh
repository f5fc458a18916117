#!/usr/bin/env bash
# On the GPU machine (LibTorch 2.x from python torch): builds the trainer's library, its tests and
# longshot-train against that LibTorch, runs the train tests (CPU cases; they check that
# torch::optim::AdamW decays matrices only, agrees with the earlier hand-written AdamW, and resumes
# to the same next step), then trains the built-in model 20 steps on the GPU and resumes it to 25,
# so the AdamW state round trip runs on CUDA tensors too. Prints the test summary and the loss lines.
#   tests/gpu/train_adamw_gpu.sh          (after tests/gpu/run_gpu_suite.sh, build/cuda is reused)
set -uo pipefail
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
t0=$(date +%s)
if [ ! -f build/cuda/CMakeCache.txt ]; then
  export TORCH_CUDA_ARCH_LIST="8.0;9.0a"
  prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cmake --preset cuda -DCMAKE_PREFIX_PATH="$prefix" -DLONGSHOT_THIRD_PARTY_DIR="$PWD/.thirdparty" \
    -DLONGSHOT_CUDA_ARCHS=ci -DLONGSHOT_BUILD_TESTS=ON >/tmp/train_build.log 2>&1 || { tail -40 /tmp/train_build.log; exit 1; }
fi
cmake --build build/cuda --target test_train longshot-train -j16 >>/tmp/train_build.log 2>&1 \
  || { grep -E "error|Error" -A3 /tmp/train_build.log | head -60; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
python3 -c 'import torch; print("LibTorch", torch.__version__)'
LONGSHOT_THREADS=4 LONGSHOT_LOG=warn build/cuda/tests/test_train --gtest_output=json:"$out/test_train.json" 2>&1 \
  | grep -E "^\[  (PASSED|FAILED)|^\[  FAILED|Failure" | tee "$out/test_train.txt"
run=/tmp/longshot_adamw_gpu
rm -rf "$run"
common="--out $run --batch 4 --frames 8 --size 32 --preview-every 0 --log-every 5 --device cuda"
build/cuda/app/train/longshot-train $common --steps 20 2>&1 | grep -E "step|error" | tail -6 | tee "$out/train_adamw.txt"
build/cuda/app/train/longshot-train $common --steps 25 2>&1 | grep -E "resumed|step|error" | tail -4 | tee -a "$out/train_adamw.txt"
echo "total $(( $(date +%s) - t0 )) s"

#!/usr/bin/env bash
# Makes .thirdparty/: the header-only dependencies (spdlog, fmt, nlohmann-json) and GoogleTest's
# sources, copied from Debian 12's own packages, for a machine without apt (the GPU machine, which
# has python torch's LibTorch and nvcc but no Debian packages). Run here, on Debian, as root or
# after `bash packaging/setup.sh`; the folder then travels with the tree (the device tool's carry).
#   bash tools/make_thirdparty.sh [DEST]        (default: .thirdparty in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.thirdparty}
need=(/usr/include/spdlog/spdlog.h /usr/include/fmt/format.h /usr/include/nlohmann/json.hpp
      /usr/src/googletest/CMakeLists.txt)
for f in "${need[@]}"; do
  [ -e "$f" ] || { echo "make_thirdparty: $f is missing; run: sudo bash packaging/setup.sh" >&2; exit 1; }
done
rm -rf "$dest"
mkdir -p "$dest/include"
cp -r /usr/include/spdlog /usr/include/fmt /usr/include/nlohmann "$dest/include/"
cp -r /usr/src/googletest "$dest/googletest"
# SentencePiece (not header-only) for the tokenizer, when its Debian package is installed: the
# headers and the shared library, so the GPU machine can build the tokenizer too.
if [ -e /usr/include/sentencepiece_processor.h ]; then
  mkdir -p "$dest/lib"
  cp /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h "$dest/include/" 2>/dev/null || true
  cp -P /usr/lib/x86_64-linux-gnu/libsentencepiece.so* "$dest/lib/" 2>/dev/null || true
fi
echo "make_thirdparty: wrote $dest ($(du -sh "$dest" | cut -f1)): spdlog $(grep -m1 -o 'SPDLOG_VER_MINOR [0-9]*' /usr/include/spdlog/version.h), fmt, nlohmann-json, googletest"

#!/usr/bin/env bash
# Installs the Debian 12 packages Longshot builds and tests with. Idempotent: packages already
# present are left alone, and nothing else on the machine is changed. Run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ninja-build   # toolchain
  libtorch-dev                                    # LibTorch (CPU) for the engine
  libopenblas0-openmp                             # fast BLAS for LibTorch's CPU matmuls (netlib's is ~30x slower)
  libspdlog-dev libfmt-dev nlohmann-json3-dev     # logging, JSON (presets, traces)
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev  # MP4 export
  libpng-dev                                      # PNG frame export
  qt6-base-dev libqt6opengl6-dev libgl-dev libegl-dev libimgui-dev  # the studio
  libsentencepiece-dev                            # the umT5 tokenizer (Wan2.1 prompts)
  libgtest-dev libgmock-dev libbenchmark-dev      # tests and benchmarks
  sentencepiece                                   # spm_train / spm_encode: the tokenizer tests' oracle
  ffmpeg                                          # ffprobe: the tests read MP4 recipes as users' tools do
  xvfb xauth                                      # UI tests without a display
  qt6-qpa-plugins libgl1-mesa-dri                 # Qt's xcb platform + Mesa llvmpipe GL for that test
  dpkg-dev file                                   # CPack .deb packaging
  clang-14 libclang-rt-14-dev                     # libFuzzer smoke runs of the readers (fuzz/, ~37 MB)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "longshot setup: all ${#packages[@]} packages already installed, nothing to do."
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "longshot setup: these packages are missing: ${missing[*]}" >&2
  echo "longshot setup: run this script as root (e.g. sudo bash packaging/setup.sh) to install them." >&2
  exit 1
fi
echo "longshot setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "longshot setup: done."

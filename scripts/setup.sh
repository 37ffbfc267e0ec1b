#!/usr/bin/env bash
# Sets up a fresh Debian machine for vcpclip and builds it (Release). Idempotent.
#   scripts/setup.sh            # packages + vocab + build into ./build
#   BUILD_DIR=b scripts/setup.sh
#   VCPCLIP_NO_APT=1 scripts/setup.sh   # skip the package step (packages already present)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}

PKGS=(build-essential cmake ccache libtorch-dev libopencv-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev
      libspdlog-dev libgtest-dev libgloo-dev libopenblas0-openmp libboost-dev libcpp-httplib-dev pkg-config
      python3 python3-torch python3-numpy python3-scipy python3-sklearn python3-pil)

. scripts/apt_install.sh
apt_install_missing setup "${PKGS[@]}"

# Debian's LibTorch uses whichever libblas.so.3 is selected; the reference BLAS is ~20x slower.
if command -v update-alternatives >/dev/null; then
  ob=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas | head -n1 || true)
  if [ -n "$ob" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$ob" >/dev/null || true
    ol=$(update-alternatives --list liblapack.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas | head -n1 || true)
    [ -n "$ol" ] && $SUDO update-alternatives --set liblapack.so.3-x86_64-linux-gnu "$ol" >/dev/null || true
  fi
fi

# The CLIP BPE vocabulary (never committed): from ../shared/assets when present, else OpenAI's repo.
VOCAB=bpe_simple_vocab_16e6.txt.gz
SHA=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
mkdir -p assets
if [ ! -f "assets/$VOCAB" ] || ! echo "$SHA  assets/$VOCAB" | sha256sum -c --status; then
  if [ -f "$ROOT/../shared/assets/$VOCAB" ]; then
    cp "$ROOT/../shared/assets/$VOCAB" "assets/$VOCAB"
  else
    curl -fsSL -o "assets/$VOCAB" "https://github.com/openai/CLIP/raw/main/clip/$VOCAB"
  fi
  echo "$SHA  assets/$VOCAB" | sha256sum -c --status || { echo "setup: SHA-256 mismatch for assets/$VOCAB"; exit 1; }
fi

# ccache across clones/build folders (the precompiled header needs the pch sloppiness).
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "setup: built $BUILD_DIR/vcpclip"

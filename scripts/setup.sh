#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
#
# Installs what building and testing attnc need (Debian packages, only those
# missing), then configures and builds into $ATTNC_BUILD_DIR (default build/).
#
#   scripts/setup.sh                 # Release build in build/
#   ATTNC_SANITIZE=1 scripts/setup.sh   # ASan+UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(cmake ninja-build ccache python3 llvm-22-dev libmlir-22-dev mlir-22-tools
          llvm-22-tools clang-22 libclang-rt-22-dev libgtest-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

SANITIZE=OFF
BUILD_DIR=${ATTNC_BUILD_DIR:-build}
if [ "${ATTNC_SANITIZE:-0}" = 1 ]; then
  SANITIZE=ON
  BUILD_DIR=${ATTNC_BUILD_DIR:-build-asan}
fi
WERROR=${ATTNC_WERROR:-ON}

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -G Ninja -S . -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DATTNC_WERROR="$WERROR" -DATTNC_SANITIZE="$SANITIZE"
fi
ln -sf "$BUILD_DIR/compile_commands.json" compile_commands.json 2>/dev/null || true
start=$(date +%s)
ninja -C "$BUILD_DIR"
echo "setup: built $BUILD_DIR in $(( $(date +%s) - start )) s"

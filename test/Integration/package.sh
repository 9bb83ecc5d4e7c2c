#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# Installs attnc into a temporary prefix, builds examples/host against it
# with find_package(attnc), and runs the JIT example on a spec.
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$src/examples/host" -B "$work/host" -G Ninja -DCMAKE_CXX_COMPILER=clang++-22 \
  -Dattnc_DIR="$work/prefix/lib/cmake/attnc" > "$work/configure.log"
cmake --build "$work/host" > "$work/build.log"
ATTNC_CACHE_DIR=off "$work/host/jit_example" "$src/examples/sliding_window.attn"

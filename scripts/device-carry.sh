#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
#
# Fills .device-carry/ (git-ignored) with what the GPU machine needs to run
# bench/run_*_on_device.sh: Debian's LLVM/MLIR 22 runtime packages (that
# machine has no LLVM) and stripped copies of the tools and libraries from
# build/. Name `.device-carry` in the device tool's `carry`; the whole
# working tree travels within 64 MiB, so this stays lean.
#
#   scripts/device-carry.sh            # after ninja -C build
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${ATTNC_BUILD_DIR:-build}
C=.device-carry
mkdir -p $C/bin $C/lib
if ! ls $C/libllvm22_*.deb $C/libmlir-22_*.deb $C/libz3-4_*.deb >/dev/null 2>&1; then
  (cd $C && apt-get download libllvm22 libmlir-22 libz3-4)
fi
for tool in attnc attnc-conformance attnc-cpu-bench attnc-kv-bench attnc-paged-decode-bench; do
  [ -e $BUILD/bin/$tool ] && strip -o $C/bin/$tool $BUILD/bin/$tool
done
# The unit tests, for the ones that need a GPU (skipped here).
[ -e $BUILD/test/Unit/attnc-unittests ] && strip -o $C/bin/attnc-unittests $BUILD/test/Unit/attnc-unittests
for lib in $BUILD/lib/libattnc-gpu-bench.so $BUILD/lib/libattnc.so*; do
  [ -e "$lib" ] || continue
  if [ -L "$lib" ]; then
    cp -P "$lib" $C/lib/
  else
    strip -o $C/lib/$(basename "$lib") "$lib"
  fi
done
# The CUDA AOT example (examples/host/aot_cuda.c), built here against the
# toolkit's driver stub, with the cubin it loads.
if [ -e /usr/local/cuda/include/cuda.h ]; then
  mkdir -p $C/aot
  $BUILD/bin/attnc examples/causal.attn --emit=cubin -o $C/aot/causal.cubin
  $BUILD/bin/attnc examples/causal.attn --target=cuda --emit=header -o $C/aot/causal_cuda.h
  cc -O2 -I $C/aot examples/host/aot_cuda.c -I/usr/local/cuda/include \
    -L/usr/local/cuda/lib64/stubs -lcuda -lm -o $C/aot/aot_cuda
fi
du -sh $C | sed 's/^/device carry: /'

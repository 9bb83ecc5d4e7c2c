#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# One thread of an AOT dense f32 object (bench/aot_dense.c), D = 64 and 128,
# with the instructions --cpu gives (default: this host) and, in alternating
# processes, with ATTNC_CPU_FAST_EXP=0 (upstream's polynomial exp).
#   BIN=build/bin CPU=native ROUNDS=2 bash bench/aot_bench.sh
set -euo pipefail
BIN=${BIN:-build/bin}
CC=${CC:-clang-22}
SRC=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
for d in 64 128; do
  spec=(-D B=1 -D H=2 -D S=4096 -D D=$d --dtype=f32 --cpu=${CPU:-native})
  mkdir -p "$DIR/$d"
  "$BIN/attnc" "$SRC/specs/dense.attn" "${spec[@]}" --emit=header -o "$DIR/$d/dense.h"
  "$BIN/attnc" "$SRC/specs/dense.attn" "${spec[@]}" --emit=obj -o "$DIR/$d/fast.o"
  ATTNC_CPU_FAST_EXP=0 "$BIN/attnc" "$SRC/specs/dense.attn" "${spec[@]}" --emit=obj -o "$DIR/$d/poly.o"
  for e in fast poly; do
    "$CC" -O2 -DHEADS=2 -DDIM=$d -I "$DIR/$d" "$SRC/aot_dense.c" "$DIR/$d/$e.o" -lm -o "$DIR/$d/$e"
  done
done
for r in $(seq "${ROUNDS:-2}"); do
  for d in 64 128; do
    for e in poly fast; do
      printf '%-5s ' "$e"
      "$DIR/$d/$e"
    done
  done
done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# Cold JIT times of example specs: `attnc X.attn --run` in a new cache
# directory (when the first kernel, the quick tier, was ready, and when the
# optimized one was), the same with ATTNC_CPU_TIERS=0 (one tier), and a
# second process that loads the object from the disk cache.
#   BIN=build/bin SPECS="dense causal document" bash bench/cold_jit.sh
BIN=${BIN:-build/bin}
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
for s in ${SPECS:-dense causal sliding_window document gated alibi softcap gqa}; do
  for r in 1 2; do
    rm -rf "$CACHE"/*
    out=$(ATTNC_CACHE_DIR=$CACHE $BIN/attnc examples/$s.attn --run 2>&1)
    first=$(echo "$out" | grep -o "quick tier) after [0-9.]* ms" | grep -o "[0-9.]* ms")
    final=$(echo "$out" | grep -o "compile [0-9.]* ms" | head -1 | grep -o "[0-9.]* ms")
    rm -rf "$CACHE"/*
    one=$(ATTNC_CPU_TIERS=0 ATTNC_CACHE_DIR=$CACHE $BIN/attnc examples/$s.attn --run 2>&1 |
          grep -o "compile [0-9.]* ms" | head -1 | grep -o "[0-9.]* ms")
    cached=$(ATTNC_CACHE_DIR=$CACHE $BIN/attnc examples/$s.attn --run 2>&1 |
             grep -o "compile [0-9.]* ms" | head -1 | grep -o "[0-9.]* ms")
    echo "$s round $r: tiers first $first, final $final; one tier $one; cached $cached"
  done
done

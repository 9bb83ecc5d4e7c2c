#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
#
# The README's main job: set up, build, then compile an example attention
# program and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${ATTNC_BUILD_DIR:-build}
echo "== attnc-opt: canonicalize and schedule examples/mlir/causal_gqa.mlir"
"$BUILD_DIR/bin/attnc-opt" examples/mlir/causal_gqa.mlir --canonicalize --attn-select-schedule

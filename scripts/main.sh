#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
#
# The README's main job: set up, build, then compile an example spec with
# attnc and run it on the CPU against the f64 reference (error and time).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${ATTNC_BUILD_DIR:-build}
SPEC=${1:-examples/sliding_window.attn}
echo "== attnc $SPEC --target=cpu --run -D S=512"
"$BUILD_DIR/bin/attnc" "$SPEC" --target=cpu --run -D S=512

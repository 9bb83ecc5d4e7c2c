#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
#
# Sets up, builds and runs every test (lit suites, unit tests, fuzzing,
# soundness checks) through ctest, and ends with one summary line.
#
#   scripts/test.sh                     # the README's test command; CI runs it
#   ATTNC_SANITIZE=1 scripts/test.sh    # the same under ASan+UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${ATTNC_BUILD_DIR:-build}
[ "${ATTNC_SANITIZE:-0}" = 1 ] && BUILD_DIR=${ATTNC_BUILD_DIR:-build-asan}
# allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons its slabs in our
# instrumented code but not in the uninstrumented libMLIR that shares them,
# which would report false use-after-poison errors.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allow_user_poisoning=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 "$@"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# On the GPU machine: the paged decode bench (bench/decode_vs_torch.py,
# without anchors) once per configuration of the decode kernel's tuning
# knobs (docs/kv-cache.md), each in its own process, the list twice in
# alternating order, so that the machine's drift shows in the spread.
#   bash bench/decode_knobs.sh LIB "NAME:VAR=V,VAR=V" ... [-- bench args]
# e.g. bash bench/decode_knobs.sh .device-carry/lib/libattnc-gpu-bench.so \
#        "tk16:ATTNC_DECODE_TK=16" "tk32:ATTNC_DECODE_TK=32" -- --formats q4
set -uo pipefail
LIB=$1
shift
configs=()
while [[ $# -gt 0 && $1 != -- ]]; do
  configs+=("$1")
  shift
done
[[ ${1:-} == -- ]] && shift
run() {
  local name=${1%%:*} vars=${1#*:}
  shift
  local envs=()
  [[ -n $vars ]] && IFS=, read -ra envs <<<"$vars"
  env "${envs[@]}" timeout 240 python3 bench/decode_vs_torch.py --lib "$LIB" --no-anchors "$@" 2>&1 |
    grep -E '^attnc|error|Error' | sed "s/^/$name: /"
}
for pass in 1 2; do
  order=("${configs[@]}")
  if [[ $pass == 2 ]]; then
    order=()
    for ((i = ${#configs[@]} - 1; i >= 0; i--)); do order+=("${configs[i]}"); done
  fi
  for c in "${order[@]}"; do
    run "$c" "$@"
  done
done

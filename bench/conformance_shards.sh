#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
#
# attnc-conformance over many spec files in parallel shards (a process and a
# kernel cache each): on the GPU machine the run is bound by NVRTC on its 16
# cores, and four shards took the sm_90a suite from 270 s to 35 s. Prints
# every line that is not a PASS, then one total; exits 1 when a case fails
# or a shard does not finish (its time limit, a crash).
#
#   bench/conformance_shards.sh SHARDS SECONDS CONFORMANCE [options --] FILES...
#   bench/conformance_shards.sh 8 200 .device-carry/bin/attnc-conformance \
#       --target=cuda --cuda-arch=sm_90a -- examples/*.attn test/Integration/cpu/Inputs/*.attn
set -uo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 SHARDS SECONDS CONFORMANCE [options --] FILES..." >&2
  exit 2
fi
shards=$1 limit=$2 tool=$3
shift 3
opts=()
if [[ " $* " == *" -- "* ]]; then
  while [[ $1 != -- ]]; do
    opts+=("$1")
    shift
  done
  shift
fi
files=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pids=()
for ((s = 0; s < shards; ++s)); do
  part=()
  for ((n = s; n < ${#files[@]}; n += shards)); do
    part+=("${files[n]}")
  done
  [[ ${#part[@]} -eq 0 ]] && continue
  ATTNC_CACHE_DIR="$work/cache$s" timeout "$limit" "$tool" "${opts[@]}" "${part[@]}" \
    > "$work/out$s" 2>&1 &
  pids+=("$!:$s")
done
bad=0
for entry in "${pids[@]}"; do
  pid=${entry%%:*} s=${entry##*:}
  wait "$pid"
  rc=$?
  # attnc-conformance exits 1 on a failed case; anything else is a shard
  # that did not finish.
  if [[ $rc -ne 0 && $rc -ne 1 ]]; then
    echo "shard $s did not finish (exit $rc)"
    bad=1
  fi
done
cat "$work"/out* | grep -v '^PASS' | grep -v ' passed, ' || true
passed=$(cat "$work"/out* | grep -c '^PASS')
failed=$(cat "$work"/out* | grep -c '^FAIL')
echo "$passed passed, $failed failed in $shards shards"
[[ $failed -eq 0 && $bad -eq 0 ]]

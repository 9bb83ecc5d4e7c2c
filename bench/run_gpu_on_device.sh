#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# On the GPU machine: unpack the carried LLVM/MLIR runtime, check every
# example's CUDA kernel against the f64 reference, run compute-sanitizer on
# a few, time the JIT, then compare with PyTorch (SDPA FlashAttention-2 and
# cuDNN, FlexAttention) in one process. Binaries come in .device-carry/bin,
# libattnc and the bench library in .device-carry/lib.
#   bash bench/run_gpu_on_device.sh [check|bench|decode|random|all] [bench args...]
set -uo pipefail
OUT=${OUT:-/tmp/out}
WHAT=${1:-all}
shift || true
mkdir -p /opt/llvm22 "$OUT"
rm -f "$OUT/summary.txt"
for f in .device-carry/*.deb; do dpkg -x "$f" /opt/llvm22; done
export LD_LIBRARY_PATH=/opt/llvm22/usr/lib/x86_64-linux-gnu:/opt/llvm22/usr/lib/llvm-22/lib:$PWD/.device-carry/lib
export ATTNC_CACHE_DIR=/tmp/attnc-cache PYTHONUNBUFFERED=1
BIN=.device-carry/bin
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv | tee "$OUT/gpu.txt"

if [[ $WHAT == check || $WHAT == all ]]; then
  echo "== one spec through the CLI"
  $BIN/attnc examples/causal.attn --target=cuda --run -D S=300
  if [[ -x .device-carry/aot/aot_cuda ]]; then
    echo "== AOT: cubin + header + examples/host/aot_cuda.c (driver API only)"
    .device-carry/aot/aot_cuda .device-carry/aot/causal.cubin 2>&1 | tee -a "$OUT/summary.txt"
  fi
  for arch in sm_90a sm_90; do
    echo "== conformance on the GPU, $arch (sm_90a: Hopper kernel where it applies; sm_90: portable)"
    # Twelve shards: NVRTC on the machine's 16 cores is what bounds the run (102 s
    # for the sm_90a suite on 2026-12-04); 240 s each keeps both arches within
    # the device's 600 s per command.
    bash bench/conformance_shards.sh 12 240 $BIN/attnc-conformance --target=cuda \
      --cuda-arch=$arch -- examples/*.attn test/Integration/cpu/Inputs/*.attn test/Integration/cpu/Inputs/int8/*.attn \
      > "$OUT/gpu_conformance_$arch.txt" 2>&1
    echo "conformance $arch rc=$? $(tail -1 "$OUT/gpu_conformance_$arch.txt")" | tee -a "$OUT/summary.txt"
    grep -v 'passed, ' "$OUT/gpu_conformance_$arch.txt" | head -8
  done
  cuobjdump -sass /tmp/attnc-cache/*.cubin 2>/dev/null | grep -o 'HGMMA[.A-Z0-9x]*' | sort | uniq -c | head -5 | tee -a "$OUT/summary.txt"
  echo "== JIT: cold (empty cache), then a second process (disk cache)"
  # NVRTC 13 keeps its own cache of compiled sources (in the driver's
  # compute cache), which the conformance run above has filled: without
  # CUDA_CACHE_DISABLE a "cold" compile here would be NVRTC's cache hit.
  for spec in causal document alibi gated; do
    cold=$(mktemp -d)
    for i in 1 2; do
      CUDA_CACHE_DISABLE=1 ATTNC_CACHE_DIR=$cold ATTNC_TIMING=1 $BIN/attnc examples/$spec.attn --target=cuda --run -D S=256 2>&1 |
        grep -o "compile [0-9.]* ms.*\|after [0-9.]* ms" | tr "\n" " " | sed "s/$/\n/" | sed "s/^/$spec: /" | tee -a "$OUT/summary.txt"
    done
  done
  echo "== compute-sanitizer"
  # ATTNC_CUDA_TIERS=0: the final kernel itself, not the quick tier that
  # --run would launch first. Documents take one consumer warpgroup (two CTAs
  # per SM), causal two, the D = 64 window one.
  for tool in memcheck racecheck; do
    for run in "examples/document.attn -D S=130" "examples/softcap.attn -D S=130" \
               "examples/chunked.attn -D S=70 -D T=200" "examples/causal.attn -D S=200" \
               "bench/specs/sliding_window.attn -D B=1 -D H=2 -D S=333 -D D=64 --param=window=100"; do
      spec=$(basename ${run%% *} .attn)
      ATTNC_CUDA_TIERS=0 compute-sanitizer --tool $tool --error-exitcode 9 $BIN/attnc ${run} \
        --target=cuda --run > "$OUT/san_${tool}_$spec.txt" 2>&1
      echo "$tool $spec rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san_${tool}_$spec.txt" | head -1)" | tee -a "$OUT/summary.txt"
    done
  done
fi

if [[ $WHAT == random ]]; then
  # Random specs (test/Integration/random) against the reference on the GPU
  # (RANDOM_TARGET=cpu: on this machine's CPU, whose AMX paths the
  # development VM lacks): RANDOM_SEED, RANDOM_COUNT choose them; the specs
  # come back in $OUT.
  target=${RANDOM_TARGET:-cuda}
  echo "== random specs on the $target target"
  rm -rf /tmp/random-specs
  python3 test/Integration/random/gen_specs.py --seed "${RANDOM_SEED:-11}" \
    --count "${RANDOM_COUNT:-60}" --out /tmp/random-specs
  bash bench/conformance_shards.sh 12 400 $BIN/attnc-conformance --target=$target -- \
    /tmp/random-specs/*.attn > "$OUT/${target}_random.txt" 2>&1
  echo "random specs ($target) rc=$? $(tail -1 "$OUT/${target}_random.txt")" | tee -a "$OUT/summary.txt"
  grep -v '^PASS\|^SKIP' "$OUT/${target}_random.txt" | head -20
  cp -r /tmp/random-specs "$OUT/"
fi

if [[ $WHAT == decode || $WHAT == all ]]; then
  echo "== paged decode against PyTorch (bf16, q8, q4 pages)"
  timeout 400 python3 bench/decode_vs_torch.py --lib .device-carry/lib/libattnc-gpu-bench.so \
    --json "$OUT/decode_bench.json" "$@" 2>&1 | tee "$OUT/decode_bench.txt"
fi

if [[ $WHAT == bench || $WHAT == all ]]; then
  echo "== bench against PyTorch"
  timeout 560 python3 bench/gpu_vs_torch.py --lib .device-carry/lib/libattnc-gpu-bench.so \
    --json "$OUT/gpu_bench.json" --png "$OUT/gpu_bench.png" "$@" 2>&1 | tee "$OUT/gpu_bench.txt"
fi

echo "== summary"
# Only the check step writes one: a bench-only run has none, which is not a failure.
cat "$OUT/summary.txt" 2>/dev/null || true

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# On the GPU machine (16-core Xeon, PyTorch present): unpack the carried
# LLVM/MLIR runtime, check the CPU kernels there (AVX-512 code paths), then
# compare them with PyTorch's CPU SDPA. Binaries come in .device-carry/bin.
#   bash bench/run_cpu_on_device.sh [profile]
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p /opt/llvm22 "$OUT"
for f in .device-carry/*.deb; do dpkg -x "$f" /opt/llvm22; done
export LD_LIBRARY_PATH=/opt/llvm22/usr/lib/x86_64-linux-gnu:/opt/llvm22/usr/lib/llvm-22/lib
export ATTNC_CACHE_DIR=/tmp/attnc-cache PYTHONUNBUFFERED=1
BIN=.device-carry/bin
lscpu > "$OUT/lscpu.txt"
# `profile`: why one thread reaches 31% of this Xeon's FMA peak (the AMD
# development VM reaches 50-61% with the same code): counters for a
# one-thread dense run, top-down if perf knows it, then the hottest places.
if [[ ${1:-} == profile ]]; then
  grep -E 'Model name|Thread|Core|MHz' "$OUT/lscpu.txt"
  if ! command -v perf >/dev/null; then
    echo "no perf on this machine"
    exit 1
  fi
  run=($BIN/attnc-cpu-bench --threads 1 --heads 2 --variants dense --dims 128 --lens 4096 --reps 5)
  "${run[@]}" > /dev/null # compile once: the cached kernel is what is measured
  perf stat -d -d "${run[@]}" 2>&1 | tail -30
  perf stat -M TopdownL1 "${run[@]}" 2>&1 | tail -15 || perf stat --topdown "${run[@]}" 2>&1 | tail -15
  perf record -q -o "$OUT/perf.data" "${run[@]}" > /dev/null 2>&1
  perf report -i "$OUT/perf.data" --stdio --sort dso,sym 2>/dev/null | grep -v '^#' | head -20
  exit 0
fi
echo "== conformance on this CPU"
timeout 200 $BIN/attnc-conformance examples/*.attn test/Integration/cpu/Inputs/*.attn test/Integration/cpu/Inputs/int8/*.attn > "$OUT/conformance.txt" 2>&1
echo "conformance rc=$? $(tail -1 "$OUT/conformance.txt")"
grep -v '^PASS' "$OUT/conformance.txt" | head -5
echo "== JIT compile times: cold (new cache), then a second process (disk cache)"
for spec in gated causal document alibi; do
  for i in 1 2; do ATTNC_TIMING=1 $BIN/attnc examples/$spec.attn --run -D S=256 --run-threads=16 2>&1 | grep -o 'compile.*' | sed "s/^/$spec: /"; done
done
echo "== f32, 16 threads"
timeout 300 python3 bench/cpu_vs_torch.py --bench $BIN/attnc-cpu-bench --threads 16 --dtype f32 \
  --lens 4096 --rounds 3 2> "$OUT/f32_t16.json" | tee "$OUT/f32_t16.txt"
echo "== f32, 16 threads, ATTNC_CPU_FAST_EXP=0 (weights through math.exp, as before 2026-12-05)"
ATTNC_CPU_FAST_EXP=0 timeout 200 python3 bench/cpu_vs_torch.py --bench $BIN/attnc-cpu-bench --threads 16 \
  --dtype f32 --variants dense,causal --dims 64,128 --lens 4096 --rounds 3 \
  2> "$OUT/f32_t16_mathexp.json" | tee "$OUT/f32_t16_mathexp.txt"
echo "== f32, 1 thread, H=2"
timeout 100 python3 bench/cpu_vs_torch.py --bench $BIN/attnc-cpu-bench --threads 1 --heads 2 --dtype f32 \
  --dims 128 --lens 4096 --variants dense,causal --rounds 3 2> "$OUT/f32_t1.json" | tee "$OUT/f32_t1.txt"
echo "== bf16, 16 threads"
timeout 120 python3 bench/cpu_vs_torch.py --bench $BIN/attnc-cpu-bench --threads 16 --dtype bf16 \
  --dims 128 --lens 4096 --rounds 3 2> "$OUT/bf16_t16.json" | tee "$OUT/bf16_t16.txt"
echo "== decode: paged bf16/q8/q4 against PyTorch, 16 threads; f32 products (int8 and bf16 decode dots off) vs the defaults"
timeout 300 python3 bench/cpu_decode_vs_torch.py --bin $BIN --threads 16 --seqs 1,4,16 --tokens 32768 \
  --rounds 3 --variants "ATTNC_CPU_INT8_DOT=0,ATTNC_CPU_AMX=0;" 2>&1 | tee "$OUT/decode_dots_t16.txt"
echo "== decode, 1 thread, 4 sequences x 8192: f32 products vs the defaults vs int8 for q8 too"
for v in "ATTNC_CPU_INT8_DOT=0 ATTNC_CPU_AMX=0" "" "ATTNC_CPU_INT8_DOT=all"; do
  echo "-- ${v:-defaults}"
  env $v $BIN/attnc-paged-decode-bench --seqs=4 --tokens=8192 --threads=1 --runs=10 | tail -3
done 2>&1 | tee "$OUT/decode_dots_t1.txt"

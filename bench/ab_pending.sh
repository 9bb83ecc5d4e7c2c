#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# On the GPU machine: the checks and A/B timings of changes that landed
# opt-in because no GPU was lent when they were written, kept for re-checks
# after changes to them (docs/cuda-backend.md, "The waiting changes timed").
#   bash scripts/device-carry.sh   # here, after ninja -C build
#   bash bench/ab_pending.sh shuffle|tiers|profile|cpu|classscan|planes   # there (device tool,
#                                  # carry .device-carry), one per call: each
#                                  # part takes 1-4 minutes on the H100
#
#   ATTNC_CUDA_COL_SHUFFLE=1  column parts that read tensors, shuffled (opt-in:
#                             correct, 1-3% slower on documents)
#   ATTNC_CUDA_CLASS_SPLIT=1  the tile-class kernel with the bounds in parts
#                             (the default since 2026-12-05)
#   ATTNC_CUDA_TIERS=serial|O3  the JIT's tiers: the quick kernel's ptxas at
#                             -O1 is the default since 2026-12-05 (O3: the
#                             old level); serial: opt-in
#   ATTNC_CUDA_CLASS_SCAN_UNROLL=N  the split class kernel's scans with N
#                             loads in flight (part `classscan`; opt-in: its
#                             SASS at 64 is 2.8x, +290 ms of final-tier compile
#                             on the VM)
#   ATTNC_PLANE_GROUP 0 for documents: all planes' query tiles interleaved
#                             (part `planes`: the landed default checked on
#                             the GPU and run against Flex; the A/B that chose
#                             it ran groups of 16, the same order at B = 1)
#   cpu: the Xeon's 16 threads with guided chunks (the default) against
#   ATTNC_CPU_GUIDED=0, and f32 against PyTorch
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p /opt/llvm22 "$OUT"
for f in .device-carry/*.deb; do dpkg -x "$f" /opt/llvm22; done
export LD_LIBRARY_PATH=/opt/llvm22/usr/lib/x86_64-linux-gnu:/opt/llvm22/usr/lib/llvm-22/lib:$PWD/.device-carry/lib
export ATTNC_CACHE_DIR=/tmp/attnc-cache PYTHONUNBUFFERED=1
B=.device-carry/bin
L=.device-carry/lib/libattnc-gpu-bench.so
I=test/Integration/cpu/Inputs
WHAT=${1:-shuffle}

if [[ $WHAT == shuffle ]]; then
echo "== column shuffles: conformance (sm_90a, sm_90), sanitizers"
E="examples/document.attn examples/lowrank_bias.attn examples/prefix_lm.attn"
python3 test/Integration/random/gen_specs.py --seed 31 --count 200 --out /tmp/rs > /dev/null
# The source goes through a file: `attnc | grep -q` under pipefail fails
# whenever grep exits before attnc is done writing (it lost specs once).
R=$(for f in /tmp/rs/*.attn; do
  ATTNC_CUDA_COL_SHUFFLE=1 $B/attnc "$f" --target=cuda --dtype=bf16 --emit=cuda > /tmp/e.cu 2>/dev/null
  grep -qE "#define ATTNC_(MASK|SCORE)_COL_SHUFFLE 1" /tmp/e.cu && echo "$f"; done)
for arch in sm_90a sm_90; do
  ATTNC_CUDA_COL_SHUFFLE=1 timeout 200 $B/attnc-conformance --target=cuda --cuda-arch=$arch $E $R \
    > "$OUT/shuffle_conformance_$arch.txt" 2>&1
  echo "conformance $arch rc=$? $(tail -1 "$OUT/shuffle_conformance_$arch.txt")"
  grep -E "^FAIL" "$OUT/shuffle_conformance_$arch.txt" | head -5
done
for tool in memcheck racecheck; do
  for spec in document lowrank_bias; do
    ATTNC_CUDA_COL_SHUFFLE=1 ATTNC_CUDA_TIERS=0 timeout 90 compute-sanitizer --tool $tool --error-exitcode 9 \
      $B/attnc examples/$spec.attn -D S=130 --target=cuda --run > "$OUT/san_${tool}_$spec.txt" 2>&1
    echo "$tool $spec rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san_${tool}_$spec.txt" | head -1)"
  done
done
echo "== split class kernel: conformance of the specs whose classes come from it (sm_90a)"
C=$(for f in examples/*.attn $I/*.attn $R; do
  $B/attnc "$f" --target=cuda --dtype=bf16 --emit=cuda > /tmp/e.cu 2>/dev/null
  grep -q "#define ATTNC_CLASS_SPLIT" /tmp/e.cu && echo "$f"; done)
ATTNC_CUDA_CLASS_SPLIT=1 ATTNC_CUDA_COL_SHUFFLE=1 timeout 240 $B/attnc-conformance --target=cuda \
  --cuda-arch=sm_90a $C > "$OUT/class_split_conformance.txt" 2>&1
echo "conformance rc=$? $(tail -1 "$OUT/class_split_conformance.txt")"
grep -E "^FAIL" "$OUT/class_split_conformance.txt" | head -5
ATTNC_CUDA_CLASS_SPLIT=1 ATTNC_CUDA_TIERS=0 timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 \
  $B/attnc examples/document.attn -D S=700 --target=cuda --run > "$OUT/san_class_split.txt" 2>&1
echo "memcheck class split rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/san_class_split.txt" | head -1)"
echo "== documents: shuffles, the one-function classes, both (alternating in one process)"
V="ATTNC_CUDA_COL_SHUFFLE=1;ATTNC_CUDA_CLASS_SPLIT=0;ATTNC_CUDA_COL_SHUFFLE=1,ATTNC_CUDA_CLASS_SPLIT=0"
timeout 240 python3 bench/ab_kernels.py --lib $L --cases document --N 16384 --D 128 \
  --variants ";$V;;$V" 2>&1 | tee "$OUT/ab_shuffle.txt" | grep TFLOP
fi

if [[ $WHAT == tiers ]]; then
echo "== JIT tiers: the GPU test, the quick kernel's speed at ptxas -O1, cold first/final kernels"
ATTNC_CUDA_TIERS=serial timeout 120 $B/attnc-unittests --gtest_filter='*Tier*' 2>&1 | tail -3
Q="ATTNC_CUDA_WS=0,ATTNC_CUDA_CLASS_SPLIT=0;ATTNC_CUDA_WS=0,ATTNC_CUDA_CLASS_SPLIT=0,ATTNC_NVRTC_OPTIONS=--ptxas-options=-O1"
timeout 150 python3 bench/ab_kernels.py --lib $L --cases causal,alibi,document --N 16384 --D 128 \
  --variants "$Q;$Q" 2>&1 | tee "$OUT/ab_quick_o1.txt" | grep TFLOP
for round in 1 2; do
  for spec in document alibi causal gated; do
    for mode in O3 "" serial,O3 serial; do
      cold=$(mktemp -d)
      r=$(CUDA_CACHE_DISABLE=1 ATTNC_CUDA_TIERS=$mode ATTNC_CACHE_DIR=$cold $B/attnc examples/$spec.attn \
        --target=cuda --run -D S=256 2>&1 | grep -o "compile [0-9.]* ms\|after [0-9.]* ms" | tr "\n" " ")
      echo "$spec [${mode:-default}]: $r"
    done
  done
done 2>&1 | tee "$OUT/coldjit_tiers.txt"
fi

if [[ $WHAT == profile ]]; then
echo "== where documents' time goes: kernel times under ncu, a trace of every CTA"
timeout 150 ncu --metrics gpu__time_duration.sum -k regex:attnc python3 bench/ab_kernels.py --lib $L \
  --cases document --N 16384 --D 128 --launches 3 --variants ";ATTNC_CUDA_CLASS_SPLIT=0" \
  > "$OUT/ncu_doc.txt" 2>&1
grep -E "attnc_|gpu__time_duration" "$OUT/ncu_doc.txt" | paste - - | awk '{print $1, $(NF-1), $NF}' | head -12
ATTNC_CUDA_TRACE=1 timeout 60 python3 bench/ab_kernels.py --lib $L --cases document --N 16384 --D 128 \
  --launches 1 > "$OUT/trace_doc.txt" 2>&1
echo "trace: $(grep -c attnc-trace "$OUT/trace_doc.txt") CTAs in $OUT/trace_doc.txt"
fi

if [[ $WHAT == classscan ]]; then
echo "== split class kernel, scans unrolled: conformance, memcheck, kernel times, documents"
C=""
for f in examples/*.attn $I/*.attn; do
  $B/attnc "$f" --target=cuda --dtype=bf16 --emit=cuda > /tmp/e.cu 2>/dev/null
  grep -q "#define ATTNC_CLASS_SPLIT" /tmp/e.cu && C="$C $f"
done
for u in 32 64; do
  ATTNC_CUDA_CLASS_SCAN_UNROLL=$u timeout 120 $B/attnc-conformance --target=cuda --cuda-arch=sm_90a $C \
    > "$OUT/classscan_conformance_$u.txt" 2>&1
  echo "unroll $u: conformance rc=$? $(tail -1 "$OUT/classscan_conformance_$u.txt")"
done
ATTNC_CUDA_CLASS_SCAN_UNROLL=64 ATTNC_CUDA_TIERS=0 timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 \
  $B/attnc examples/document.attn -D S=700 --target=cuda --run > "$OUT/classscan_memcheck.txt" 2>&1
echo "memcheck rc=$? $(grep 'ERROR SUMMARY' "$OUT/classscan_memcheck.txt" | head -1)"
for u in 8 16 32 64; do
  ATTNC_CUDA_CLASS_SCAN_UNROLL=$u timeout 60 ncu --metrics gpu__time_duration.sum -k regex:classes \
    python3 bench/ab_kernels.py --lib $L --cases document --N 16384 --D 128 --launches 2 > "$OUT/classscan_ncu_$u.txt" 2>&1
  echo "unroll $u: class kernel us $(grep gpu__time_duration "$OUT/classscan_ncu_$u.txt" | awk '{print $NF}' | tr '\n' ' ')"
done
V="ATTNC_CUDA_CLASS_SCAN_UNROLL=32;ATTNC_CUDA_CLASS_SCAN_UNROLL=64"
timeout 150 python3 bench/ab_kernels.py --lib $L --cases document --N 16384 --D 128 \
  --variants ";$V;;$V" 2>&1 | tee "$OUT/classscan_ab.txt" | grep TFLOP
fi

if [[ $WHAT == cpu ]]; then
echo "== Xeon: CPU conformance (AMX tiles; their cache flags' reads moved 2026-12-05)"
timeout 180 $B/attnc-conformance examples/*.attn $I/*.attn > "$OUT/cpu_conformance.txt" 2>&1
echo "conformance rc=$? $(tail -1 "$OUT/cpu_conformance.txt")"
grep -E "^FAIL" "$OUT/cpu_conformance.txt" | head -5
echo "== Xeon, 16 threads: guided chunks on and off, then against PyTorch"
for g in 1 0 1 0; do
  echo "guided=$g $(ATTNC_CPU_GUIDED=$g $B/attnc-cpu-bench --threads 16 --heads 16 --lens 4096 \
    --dims 64,128 --variants dense,causal,document --dtype f32 --reps 3 2>&1 | tail -6 |
    awk '{printf "%s%s %s | ", $1, $2, $6}')"
done | tee "$OUT/cpu_guided.txt"
timeout 240 python3 bench/cpu_vs_torch.py --bench $B/attnc-cpu-bench --threads 16 --dtype f32 \
  --variants dense,causal,document,gated --dims 64,128 --lens 4096 --rounds 2 \
  > "$OUT/cpu_f32_t16.txt" 2>&1
tail -12 "$OUT/cpu_f32_t16.txt"
fi

if [[ $WHAT == planes ]]; then
echo "== documents' CTAs over all planes interleaved: conformance, memcheck, against Flex"
timeout 120 $B/attnc-conformance --target=cuda --cuda-arch=sm_90a examples/document.attn \
  examples/block_list.attn examples/causal.attn examples/gqa.attn > "$OUT/planes_conformance.txt" 2>&1
echo "conformance rc=$? $(tail -1 "$OUT/planes_conformance.txt")"
grep -E "^FAIL" "$OUT/planes_conformance.txt" | head -5
ATTNC_CUDA_TIERS=0 timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 \
  $B/attnc examples/document.attn -D B=3 -D S=700 --target=cuda --run > "$OUT/planes_memcheck.txt" 2>&1
echo "memcheck rc=$? $(grep 'ERROR SUMMARY' "$OUT/planes_memcheck.txt" | head -1)"
timeout 100 python3 bench/ab_kernels.py --lib $L --cases document --N 16384 --D 128 \
  --variants ";ATTNC_CUDA_PLANE_GROUP=1;;ATTNC_CUDA_PLANE_GROUP=1" 2>&1 | tee "$OUT/planes_ab.txt" | grep TFLOP
timeout 150 python3 bench/gpu_vs_torch.py --lib $L --cases document > "$OUT/planes_vs.txt" 2>&1
sed -n '/^case /,$p' "$OUT/planes_vs.txt"
fi

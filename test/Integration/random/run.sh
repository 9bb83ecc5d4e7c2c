#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
#
# Differential testing on random specs (gen_specs.py): COUNT specs from SEED,
# each parsed, planned (attnc-sparsity-soundness: no block plan or run-time
# tile bound may drop a visible pair), run on the CPU against the f64
# reference over the conformance shapes and dtypes (attnc-conformance), and
# emitted as CUDA C++; where NVRTC is found, compiled to PTX for sm_90a
# (the warp-specialized kernel) and sm_80 (the portable one); where a GPU is,
# run there against the reference too. Exits 1 on the first failing stage
# and keeps the specs in WORKDIR to reproduce.
#
#   run.sh BIN_DIR SEED COUNT [WORKDIR]
#
# The test command runs a few (ctest random-specs); longer campaigns:
#   bash test/Integration/random/run.sh build/bin 7 500 /tmp/campaign
set -euo pipefail
bin=$1 seed=$2 count=$3
work=${4:-$(mktemp -d "${TMPDIR:-/tmp}/attnc-random.XXXXXX")}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
rm -f "$work"/random_*.attn
python3 "$here/gen_specs.py" --seed "$seed" --count "$count" --out "$work"
specs=("$work"/random_*.attn)
echo "random specs: $count from seed $seed in $work"

fail() {
  echo "FAILED: $*" >&2
  echo "the specs are in $work" >&2
  exit 1
}

for f in "${specs[@]}"; do
  "$bin/attnc" "$f" -o /dev/null || fail "attnc $f"
done
"$bin/attnc-sparsity-soundness" "${specs[@]}" > "$work/soundness.txt" ||
  { grep -v '^PASS' "$work/soundness.txt" >&2; fail "attnc-sparsity-soundness"; }
tail -n 1 "$work/soundness.txt"
"$bin/attnc-conformance" "${specs[@]}" > "$work/conformance.txt" ||
  { grep -v '^PASS' "$work/conformance.txt" >&2; fail "attnc-conformance"; }
tail -n 1 "$work/conformance.txt"

# On a GPU, the same specs against the reference there (bf16 and f16).
set +e
"$bin/attnc-conformance" --target=cuda --skip-without-gpu "${specs[@]}" > "$work/gpu.txt"
rc=$?
set -e
case $rc in
  0) tail -n 1 "$work/gpu.txt" ;;
  77) echo "GPU: none here" ;;
  *) grep -v '^PASS' "$work/gpu.txt" >&2; fail "attnc-conformance --target=cuda" ;;
esac

# CUDA: the emitted source always; PTX where NVRTC is there to compile it.
# The CUDA kernels are specialized on the head dim: a symbolic one is fixed.
cudaFlags() {
  echo --target=cuda --dtype=bf16
  if grep -q ', D\]' "$1"; then echo -D D=64; fi
}
for f in "${specs[@]}"; do
  "$bin/attnc" "$f" $(cudaFlags "$f") --emit=cuda -o /dev/null ||
    fail "attnc $f $(cudaFlags "$f") --emit=cuda"
done
if "$bin/attnc" "$here/../../../examples/causal.attn" --target=cuda --emit=ptx -o /dev/null \
    2>/dev/null; then
  for f in "${specs[@]}"; do
    for arch in sm_90a sm_80; do
      "$bin/attnc" "$f" $(cudaFlags "$f") --arch=$arch --emit=ptx -o /dev/null ||
        fail "attnc $f $(cudaFlags "$f") --arch=$arch --emit=ptx"
    done
  done
  echo "CUDA: ${#specs[@]} specs emitted and compiled to PTX (sm_90a, sm_80)"
else
  echo "CUDA: ${#specs[@]} specs emitted (no NVRTC here: not compiled)"
fi

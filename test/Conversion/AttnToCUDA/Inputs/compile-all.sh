#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# Compiles every example's CUDA kernel with NVRTC for the Hopper kernel
# (sm_90a) and the portable one (sm_80), so a change to the emitter or the
# templates that breaks any variant fails here, without a GPU.
#   compile-all.sh ATTNC SRC_ROOT
set -u
attnc=$1 root=$2
status=0
for spec in "$root"/examples/*.attn; do
  for arch in sm_90a sm_80; do
    if ! "$attnc" "$spec" --emit=cubin --dtype=bf16 --arch=$arch -o /dev/null; then
      echo "FAIL $(basename "$spec") $arch"
      status=1
    fi
  done
done
# Inputs that reach template paths no example does: sigmoid weights split
# in two (prefill and paged decode), 64-key tiles for 16-key top-k blocks.
for spec in sigmoid_causal paged_sigmoid topk_gqa_end; do
  for arch in sm_90a sm_80; do
    if ! "$attnc" "$root"/test/Integration/cpu/Inputs/$spec.attn --emit=cubin --arch=$arch \
        -o /dev/null; then
      echo "FAIL $spec $arch"
      status=1
    fi
  done
done
# Symbolic head dims, D != Dv.
if ! "$attnc" "$root"/test/Integration/cpu/Inputs/masked_rows.attn --emit=cubin --dtype=f16 \
    -D D=96 -D E=40 --arch=sm_80 -o /dev/null; then
  echo "FAIL masked_rows sm_80"
  status=1
fi
[ $status = 0 ] && echo "all examples compiled"
exit $status

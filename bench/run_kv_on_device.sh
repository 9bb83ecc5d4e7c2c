#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# On the GPU machine: write KV cache files with `attnc kv synth`, load them
# with the Hugging Face safetensors package (the format's own reader), and
# time the KV cache there. Binaries come in .device-carry/bin.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p /opt/llvm22 "$OUT" /tmp/kv
for f in .device-carry/*.deb; do dpkg -x "$f" /opt/llvm22; done
export LD_LIBRARY_PATH=/opt/llvm22/usr/lib/x86_64-linux-gnu:/opt/llvm22/usr/lib/llvm-22/lib
BIN=.device-carry/bin
for q in bf16 q8 q4; do
  $BIN/attnc kv synth --out /tmp/kv/$q.safetensors --tokens 1000 --layers 4 --kv-heads 8 \
    --head-dim 128 --quant $q --model-id device-check || exit 1
done
python3 - <<'PY'
import json, struct
from safetensors import safe_open
for q in ("bf16", "q8", "q4"):
    path = f"/tmp/kv/{q}.safetensors"
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        names = sorted(f.keys())
        t = f.get_tensor("layer0.k")
        line = f"{q}: safetensors loaded {len(names)} tensors; layer0.k {tuple(t.shape)} {t.dtype}"
        if q != "bf16":
            s = f.get_tensor("layer0.k_scale")
            line += f"; layer0.k_scale {tuple(s.shape)} {s.dtype}"
        print(line)
        print(f"   metadata: quant={meta['quant']} tokens={meta['tokens']} layers={meta['layers']} "
              f"kv_heads={meta['kv_heads']} head_dim={meta['head_dim']} checksum={meta['checksum']}")
PY
echo "== KV bench on this machine ($(nproc) cores)"
$BIN/attnc-kv-bench --dir /tmp/kv

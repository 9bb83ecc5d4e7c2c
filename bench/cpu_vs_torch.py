#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attnc's CPU kernels against PyTorch's CPU scaled_dot_product_attention.

Runs build/bin/attnc-cpu-bench and PyTorch at the same thread count, shapes
and dtype in one process tree, and prints GFLOP/s over visible pairs and the
ratio. Masks PyTorch has no fast path for (sliding window, document) go in as
boolean attn_mask; gated is SDPA followed by the sigmoid gate.

  python3 bench/cpu_vs_torch.py --bench build/bin/attnc-cpu-bench \
      --threads 16 --dtype f32 --dims 64,128 --lens 1024,2048,4096,8192
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

WINDOW = 1024
DOC_LEN = 1000


def visible_pairs(variant, n):
    causal = lambda m: m * (m + 1) / 2
    if variant == "dense":
        return n * n
    if variant == "sliding_window":
        w = min(WINDOW, n)
        return causal(w) + (n - w) * w
    if variant == "document":
        return sum(causal(min(DOC_LEN, n - s)) for s in range(0, n, DOC_LEN))
    return causal(n)


def torch_time(variant, b, h, n, d, dtype, reps):
    q, k, v = (torch.randn(b, h, n, d, dtype=dtype) for _ in range(3))
    mask = None
    i = torch.arange(n)
    if variant == "sliding_window":
        mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < WINDOW)
    elif variant == "document":
        docs = i // DOC_LEN
        mask = (docs[:, None] == docs[None, :]) & (i[None, :] <= i[:, None])
    g = torch.randn(b, h, n, 1, dtype=dtype)

    def run():
        if variant == "dense":
            return F.scaled_dot_product_attention(q, k, v)
        if variant in ("causal", "gated"):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return o * torch.sigmoid(g) if variant == "gated" else o
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    run()
    best = 1e30
    for _ in range(reps):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bin/attnc-cpu-bench")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--variants", default="dense,causal,sliding_window,document,gated")
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--lens", default="1024,2048,4096,8192")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    cmd = [a.bench, "--json", "--threads", str(a.threads), "--dtype", a.dtype,
           "--variants", a.variants, "--dims", a.dims, "--lens", a.lens,
           "--heads", str(a.heads), "--batch", str(a.batch), "--reps", str(a.reps)]
    dt = torch.float32 if a.dtype == "f32" else torch.bfloat16
    # The machine is shared and drifts by tens of percent within seconds:
    # each case runs attnc (its own process, kernels from the disk cache)
    # and PyTorch back to back, --rounds times, and the ratio is the median
    # of the rounds' ratios.
    out = subprocess.run(cmd[:cmd.index("--variants")] + ["--variants", "dense", "--dims", "64",
                                                          "--lens", "256", "--reps", "1"],
                         check=True, capture_output=True, text=True).stdout
    peak = json.loads(out.splitlines()[0])
    print(f"# torch {torch.__version__}, threads {a.threads}, dtype {a.dtype}, "
          f"B={a.batch} H={a.heads}; f32 FMA peak: one core {peak['peak_gflops_one_core']}, "
          f"{a.threads} at once {peak.get('peak_gflops_all_threads', '?')} GFLOP/s "
          f"({peak['isa']}); median of {a.rounds} rounds of (attnc, PyTorch) back to back; "
          f"%peak of the latter peak")
    print(f"{'variant':15} {'D':>4} {'N':>6} {'attnc GF/s':>11} {'torch GF/s':>11} "
          f"{'ratio':>6} {'%peak':>6}  rounds (attnc/torch)")
    results = []
    for variant in a.variants.split(","):
        for dim in (int(x) for x in a.dims.split(",")):
            for n in (int(x) for x in a.lens.split(",")):
                case = cmd[:cmd.index("--variants")] + [
                    "--variants", variant, "--dims", str(dim), "--lens", str(n), "--heads",
                    str(a.heads), "--batch", str(a.batch), "--reps", str(a.reps), "--no-peak"]
                rounds = []
                for round_ in range(a.rounds):
                    time.sleep(0.5)  # PyTorch's OpenMP threads stop spinning first
                    out = subprocess.run(case, check=True, capture_output=True, text=True).stdout
                    r = [json.loads(line) for line in out.splitlines() if line.strip()][1]
                    ms = torch_time(variant, a.batch, a.heads, n, dim, dt, a.reps)
                    flops = 4.0 * dim * visible_pairs(variant, n) * a.batch * a.heads
                    rounds.append((r["gflops"], flops / (ms * 1e6)))
                ours = statistics.median(x for x, _ in rounds)
                theirs = statistics.median(y for _, y in rounds)
                ratio = statistics.median(x / y for x, y in rounds)
                pct = 100.0 * ours / peak.get("peak_gflops_all_threads", float("nan"))
                results.append(dict(variant=variant, dim=dim, n=n, gflops=ours,
                                    torch_gflops=theirs, ratio=ratio, pct_peak=pct,
                                    rounds=rounds))
                spread = " ".join(f"{x:.0f}/{y:.0f}" for x, y in rounds)
                print(f"{variant:15} {dim:4} {n:6} {ours:11.1f} {theirs:11.1f} {ratio:6.2f} "
                      f"{pct:6.1f}  {spread}", flush=True)
    json.dump(results, sys.stderr)

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""A/B timing of attnc kernel variants, without the anchors (GPU machine).

Each variant is a set of environment variables the CUDA emitter reads
(ATTNC_CUDA_WS, ATTNC_CUDA_PV_N, ATTNC_CUDA_MIN_BLOCKS); the source, hence
the cache key, records them. Same inputs and event timing as gpu_vs_torch.py;
prints TFLOP/s over visible pairs per (case, variant) and the error against
the first variant's output. With --launches N it only launches each variant
N times (for ncu).

  python3 bench/ab_kernels.py --cases dense,causal --variants "ATTNC_CUDA_WS=0;ATTNC_CUDA_WS=1"
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_vs_torch as g  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(g.ROOT, "build/lib/libattnc-gpu-bench.so"))
    ap.add_argument("--cases", default="dense,causal")
    ap.add_argument("--N", type=int, default=16384)
    ap.add_argument("--D", type=int, default=128)
    ap.add_argument("--variants", default="", help="';'-separated, each 'VAR=V,VAR=V' or ''")
    ap.add_argument("--launches", type=int, default=0)
    ap.add_argument("--window", type=int, default=0,
                    help="sliding window size (default gpu_vs_torch's WINDOW)")
    a = ap.parse_args()
    if a.window:
        # visible_pairs and the launch parameters both read these.
        g.WINDOW = a.window
        g.PARAMS["sliding_window"] = f"window={a.window}"
    att = g.Attnc(a.lib)
    dev = torch.device("cuda")
    variants = a.variants.split(";") if a.variants else [""]
    for case in a.cases.split(","):
        N, D = a.N, a.D
        H = 32 if case == "gqa" else 2048 // D
        c = dict(case=case, N=N, D=D, B=max(1, g.TOKENS // N), H=H, KV=8 if case == "gqa" else H)
        q, k, v, extra = g.make_inputs(c, dev, 0)
        tensors = [q, k, v] + [extra[n] for n in g.EXTRAS.get(case, [])]
        pairs = g.visible_pairs(c, extra.get("doc", extra.get("sel")))
        flops = 4 * D * pairs * c["H"]
        first = None
        for var in variants:
            # The variables stay set while the variant runs, not only while it
            # compiles: some are read at launch (ATTNC_DECODE_SPLITS).
            with g.knobs(var):
                h, ms, cached = att.compile(os.path.join(g.ROOT, "bench/specs", case + ".attn"),
                                            f"B={c['B']},H={c['H']},S={N},D={D}")
                o = torch.full_like(q, float("nan"))
                fn = att.launcher(h, tensors + [o], g.PARAMS.get(case, ""))
                if a.launches:
                    for _ in range(a.launches):
                        fn()
                    torch.cuda.synchronize()
                    print(f"{case} [{var}] launched {a.launches}x, compile {ms:.0f} ms"
                          f"{' (cached)' if cached else ''}", flush=True)
                    continue
                t = g.time_ms(fn, 10, 25.0)
                torch.cuda.synchronize()
                err = 0.0 if first is None else (o.float() - first.float()).abs().max().item()
                bad = torch.isnan(o).any().item()
                if first is None:
                    first = o.clone()
                print(f"{case:15s} N={N} D={D} [{var or 'default'}] {t:.3f} ms "
                      f"{flops / t / 1e9:.1f} TFLOP/s  compile {ms:.0f} ms "
                      f"(first kernel {att.lib.attnc_bench_quick_ms(h):.0f} ms)  "
                      f"max diff vs first {err:.2e}{'  NaN!' if bad else ''}", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Decode bandwidth: attnc's paged kernels against PyTorch on equal data.

One decode step (one query per sequence) of --seqs sequences of --ctx tokens,
GQA --hq/--hkv, D = 128. attnc reads bf16, q8 and q4 pages of --page tokens
through a shuffled block table (bench/specs/decode_paged_*.attn); PyTorch's
SDPA (FlashAttention-2 and cuDNN backends where they take the case, else the
default) and torch.compile'd FlexAttention read the same keys and values as
dense [B, Hkv, T, D] bf16 tensors. Everything runs in one process, on one
stream, timed by CUDA events (median of --reps). Bandwidth counts the bytes
of K and V (codes and scales for q8/q4) a step must read; tokens/s is
sequences per step time. Outputs are checked against SDPA on the same
(dequantized) values.

  python3 bench/decode_vs_torch.py --lib .device-carry/lib/libattnc-gpu-bench.so
"""
import argparse
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_vs_torch import Attnc, knobs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D = 128


def timed(fn, reps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def quantize(x, levels, group):
    """x [..., D] f32 -> (codes int8 [..., D], scales f32 [..., D / group])."""
    g = x.reshape(*x.shape[:-1], D // group, group)
    scale = g.abs().amax(-1).clamp_min(1e-12) / levels
    codes = torch.round(g / scale[..., None]).clamp(-levels, levels).to(torch.int8)
    return codes.reshape(x.shape), scale.float()


def pack_q4(codes):
    """int8 codes in [-7, 7], [..., D] -> uint8 [..., D / 2], even feature low."""
    u = (codes.to(torch.int16) + 8).to(torch.uint8)
    return (u[..., 0::2] | (u[..., 1::2] << 4)).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seqs", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=32768)
    ap.add_argument("--hq", type=int, default=32)
    ap.add_argument("--hkv", type=int, default=8)
    ap.add_argument("--page", type=int, default=16)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--formats", default="bf16,q8,q4")
    ap.add_argument("--group", type=int, default=32, help="q8/q4 features per scale")
    ap.add_argument("--no-anchors", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--variants", default="",
                    help="';'-separated sets of compile-time knobs, each 'VAR=V,VAR=V' or '' "
                         "(e.g. 'ATTNC_DECODE_Q4_RAW=0;'): each set is compiled in this process "
                         "and the sets are timed in alternation, --rounds times")
    ap.add_argument("--rounds", type=int, default=1, help="alternations of the variants (median)")
    a = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    B, T, Hq, Hkv, PS, GROUP = a.seqs, a.ctx, a.hq, a.hkv, a.page, a.group
    assert D % GROUP == 0, f"--group must divide {D}"
    M = (T + PS - 1) // PS
    P = B * M
    print(f"# decode: {B} sequences x {T} tokens, GQA {Hq}/{Hkv}, D={D}, pages of {PS}; "
          f"{torch.cuda.get_device_name()}", flush=True)

    # Logical keys and values, and where each page lives in the pool.
    q = torch.randn(B, Hq, 1, D, device=dev, dtype=torch.bfloat16)
    perm = torch.randperm(P, device=dev).to(torch.int32)
    table = perm.reshape(B, M).contiguous()
    lens = torch.full((B,), T, device=dev, dtype=torch.int32)
    o = torch.empty(B, Hq, 1, D, device=dev, dtype=torch.bfloat16)
    attnc = Attnc(a.lib)
    rows, results = [], {}

    def to_pages(x):
        """Dense [B, Hkv, T, ...] -> pages [P, Hkv, PS, ...] placed by `table`."""
        tail = x.shape[3:]
        xp = x.reshape(B, Hkv, M, PS, *tail).permute(0, 2, 1, 3, *range(4, 4 + len(tail)))
        pages = torch.empty(P, Hkv, PS, *tail, device=dev, dtype=x.dtype)
        pages[table.reshape(-1).long()] = xp.reshape(B * M, Hkv, PS, *tail)
        return pages

    for fmt in a.formats.split(","):
        k = torch.randn(B, Hkv, T, D, device=dev)
        v = torch.randn(B, Hkv, T, D, device=dev)
        if fmt == "bf16":
            kd, vd = k.bfloat16(), v.bfloat16()
            kp, vp = to_pages(kd), to_pages(vd)
            tensors, shapes = [q, kp, vp, table, lens, o], None
            nbytes = 2 * kp.numel() * 2
        else:
            levels = 127 if fmt == "q8" else 7
            kc, ks = quantize(k, levels, GROUP)
            vc, vs = quantize(v, levels, GROUP)
            # What the kernel computes with, for the check and the anchors.
            kd = (kc.float().reshape(B, Hkv, T, D // GROUP, GROUP) * ks[..., None]).reshape(
                B, Hkv, T, D).bfloat16()
            vd = (vc.float().reshape(B, Hkv, T, D // GROUP, GROUP) * vs[..., None]).reshape(
                B, Hkv, T, D).bfloat16()
            if fmt == "q4":
                kc, vc = pack_q4(kc), pack_q4(vc)
            kp, vp = to_pages(kc), to_pages(vc)
            ksp, vsp = to_pages(ks), to_pages(vs)
            tensors = [q, kp, vp, ksp, vsp, table, lens, o]
            shapes = [list(t.shape) for t in tensors]
            shapes[1][3] = shapes[2][3] = D  # q4: the caller counts features
            nbytes = (kp.numel() + vp.numel()) * kp.element_size() + (ksp.numel() + vsp.numel()) * 4
        spec = os.path.join(ROOT, "bench", "specs", f"decode_paged_{fmt}.attn")
        ref = F.scaled_dot_product_attention(q, kd, vd, enable_gqa=True)
        variants = []
        for var in (a.variants.split(";") if a.variants else [""]):
            # The emitter reads its knobs from the environment when it compiles.
            with knobs(var):
                h, ms, _ = attnc.compile(spec, f"PS={PS}" if fmt == "bf16" else f"PS={PS},NG={D // GROUP}")
            run = attnc.launcher(h, tensors, "", shapes)
            o.zero_()
            run()
            torch.cuda.synchronize()
            err = (o.float() - ref.float()).abs().max().item()
            variants.append((var, run, ms, err, []))
        for _ in range(max(1, a.rounds)):
            for var, run, ms, err, times in variants:
                times.append(timed(run, a.reps))
        for i, (var, run, ms, err, times) in enumerate(variants):
            t = statistics.median(times)
            name = f"attnc {fmt} pages" + (f" [{var}]" if len(variants) > 1 else "")
            row = dict(case=name, ms=t, tbps=nbytes / t / 1e9, tok_s=B / t * 1e3, err=err,
                       bytes=nbytes, compile_ms=ms, variant=var, times=times)
            rows.append(row)
            if i == 0:
                results[fmt] = row
        if fmt == "bf16" and not a.no_anchors:
            # Anchors on the same values, dense and contiguous.
            for name, backend in (("SDPA flash", SDPBackend.FLASH_ATTENTION),
                                  ("SDPA cuDNN", SDPBackend.CUDNN_ATTENTION),
                                  ("SDPA default", None)):
                try:
                    def fn(backend=backend):
                        if backend is None:
                            return F.scaled_dot_product_attention(q, kd, vd, enable_gqa=True)
                        with sdpa_kernel(backend):
                            return F.scaled_dot_product_attention(q, kd, vd, enable_gqa=True)
                    t = timed(fn, a.reps)
                    rows.append(dict(case=name, ms=t, tbps=nbytes / t / 1e9, tok_s=B / t * 1e3,
                                     err=0.0, bytes=nbytes))
                except Exception as e:  # a backend that does not take the case
                    rows.append(dict(case=name, error=str(e).splitlines()[0][:100]))
            try:
                from torch.nn.attention.flex_attention import flex_attention
                flex = torch.compile(flex_attention)
                fn = lambda: flex(q, kd, vd, enable_gqa=True)  # noqa: E731
                err = (fn().float() - ref.float()).abs().max().item()
                t = timed(fn, a.reps)
                rows.append(dict(case="Flex", ms=t, tbps=nbytes / t / 1e9, tok_s=B / t * 1e3,
                                 err=err, bytes=nbytes))
            except Exception as e:
                rows.append(dict(case="Flex", error=str(e).splitlines()[0][:100]))
        del k, v, kd, vd, kp, vp
        torch.cuda.empty_cache()

    best_anchor = max((r["tbps"] for r in rows if "tbps" in r and not r["case"].startswith("attnc")),
                      default=float("nan"))
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("ATTNC_DECODE"))
    if env:
        print("#", env)
    width = max([18] + [len(r["case"]) for r in rows])
    print(f"{'case':{width}} {'ms':>8} {'TB/s':>7} {'tokens/s':>10} {'max err':>9} {'vs best anchor':>15}")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:{width}} n/a: {r['error']}")
            continue
        print(f"{r['case']:{width}} {r['ms']:8.3f} {r['tbps']:7.2f} {r['tok_s']:10.0f} {r['err']:9.2e} "
              f"{r['tbps'] / best_anchor:14.2f}x")
    if "bf16" in results:
        for fmt in ("q8", "q4"):
            if fmt in results:
                print(f"{fmt} decodes {results[fmt]['tok_s'] / results['bf16']['tok_s']:.2f}x the "
                      "tokens/s of bf16 pages")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(seqs=B, ctx=T, hq=Hq, hkv=Hkv, page=PS, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attnc's CUDA kernels against PyTorch's GPU attention, in one process.

Loads build/lib/libattnc-gpu-bench.so (a C ABI over attnc's CUDA path) with
ctypes, compiles bench/specs/<case>.attn for each shape, and times it next to
SDPA (FlashAttention-2 and cuDNN backends) and torch.compile'd FlexAttention
on the same q, k, v and extra tensors, with the same CUDA-event timing. Prints
TFLOP/s over visible pairs (4 * D * pairs * B * H), attnc's max abs error
against a reference, and the ratios. 16K tokens per batch: B = 16384 // N,
H = 2048 // D; the masked variants run at N = 16384, D = 128, H = 16 (4096
with --quick), gqa at H = 32 over KV = 8. SDPA has no fast path for sliding
window, ALiBi, soft-capping or documents, so it shows "-" there.

  python3 bench/gpu_vs_torch.py --lib build/lib/libattnc-gpu-bench.so \
      --json gpu.json --png gpu.png
  python3 bench/gpu_vs_torch.py --quick --cases dense,causal,gqa

The table comes last; one JSON line per case is printed before it, and --json
writes them all, with the bar order of the --png plot.
"""
import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import random
import statistics
import struct
import sys
import time
import zlib

import torch
import torch._dynamo
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

TOKENS = 16384      # tokens per batch: B = TOKENS // N
WIDTH = 2048        # H * D for dense and causal
WINDOW = 1024
SOFTCAP = 30.0
DOC_LEN = (50, 1950)  # uniform document lengths, mean ~1000
TOL = 2e-2
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ["dense", "causal", "sliding_window", "alibi", "softcap", "document", "gated", "gqa",
         "moba"]
# moba: SDPA runs plain causal attention, the computation MoBA thins out.
SDPA_CASES = {"dense", "causal", "gqa", "gated", "moba"}
MOBA = dict(k=4, bq=128, bk=64)  # bench/specs/moba.attn
EXTRAS = {"alibi": ["slopes"], "document": ["doc"], "gated": ["g"]}  # spec order
PARAMS = {"sliding_window": f"window={WINDOW}"}
CONTENDERS = ["attnc", "fa2", "cudnn", "flex"]  # also the bar order of --png
LABELS = {"attnc": "attnc", "fa2": "SDPA FA2", "cudnn": "SDPA cuDNN", "flex": "Flex"}


@contextlib.contextmanager
def knobs(var):
    """Sets the environment variables of a variant, 'NAME=V,NAME=V' (attnc reads
    its tuning knobs from the environment), and restores them on leaving."""
    env = dict(kv.partition("=")[::2] for kv in var.split(",") if kv)
    saved = {n: os.environ.get(n) for n in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for n, old in saved.items():
            if old is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = old


def log(*args):
    print(*args, flush=True)


def brief(e):
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


# ---- cases, inputs, masks ---------------------------------------------------

def make_cases(a):
    if a.lens:
        lens = [int(x) for x in a.lens.split(",")]
    else:
        lens = [1024, 4096] if a.quick else [1024, 4096, 16384]
    big = 4096 if a.quick else 16384
    want = [c for c in a.cases.split(",") if c] if a.cases else CASES
    unknown = set(want) - set(CASES)
    if unknown:
        sys.exit(f"unknown case(s) {sorted(unknown)}; known: {','.join(CASES)}")
    cases = []
    for name in ("dense", "causal"):
        if name in want:
            for n in lens:
                for d in (64, 128):
                    h = WIDTH // d
                    cases.append(dict(case=name, N=n, D=d, B=max(1, TOKENS // n), H=h, KV=h))
    for name in ("sliding_window", "alibi", "softcap", "document", "gated"):
        if name in want:
            cases.append(dict(case=name, N=big, D=128, B=max(1, TOKENS // big), H=16, KV=16))
    if "gqa" in want:
        cases.append(dict(case="gqa", N=big, D=128, B=max(1, TOKENS // big), H=32, KV=8))
    if "moba" in want:
        cases.append(dict(case="moba", N=big, D=128, B=max(1, TOKENS // big), H=16, KV=16))
    return cases


def make_docs(b, n, seed):
    # Nondecreasing ids per row; the last document is cut at n.
    rng = random.Random(seed)
    rows = []
    for _ in range(b):
        ids, doc = [], 0
        while len(ids) < n:
            ids += [doc] * rng.randint(*DOC_LEN)
            doc += 1
        rows.append(ids[:n])
    return torch.tensor(rows, dtype=torch.int32)


def make_inputs(c, dev, seed):
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    B, H, KV, N, D = c["B"], c["H"], c["KV"], c["N"], c["D"]
    rnd = lambda *shape: torch.randn(*shape, generator=gen, device=dev, dtype=torch.bfloat16)
    q, k, v = rnd(B, H, N, D), rnd(B, KV, N, D), rnd(B, KV, N, D)
    extra = {}
    if c["case"] == "alibi":
        extra["slopes"] = torch.tensor([2.0 ** (-8.0 * (h + 1) / H) for h in range(H)],
                                       dtype=torch.float32, device=dev)
    elif c["case"] == "document":
        extra["doc"] = make_docs(B, N, seed).to(dev)
    elif c["case"] == "gated":
        extra["g"] = rnd(B, H, N)
    elif c["case"] == "moba":
        extra["sel"] = moba_select(q, k)
    return q, k, v, extra


def moba_select(q, k):
    """MoBA's block choice in torch (as attn.topk defines it): mean-pooled
    query and key blocks, top-k key blocks per query block by dot product
    among those starting no later than the query block ends."""
    B, H, N, D = q.shape
    bq, bk, top = MOBA["bq"], MOBA["bk"], MOBA["k"]
    QB, KB = -(-N // bq), -(-N // bk)
    def pool(x, blk, nb):
        x = F.pad(x.float(), (0, 0, 0, nb * blk - x.shape[2]))
        cnt = torch.full((nb,), float(blk), device=x.device)
        cnt[-1] = N - (nb - 1) * blk
        return x.view(x.shape[0], x.shape[1], nb, blk, D).sum(3) / cnt[:, None]
    s = pool(q, bq, QB) @ pool(k, bk, KB).transpose(-1, -2)
    qb, kb = torch.arange(QB, device=q.device), torch.arange(KB, device=q.device)
    cand = (kb[None, :] * bk) <= (qb[:, None] * bq + bq - 1)
    s = s.masked_fill(~cand, float("-inf"))
    idx = s.topk(min(top, KB), dim=-1).indices
    sel = torch.zeros_like(s, dtype=torch.bool).scatter_(-1, idx, True)
    return sel & cand


def visible_pairs(c, sel_or_doc):
    """Visible (i, j) pairs summed over the batch, exactly."""
    n, b = c["N"], c["B"]
    tri = lambda m: m * (m + 1) // 2
    if c["case"] == "dense":
        return b * n * n
    if c["case"] == "sliding_window":
        w = min(WINDOW, n)
        return b * (tri(w) + (n - w) * w)
    if c["case"] == "moba":
        # Causal pairs of each (query block, key block), times the selection.
        sel = sel_or_doc
        bq, bk = MOBA["bq"], MOBA["bk"]
        QB, KB = sel.shape[2], sel.shape[3]
        i = torch.arange(n, device=sel.device)
        pairs = torch.zeros(QB, KB, dtype=torch.float64, device=sel.device)
        for kbi in range(KB):
            lo, hi = kbi * bk, min(n, kbi * bk + bk)
            per_row = (i - lo + 1).clamp(0, hi - lo).double()
            pairs[:, kbi] = F.pad(per_row, (0, QB * bq - n)).view(QB, bq).sum(1)
        return int((sel.double() * pairs).sum().item() / c["H"])
    doc = sel_or_doc
    if c["case"] == "document":
        # Ids are nondecreasing, so each run of equal ids is one document.
        return sum(tri(int(L)) for row in doc.cpu()
                   for L in torch.unique_consecutive(row, return_counts=True)[1])
    return b * tri(n)


def make_mods(c, extra):
    """(score_mod, mask_mod) in FlexAttention's signature. The fp32 reference
    calls the same functions on broadcast index tensors, so both see one
    definition; attnc's spec is the independent side of the check."""
    case = c["case"]
    causal = lambda b, h, i, j: i >= j
    score = mask = None
    if case != "dense":
        mask = causal
    if case == "sliding_window":
        mask = lambda b, h, i, j: (i >= j) & (i - j < WINDOW)
    elif case == "document":
        doc = extra["doc"]
        mask = lambda b, h, i, j: (doc[b, i] == doc[b, j]) & (i >= j)
    elif case == "alibi":
        slopes = extra["slopes"]
        score = lambda s, b, h, i, j: s - slopes[h] * (i - j)
    elif case == "softcap":
        score = lambda s, b, h, i, j: SOFTCAP * torch.tanh(s / SOFTCAP)
    elif case == "moba":
        sel, bq, bk = extra["sel"], MOBA["bq"], MOBA["bk"]
        mask = lambda b, h, i, j: (i >= j) & sel[b, h, i // bq, j // bk]
    return score, mask


def gate(c, extra, o):
    return o * torch.sigmoid(extra["g"])[..., None] if c["case"] == "gated" else o


def reference_fp32(c, q, k, v, extra, mods):
    # Row chunks keep the fp32 score block near 512 MiB.
    score_mod, mask_mod = mods
    B, H, N, D = q.shape
    G = H // k.shape[1]
    dev = q.device
    chunk = max(64, (1 << 27) // (H * N))
    out = torch.empty(q.shape, dtype=torch.float32, device=dev)
    heads = torch.arange(H, device=dev)[:, None, None]
    j = torch.arange(N, device=dev)
    for b in range(B):
        kb = k[b].float().repeat_interleave(G, 0)
        vb = v[b].float().repeat_interleave(G, 0)
        for r0 in range(0, N, chunk):
            r1 = min(r0 + chunk, N)
            i = torch.arange(r0, r1, device=dev)
            s = torch.matmul(q[b, :, r0:r1].float(), kb.transpose(1, 2)) * D ** -0.5
            if score_mod:
                s = score_mod(s, b, heads, i[None, :, None], j[None, None, :])
            if mask_mod:
                s = s.masked_fill(~mask_mod(b, heads, i[:, None], j[None, :]), float("-inf"))
            o = torch.matmul(torch.softmax(s, -1), vb)
            if c["case"] == "gated":
                o = o * torch.sigmoid(extra["g"][b, :, r0:r1].float())[..., None]
            out[b, :, r0:r1] = o
            del s, o
    return out


def max_err(o, ref):
    nans = int(torch.isnan(o).sum())
    if nans:
        return math.inf, nans
    return float((o.float() - ref.float()).abs().max()), 0


# ---- contenders ---------------------------------------------------------------

class Attnc:
    """ctypes view of libattnc-gpu-bench.so."""

    def __init__(self, path):
        L = self.lib = ctypes.CDLL(path)
        vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        L.attnc_bench_compile.restype = vp
        L.attnc_bench_compile.argtypes = [cp, cp, cp, i32]
        L.attnc_bench_compile_ms.restype = ctypes.c_double
        L.attnc_bench_compile_ms.argtypes = [vp]
        L.attnc_bench_quick_ms.restype = ctypes.c_double
        L.attnc_bench_quick_ms.argtypes = [vp]
        L.attnc_bench_from_cache.restype = i32
        L.attnc_bench_from_cache.argtypes = [vp]
        for f in (L.attnc_bench_run, L.attnc_bench_plan):
            f.restype = i32
            f.argtypes = [vp, i32, ctypes.POINTER(vp), ctypes.POINTER(i32),
                          ctypes.POINTER(ctypes.c_int64), cp, vp, cp, i32]
        L.attnc_bench_plan_bytes.restype = ctypes.c_longlong
        L.attnc_bench_plan_bytes.argtypes = [vp]
        L.attnc_bench_drop_plan.argtypes = [vp]
        self.err = ctypes.create_string_buffer(8192)

    def message(self):
        return self.err.value.decode(errors="replace")

    def compile(self, spec, dims):
        self.err.value = b""
        h = self.lib.attnc_bench_compile(spec.encode(), dims.encode(), self.err, len(self.err))
        if not h:
            raise RuntimeError(f"compile {os.path.basename(spec)} [{dims}]: {self.message()}")
        return h, self.lib.attnc_bench_compile_ms(h), bool(self.lib.attnc_bench_from_cache(h))

    def launcher(self, h, tensors, params, shapes=None):
        # Everything is marshalled once, so the timed loop is one C call.
        # `shapes` overrides the tensors' own (q4 codes: features, not bytes).
        for t in tensors:
            assert t.is_cuda and t.is_contiguous(), "attnc wants contiguous device tensors"
        n = len(tensors)
        shapes = shapes or [list(t.shape) for t in tensors]
        ptrs = (ctypes.c_void_p * n)(*[t.data_ptr() for t in tensors])
        ranks = (ctypes.c_int * n)(*[len(s) for s in shapes])
        shape = [int(s) for t in shapes for s in t]
        dims = (ctypes.c_int64 * len(shape))(*shape)
        p = params.encode()
        stream = torch.cuda.current_stream().cuda_stream
        run, err, out = self.lib.attnc_bench_run, self.err, tensors[-1]

        def fn():
            if run(h, n, ptrs, ranks, dims, p, stream, err, len(err)):
                raise RuntimeError("run: " + self.message())
            return out

        def plan():
            # Builds the tile plan that later calls of fn use (attnc::TilePlan).
            if self.lib.attnc_bench_plan(h, n, ptrs, ranks, dims, p, stream, err, len(err)):
                raise RuntimeError("plan: " + self.message())
            return self.lib.attnc_bench_plan_bytes(h)
        fn.keep = tensors  # the pointers above stay valid while fn lives
        fn.plan = plan
        fn.drop_plan = lambda: self.lib.attnc_bench_drop_plan(h)
        return fn


def setup_attnc(c, attnc, specs, q, k, v, extra, row):
    if attnc is None:
        raise RuntimeError("library not loaded")
    spec = os.path.join(specs, c["case"] + ".attn")
    dims = f"B={c['B']},H={c['H']},S={c['N']},D={c['D']}"
    if c["case"] == "gqa":
        dims += f",KV={c['KV']}"
    h, ms, cached = attnc.compile(spec, dims)
    row["compile_ms"], row["from_cache"] = ms, cached
    # NaN-filled so elements the kernel never writes fail the check.
    o = torch.full_like(q, float("nan"))
    tensors = [q, k, v] + [extra[name] for name in EXTRAS.get(c["case"], [])] + [o]
    return attnc.launcher(h, tensors, PARAMS.get(c["case"], "")), None


def setup_sdpa(backend, c, q, k, v, extra):
    kw = dict(is_causal=c["case"] != "dense")
    if c["H"] != c["KV"]:
        kw["enable_gqa"] = True

    def fn():
        return gate(c, extra, F.scaled_dot_product_attention(q, k, v, **kw))
    # The backend is pinned around the whole timed loop, not per call.
    return fn, lambda: sdpa_kernel(backend)


def setup_flex(c, q, k, v, extra, mods, row, bm_reps, bm_compiled):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    # A fresh compile per case: static shapes, and no recompile limit to hit.
    torch._dynamo.reset()
    flex = torch.compile(flex_attention, dynamic=False)
    score_mod, mask_mod = mods
    B, N = c["B"], c["N"]
    # Only the document and MoBA masks read b (MoBA also h); the others broadcast.
    mb = B if c["case"] in ("document", "moba") else None
    mh = c["H"] if c["case"] == "moba" else None
    block_mask = None
    if mask_mod is not None:
        t0 = time.perf_counter()
        # Per-head masks at full size would not fit uncompiled (B*H*N*N).
        build = torch.compile(create_block_mask) if c["case"] == "moba" else create_block_mask
        block_mask = build(mask_mod, mb, mh, N, N, device=q.device)
        torch.cuda.synchronize()
        if c["case"] == "moba":  # one call, torch.compile's time included
            row["block_mask_ms"] = (time.perf_counter() - t0) * 1e3
        if c["case"] == "document":
            row["block_mask_ms"] = time_block_mask(create_block_mask, mask_mod, mb, N, q.device, bm_reps)
            # The compiled builder is what a training loop would use. Its first
            # compile took over 3 minutes on a fresh GPU machine (an empty
            # inductor cache), so it is timed only with --bm-compiled.
            if bm_compiled:
                try:
                    row["block_mask_compiled_ms"] = time_block_mask(
                        torch.compile(create_block_mask), mask_mod, mb, N, q.device, bm_reps)
                except Exception as e:
                    log(f"  torch.compile(create_block_mask): {brief(e)}")
    kw = dict(score_mod=score_mod, block_mask=block_mask)
    if c["H"] != c["KV"]:
        kw["enable_gqa"] = True

    def fn():
        return gate(c, extra, flex(q, k, v, **kw))
    return fn, None


def time_block_mask(create, mask_mod, b, n, dev, reps):
    def once():
        torch.cuda.synchronize()
        t = time.perf_counter()
        create(mask_mod, b, None, n, n, device=dev)
        torch.cuda.synchronize()
        return (time.perf_counter() - t) * 1e3
    once()  # warm-up (and the compile, for the compiled builder)
    return statistics.median(once() for _ in range(reps))


# ---- timing -------------------------------------------------------------------

def time_ms(fn, reps, target_ms):
    """Median ms per call over `reps` event-timed loops of ~target_ms each."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(3):
        fn()
    end.record()
    end.synchronize()
    per = max(start.elapsed_time(end) / 3, 1e-3)
    iters = max(1, min(10000, math.ceil(target_ms / per)))
    times = []
    for _ in range(reps):
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / iters)
    return statistics.median(times)


def run_case(c, a, attnc, dev):
    name = c["case"]
    log(f"== {name} N={c['N']} D={c['D']} B={c['B']} H={c['H']}"
        + (f" KV={c['KV']}" if c["KV"] != c["H"] else ""))
    row = dict(c)
    q, k, v, extra = make_inputs(c, dev, a.seed)
    mods = make_mods(c, extra)
    row["flops"] = 4 * c["D"] * c["H"] * visible_pairs(c, extra.get("doc", extra.get("sel")))

    # Set up every contender and keep its first output for the check.
    setups = {
        "attnc": lambda: setup_attnc(c, attnc, a.specs, q, k, v, extra, row),
        "fa2": lambda: setup_sdpa(SDPBackend.FLASH_ATTENTION, c, q, k, v, extra),
        "cudnn": lambda: setup_sdpa(SDPBackend.CUDNN_ATTENTION, c, q, k, v, extra),
        "flex": lambda: setup_flex(c, q, k, v, extra, mods, row, a.bm_reps,
                                  a.bm_compiled),
    }
    fns, outs = {}, {}
    for who in CONTENDERS:
        if who in ("fa2", "cudnn") and name not in SDPA_CASES:
            continue
        try:
            fn, ctx = setups[who]()
            t = time.perf_counter()
            with (ctx or contextlib.nullcontext)():
                outs[who] = fn()
            torch.cuda.synchronize()
            fns[who] = (fn, ctx)
            if who == "flex":  # the first call is torch.compile's
                row["flex_compile_s"] = time.perf_counter() - t
        except Exception as e:
            row[f"{who}_error"] = brief(e)
            log(f"  {who}: {brief(e)}")

    # fp32 for small N; at large N the bf16 output of a trusted torch kernel.
    ref, row["ref"] = None, None
    # For moba, SDPA computes plain causal attention: only Flex is the same.
    trusted = ("flex",) if name == "moba" else ("flex", "cudnn", "fa2")
    if c["N"] > a.ref_max_n:
        for who in trusted:
            if who in outs:
                ref, row["ref"] = outs[who], who
                break
    if ref is None:
        try:
            ref, row["ref"] = reference_fp32(c, q, k, v, extra, mods), "fp32"
        except Exception as e:
            log(f"  reference: {brief(e)}")
    if ref is not None:
        for who, o in outs.items():
            if who == row["ref"] or (name == "moba" and who in ("fa2", "cudnn")):
                continue
            err, nans = max_err(o, ref)
            row[f"{who}_err"] = err
            if nans:
                row[f"{who}_nan"] = nans
            if name != "moba" or who != "attnc" or nans:
                continue
            # A top-k choice at a near tie may differ between torch and attnc:
            # count the rows off by more than TOL instead.
            bad = ((o.float() - ref.float()).abs().amax(-1) > TOL).float().mean().item()
            row["attnc_bad_row_fraction"] = bad
    row["mismatch"] = "attnc_err" in row and not row["attnc_err"] <= TOL
    if name == "moba" and "attnc_bad_row_fraction" in row and "attnc_nan" not in row:
        row["mismatch"] = row["attnc_bad_row_fraction"] > 1e-3
    del outs, ref
    torch.cuda.empty_cache()

    for who, (fn, ctx) in fns.items():
        try:
            with (ctx or contextlib.nullcontext)():
                ms = time_ms(fn, a.reps, a.target_ms)
            row[f"{who}_ms"] = ms
            row[f"{who}_tflops"] = row["flops"] / (ms * 1e9)
            log(f"  {LABELS[who]:11} {ms:9.3f} ms {row[f'{who}_tflops']:8.1f} TFLOP/s")
        except Exception as e:
            row[f"{who}_error"] = brief(e)
            log(f"  {who}: {brief(e)}")
    # Masks that read tensors: the tile plan built once per input (as every
    # layer of a model would share it), then launches that reuse it.
    if "attnc" in fns and name == "document":
        fn = fns["attnc"][0]
        try:
            row["attnc_plan_bytes"] = fn.plan()
            if row["attnc_plan_bytes"]:
                row["attnc_plan_ms"] = time_ms(fn.plan, a.reps, a.target_ms)
                row["attnc_planned_ms"] = time_ms(fn, a.reps, a.target_ms)
                row["attnc_planned_tflops"] = row["flops"] / (row["attnc_planned_ms"] * 1e9)
                log(f"  attnc plan  {row['attnc_plan_ms']:9.3f} ms ({row['attnc_plan_bytes']} bytes); "
                    f"launch with it {row['attnc_planned_ms']:.3f} ms "
                    f"{row['attnc_planned_tflops']:8.1f} TFLOP/s")
        except Exception as e:
            row["attnc_plan_error"] = brief(e)
            log(f"  attnc plan: {brief(e)}")
        finally:
            fn.drop_plan()
    for who in ("cudnn", "flex"):
        if row.get("attnc_tflops") and row.get(f"{who}_tflops"):
            row[f"attnc_over_{who}"] = row["attnc_tflops"] / row[f"{who}_tflops"]
    return row


# ---- output -----------------------------------------------------------------

def finite(x):
    # Strict JSON has no NaN or Infinity.
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def print_table(rows):
    f = lambda x, w, p=1: f"{x:{w}.{p}f}" if x is not None else f"{'-':>{w}}"
    log()
    log(f"{'case':15} {'N':>6} {'D':>4} {'attnc':>7} {'FA2':>7} {'cuDNN':>7} {'Flex':>7} "
        f"{'a/cuDNN':>7} {'a/Flex':>7} {'attnc err':>9} {'ref':>5} {'compile ms':>12}")
    for r in rows:
        err = r.get("attnc_err")
        if isinstance(err, float):
            err_s = f"{err:9.1e}"
        else:
            err_s = f"{'NaN' if err is not None else '-':>9}"
        if "compile_ms" in r:
            comp = f"{r['compile_ms']:.0f}" + (" (c)" if r["from_cache"] else "")
        else:
            comp = "-"
        log(f"{r['case']:15} {r['N']:6} {r['D']:4} "
            + " ".join(f(r.get(f"{w}_tflops"), 7) for w in CONTENDERS) + " "
            + f(r.get("attnc_over_cudnn"), 7, 2) + " " + f(r.get("attnc_over_flex"), 7, 2)
            + f" {err_s} {str(r.get('ref') or '-'):>5} {comp:>12}"
            + ("  MISMATCH" if r.get("mismatch") else ""))
    log("TFLOP/s over visible pairs; a/x = attnc TFLOP/s over x's; (c) = attnc compile from disk cache; "
        f"MISMATCH = attnc max abs error > {TOL:g} or NaN")
    for r in rows:
        if "block_mask_ms" in r:
            extra = ""
            if "block_mask_compiled_ms" in r:
                extra = f", {r['block_mask_compiled_ms']:.2f} ms under torch.compile"
            log(f"create_block_mask for {r['case']} N={r['N']} B={r['B']}: "
                f"{r['block_mask_ms']:.2f} ms (median){extra}")
        if "attnc_plan_ms" in r:
            log(f"attnc tile plan for document N={r['N']} B={r['B']}: {r['attnc_plan_ms']:.3f} ms; "
                f"launches with it {r['attnc_planned_tflops']:.1f} TFLOP/s "
                f"(without: {r.get('attnc_tflops') or 0:.1f})")


def plot_matplotlib(path, rows, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(8.0, 0.8 * len(rows) + 2), 4.8))
    w = 0.2
    for ci, who in enumerate(CONTENDERS):
        xs = [gi + (ci - 1.5) * w for gi in range(len(rows))]
        ax.bar(xs, [r.get(f"{who}_tflops") or 0.0 for r in rows], w, label=LABELS[who])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['case']}\nN={r['N']} D={r['D']}" for r in rows],
                       fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("TFLOP/s (visible pairs)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_fallback(path, rows):
    """Grouped bars with no text: one group per case in --json order, bars in
    CONTENDERS order, light grid lines every 100 TFLOP/s."""
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    bar, gap, pad, plot_h = 8, 12, 20, 300
    W = 2 * pad + max(1, len(rows)) * (len(CONTENDERS) * bar + gap)
    H = plot_h + 2 * pad
    img = bytearray(b"\xff" * (W * H * 3))

    def rect(x0, y0, x1, y1, col):
        x0, x1, y0, y1 = max(0, x0), min(W, x1), max(0, y0), min(H, y1)
        if x1 <= x0:
            return
        line = bytes(col) * (x1 - x0)
        for y in range(y0, y1):
            img[(y * W + x0) * 3:(y * W + x1) * 3] = line

    vals = [r.get(f"{w}_tflops") or 0.0 for r in rows for w in CONTENDERS]
    top = max(vals + [1.0])
    scale = plot_h / top
    base = H - pad
    for t in range(100, int(top) + 1, 100):
        y = base - int(t * scale)
        rect(pad, y, W - pad, y + 1, (220, 220, 220))
    for gi, r in enumerate(rows):
        x = pad + gi * (len(CONTENDERS) * bar + gap) + gap // 2
        for ci, who in enumerate(CONTENDERS):
            t = r.get(f"{who}_tflops")
            if t:
                rect(x + ci * bar, base - max(1, int(t * scale)), x + (ci + 1) * bar, base, colors[ci])
    rect(pad, base, W - pad, base + 1, (0, 0, 0))

    raw = b"".join(b"\x00" + bytes(img[y * W * 3:(y + 1) * W * 3]) for y in range(H))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n"
                  + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(raw, 9))
                  + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=os.path.join(ROOT, "build/lib/libattnc-gpu-bench.so"))
    ap.add_argument("--specs", default=os.path.join(ROOT, "bench/specs"))
    ap.add_argument("--cases", default="", help="comma list of " + ",".join(CASES))
    ap.add_argument("--lens", default="", help="N list for dense and causal")
    ap.add_argument("--quick", action="store_true", help="N=1024,4096 only, fewer reps")
    ap.add_argument("--reps", type=int, default=None, help="timed loops per contender (median)")
    ap.add_argument("--target-ms", type=float, default=None, help="length of one timed loop")
    ap.add_argument("--ref-max-n", type=int, default=4096,
                    help="largest N checked against fp32; above it Flex (or SDPA) bf16")
    ap.add_argument("--bm-reps", type=int, default=5, help="create_block_mask timings (median)")
    ap.add_argument("--bm-compiled", action="store_true",
                    help="also time torch.compile(create_block_mask) (minutes of compile when cold)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    ap.add_argument("--png", default="")
    a = ap.parse_args()
    if a.reps is None:
        a.reps = 5 if a.quick else 10
    if a.target_ms is None:
        a.target_ms = 10.0 if a.quick else 25.0

    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    dev = torch.device("cuda")
    # Make the primary context current before the library's driver calls use it.
    torch.empty(1, device=dev)

    title = (f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
             f"cuDNN {torch.backends.cudnn.version()}")
    log(f"# {title}")
    attnc = None
    try:
        attnc = Attnc(a.lib)
        log(f"# attnc: {a.lib}")
    except OSError as e:
        log(f"# attnc: cannot load {a.lib}: {brief(e)}")

    rows = []
    for c in make_cases(a):
        try:
            row = run_case(c, a, attnc, dev)
        except Exception as e:  # e.g. out of memory while making inputs
            row = dict(c, error=brief(e))
            log(f"  case failed: {brief(e)}")
        # The case's tensors die with run_case's frame; hand their memory back.
        gc.collect()
        torch.cuda.empty_cache()
        rows.append({k: finite(v) for k, v in row.items()})
        print(json.dumps(rows[-1]), flush=True)

    if a.json:
        with open(a.json, "w") as out:
            json.dump(dict(device=title, tol=TOL, bar_order=CONTENDERS,
                           bar_labels=[LABELS[w] for w in CONTENDERS],
                           png_without_matplotlib="no text: one group per case in 'cases' order, "
                           "bars in bar_order, grey lines every 100 TFLOP/s",
                           cases=rows), out, indent=1)
    if a.png:
        try:
            plot_matplotlib(a.png, rows, title)
        except ImportError:
            plot_fallback(a.png, rows)
        except Exception as e:
            log(f"# matplotlib failed ({brief(e)}); plain PNG instead")
            plot_fallback(a.png, rows)
    print_table(rows)


if __name__ == "__main__":
    main()

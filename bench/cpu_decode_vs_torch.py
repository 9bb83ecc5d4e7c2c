#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""CPU decode: attnc's paged kernels against PyTorch's CPU SDPA, same threads.

One decode step (one query per sequence) over `--tokens` keys per sequence,
GQA 32/8, D = 128. attnc runs `attnc-paged-decode-bench` (bf16, q8 and q4
pages of 16 tokens, read in place through block tables); PyTorch runs
`scaled_dot_product_attention` on contiguous bf16 tensors with
`enable_gqa=True`, at the same thread count, in the same run. Rounds
alternate the two sides and the `--variants` (environment settings for
attnc, `;`-separated, e.g. "ATTNC_CPU_SPLITS=1;" for without and with
split-KV); the table gives each side's best step and the ratio.

  python3 bench/cpu_decode_vs_torch.py --bin .device-carry/bin --threads 16 \\
      --seqs 1,4,32 --tokens 32768 --variants "ATTNC_CPU_SPLITS=1;"
"""
import argparse
import os
import subprocess
import time


def attnc_step(binary, seqs, tokens, threads, runs, env):
    """Best step ms of bf16, q8 and q4 pages from attnc-paged-decode-bench."""
    out = subprocess.run(
        [binary, f"--seqs={seqs}", f"--tokens={tokens}", f"--threads={threads}",
         f"--runs={runs}"],
        env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    steps = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in ("bf16", "q8", "q4"):
            steps[fields[0]] = float(fields[1])
    return steps


def torch_inputs(torch, seqs, tokens):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(seqs, heads, n, 128, generator=gen).bfloat16()
            for heads, n in ((32, 1), (8, tokens), (8, tokens))]


def torch_step(torch, inputs, threads, runs):
    """Best step ms of PyTorch's CPU SDPA, bf16, GQA 32/8."""
    torch.set_num_threads(threads)
    q, k, v = inputs
    sdpa = torch.nn.functional.scaled_dot_product_attention
    sdpa(q, k, v, enable_gqa=True)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        sdpa(q, k, v, enable_gqa=True)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def parse_variants(text):
    variants = []
    for part in text.split(";"):
        env = {}
        for item in part.split(","):
            if item.strip():
                key, value = item.strip().split("=", 1)
                env[key] = value
        variants.append(env)
    return variants


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seqs", default="1,4,32")
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="", help="attnc environments, ';'-separated")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    binary = os.path.join(args.bin, "attnc-paged-decode-bench")
    variants = parse_variants(args.variants)
    torch = None
    if not args.no_torch:
        import torch as torch_module
        torch = torch_module
    print(f"# CPU decode step, GQA 32/8, D=128, {args.tokens} tokens per sequence, "
          f"{args.threads} threads, best of {args.runs} runs per round, {args.rounds} rounds")
    print(f"{'seqs':>4} {'attnc variant':<24} {'bf16 ms':>8} {'q8 ms':>8} {'q4 ms':>8} "
          f"{'torch bf16 ms':>13} {'bf16 vs torch':>13}")
    for seqs in (int(s) for s in args.seqs.split(",")):
        best = [dict() for _ in variants]
        torch_best = float("inf")
        inputs = torch_inputs(torch, seqs, args.tokens) if torch is not None else None
        for _ in range(args.rounds):
            for n, env in enumerate(variants):
                steps = attnc_step(binary, seqs, args.tokens, args.threads, args.runs, env)
                for quant, ms in steps.items():
                    best[n][quant] = min(best[n].get(quant, float("inf")), ms)
            if torch is not None:
                torch_best = min(torch_best, torch_step(torch, inputs, args.threads, args.runs))
        for n, env in enumerate(variants):
            name = ",".join(f"{k}={v}" for k, v in env.items()) or "default"
            steps = best[n]
            ratio = torch_best / steps["bf16"] if torch is not None else float("nan")
            torch_text = f"{torch_best:13.3f}" if torch is not None else f"{'-':>13}"
            print(f"{seqs:>4} {name:<24} {steps['bf16']:8.3f} {steps['q8']:8.3f} "
                  f"{steps['q4']:8.3f} {torch_text} {ratio:12.2f}x", flush=True)


if __name__ == "__main__":
    main()

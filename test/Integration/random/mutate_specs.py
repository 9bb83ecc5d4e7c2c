#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Broken specs through the whole driver: no crash, no hang, no internal error.

Takes the example specs and the CPU test inputs, changes a few tokens of each
(deleted, duplicated, replaced by another token or an extreme number), and
runs every mutant through `attnc` as a user would: parse (--emit=attn),
lowering (--emit=lowered), CUDA emission (--emit=cuda) and --run against the
reference. Each must end with exit 0, or exit 1 with a diagnostic (for
--run, also a mismatch it reports); exit 2 (attnc's internal errors), a
signal, a timeout, or "internal error" / "LLVM ERROR" / an assertion in the
output fails. The libFuzzer target (frontends/spec/fuzz) covers the parser alone;
this covers what comes after it for the mutants that still parse.

  mutate_specs.py BIN_DIR SEED COUNT WORKDIR

The test command runs a few (ctest spec-mutations); longer campaigns take
other seeds and counts (2,400 mutants ran clean on 2026-12-05).
"""

import os
import random
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
REPLACEMENTS = [
    "(", ")", "{", "}", "[", "]", ",", ":", "->", "=", "+", "-", "*", "/", "<", ">", "<=",
    "==", "&&", "||", "?", "!", "0", "1", "-1", "99999999999999999999", "1e400", "0.0",
    "nan", "inf", "i", "j", "b", "h", "S", "T", "D", "q", "k", "v", "mask", "score", "gate",
    "let", "param", "f32", "bf16", "i32", "i64", "#", '"', "_", "max", "min", "exp", "log",
    "sqrt", "tanh", "sigmoid", "abs", "%", "@",
]
EXTREME = ["0", "-1", "2147483648", "9223372036854775808", "65536", "3"]
BAD_OUTPUT = re.compile(r"LLVM ERROR|Assertion|Stack dump|internal error|UNREACHABLE")
COMMANDS = [
    ["--emit=attn", "-o", os.devnull],
    ["--emit=lowered", "-o", os.devnull],
    ["--emit=cuda", "-o", os.devnull],
    ["--run", "-D", "S=33", "--run-threads=1"],
]


def mutate(rng, text):
    tokens = re.findall(r"\w+|\s+|[^\w\s]+", text)
    for _ in range(rng.randint(1, 4)):
        if not tokens:
            break
        i = rng.randrange(len(tokens))
        r = rng.random()
        if r < 0.25:
            del tokens[i]
        elif r < 0.5:
            tokens.insert(i, rng.choice(REPLACEMENTS))
        elif r < 0.7:
            tokens[i] = rng.choice(REPLACEMENTS)
        elif r < 0.85:
            tokens.insert(i, tokens[rng.randrange(len(tokens))])
        elif tokens[i].isdigit():
            tokens[i] = rng.choice(EXTREME)
        else:
            tokens[i] = tokens[i] * rng.randint(2, 3)
    return "".join(tokens)


def main():
    bin_dir, seed, count, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    work.mkdir(parents=True, exist_ok=True)
    seeds = sorted((ROOT / "examples").glob("*.attn")) + sorted(
        (ROOT / "test/Integration/cpu/Inputs").glob("*.attn"))
    texts = [p.read_text() for p in seeds]
    rng = random.Random(seed)
    env = dict(os.environ, ATTNC_CACHE_DIR="off")
    parsed = 0
    for n in range(count):
        path = work / f"mutant_{seed}_{n}.attn"
        path.write_text(mutate(rng, rng.choice(texts)))
        for args in COMMANDS:
            try:
                r = subprocess.run([os.path.join(bin_dir, "attnc"), str(path)] + args,
                                   capture_output=True, text=True, timeout=60, env=env)
            except subprocess.TimeoutExpired:
                sys.exit(f"FAILED: attnc {path} {' '.join(args)} ran past 60 s")
            out = r.stdout + r.stderr
            if r.returncode not in (0, 1) or BAD_OUTPUT.search(out):
                sys.exit(f"FAILED: attnc {path} {' '.join(args)} exited {r.returncode}:\n"
                         f"{out[-2000:]}")
            if args[0] == "--emit=attn" and r.returncode == 0:
                parsed += 1
            if r.returncode != 0:
                break  # later stages would report the same error
    print(f"{count} mutants from seed {seed}: {parsed} parsed, every command ended cleanly "
          f"(the mutants are in {work})")


if __name__ == "__main__":
    main()

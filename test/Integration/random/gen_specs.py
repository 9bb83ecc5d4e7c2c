#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Writes random, well-formed attention specs for differential testing.

Each spec draws a kernel (softmax or sigmoid), an alignment, params,
consts, extra tensors and random mask, score and gate regions, built from
the whole expression language: int and float arithmetic (floor division
and modulo with positive and negative divisors), comparisons, && || !,
?: and select, min, max, abs, the float builtins, int()/float(), tensor
reads (also indexed by int tensor values), params and consts.

The specs are valid by construction and keep their values finite and
their reads in range on the conformance shapes (S <= T), so any failure of
the kernels against the f64 reference, of a block plan against the mask
(attnc-sparsity-soundness) or of the compiler itself is a bug in attnc.
Divisors that vary are kept away from zero (abs(e) + 1), float values
bounded (tanh, sigmoid, small factors), so that f32 and f64 agree within
the tolerances.

  gen_specs.py --seed N --count C --out DIR
"""

import argparse
import os
import random


class Gen:
    def __init__(self, rng):
        self.r = rng

    def chance(self, p):
        return self.r.random() < p

    # -- the spec's frame ---------------------------------------------------

    def spec(self, name):
        r = self.r
        self.kernel = "sigmoid" if self.chance(0.2) else "softmax"
        self.align = "end" if self.chance(0.35) else "start"
        # i ranges over [0, S) with align = start and over [T - S, T) with
        # align = end; on the conformance shapes (S <= T) both lie in [0, T).
        self.qdim = "S" if self.align == "start" else "T"
        # A paged spec reads K and V through a block table (f32/bf16/f16, q8
        # or q4 pages), with fixed head counts (as the CUDA paged kernel
        # needs); there is no T, so only tensors that positions do not
        # index go with it.
        self.paged = self.chance(0.25)
        gqa = self.chance(0.3)
        hq = "4" if gqa else "2" if self.paged else "H"
        hkv = "2" if gqa or self.paged else "H"
        self.tensors = {}  # name -> (dtype, index builders per region kind)
        self.int_params, self.float_params = [], []
        self.int_consts, self.float_consts = [], []
        extras = []
        lines = []
        n = 0
        for _ in range(r.randint(0, 2)):
            n += 1
            if self.chance(0.6):
                pname = "w%d" % n
                lines.append("param %s: i32 = %d" % (pname, r.randint(-4, 40)))
                self.int_params.append(pname)
            else:
                pname = "f%d" % n
                lines.append("param %s: f32 = %s" % (pname, self.flit(-1.0, 1.0)))
                self.float_params.append(pname)
        for _ in range(r.randint(0, 2)):
            n += 1
            if self.chance(0.6):
                cname = "c%d" % n
                lines.append("const %s = %d %s %d" % (cname, r.randint(1, 9), r.choice("+*-"),
                                                      r.randint(1, 9)))
                self.int_consts.append(cname)
            else:
                cname = "k%d" % n
                lines.append("const %s = %s * %s" % (cname, self.flit(0.1, 1.0),
                                                     self.flit(0.5, 2.0)))
                self.float_consts.append(cname)
        # Extra tensors: float per (b, h, i, j), per head, per key, per row
        # and feature (gates); int segment ids (nondecreasing small values in
        # the checker) per position, also used to index a small table.
        qd = self.qdim
        self.list_mask = self.topk = None
        dv = "E" if self.chance(0.2) else "D"
        choices = [
            ("slope", "f32[%s]" % hq, "f",
             {"mask": "slope[h]", "score": "slope[h]", "gate": "slope[h]"}),
            ("tab", "f16[5]", "f",
             {"mask": "tab[abs(%s) %% 5]", "score": "tab[abs(%s) %% 5]",
              "gate": "tab[abs(%s) %% 5]"}),
        ]
        if not self.paged:
            choices += [
                ("bias", "f32[B, %s, %s, T]" % (hq, qd), "f",
                 {"mask": "bias[b, h, i, j]", "score": "bias[b, h, i, j]"}),
                ("kb", "f32[B, T]", "f", {"mask": "kb[b, j]", "score": "kb[b, j]"}),
                ("gl", "f32[B, %s, %s, %s]" % (hq, qd, dv), "f", {"gate": "gl[b, h, i, d]"}),
                ("gr", "bf16[B, %s, %s]" % (hq, qd), "f",
                 {"gate": "gr[b, h, i]", "score": "gr[b, h, i]", "mask": "gr[b, h, i]"}),
                ("doc", "i32[B, T]", "i",
                 {"mask": ["doc[b, i]", "doc[b, j]"], "score": ["doc[b, i]", "doc[b, j]"],
                  "gate": ["doc[b, i]"]}),
            ]
        r.shuffle(choices)
        for tname, decl, kind, uses in choices[:r.randint(0, 3)]:
            extras.append("%s: %s" % (tname, decl))
            self.tensors[tname] = (kind, uses)
        if self.paged:
            quant = r.choice(["f32", "f32", "q8", "q4"])
            groups = r.choice([1, 2, 4])
            ps = r.choice(["PS", "PS", "8"])
            args = ["q: f32[B, %s, S, 64]" % hq, "k: %s[P, %s, %s, 64]" % (quant, hkv, ps),
                    "v: %s[P, %s, %s, 64]" % (quant, hkv, ps)]
            paged = "paged(pages, lens)"
            if quant != "f32":
                args += ["k_scale: f32[P, %s, %s, %d]" % (hkv, ps, groups),
                         "v_scale: f32[P, %s, %s, %d]" % (hkv, ps, groups)]
                paged = "paged(pages, lens, k_scale, v_scale)"
            args += ["pages: i32[B, M]", "lens: i32[B]"] + extras
            outs = ["o: f32[B, %s, S, 64]" % hq]
            lines.append("kv = %s" % paged)
        else:
            if self.chance(0.1):
                # Block lists: for each 64-row query block, ids of 32-key blocks.
                extras += ["kvi: i32[B, %s, QB, L]" % hq, "kvn: i32[B, %s, QB]" % hq]
                self.list_mask = "listed(kvi[b, h, i / 64], kvn[b, h, i / 64], j / 32)"
            elif self.chance(0.1):
                self.topk = "topk(%d, %d, %d%s)" % (r.randint(1, 4), r.choice([16, 32, 64]),
                                                    r.choice([16, 32, 64]),
                                                    r.choice(["", ", true", ", false"]))
            args = ["q: f32[B, %s, S, D]" % hq, "k: f32[B, %s, T, D]" % hkv,
                    "v: f32[B, %s, T, %s]" % (hkv, dv)] + extras
            outs = ["o: f32[B, %s, S, %s]" % (hq, dv)]
            if self.chance(0.25) and not self.topk and not self.list_mask:
                # Fixed lengths: the block plan is made at compile time.
                sl = r.choice([1, 7, 64, 100])
                tl = r.choice([sl, sl + 13, 2 * sl + 64])
                args = [a.replace(", S, ", ", %d, " % sl).replace(", S]", ", %d]" % sl)
                        .replace(", T, ", ", %d, " % tl).replace(", T]", ", %d]" % tl)
                        for a in args]
                outs = [o.replace(", S, ", ", %d, " % sl) for o in outs]
            if dv == "E":
                # A value dim of its own, fixed (the checker sizes symbolic
                # ones like the head dim).
                args = [a.replace(", E]", ", 32]") for a in args]
                outs = [o.replace(", E]", ", 32]") for o in outs]
        if self.kernel == "softmax" and self.chance(0.4):
            outs.append("lse: f32[B, %s, %s]" % (hq, outs[0].split(", ")[2]))
        lines.append("scale = %s" % r.choice(["0.125", "rsqrt(64.0)", "0.25", "0.0625"]))
        if self.kernel != "softmax" or self.chance(0.3):
            lines.append("kernel = %s" % self.kernel)
        if self.align != "start" or self.chance(0.2):
            lines.append("align = %s" % self.align)
        if self.chance(0.75) or self.list_mask or self.topk:
            lines += self.region("mask", "mask(b, h, i, j)")
        if self.chance(0.6):
            lines += self.region("score", "score(s, b, h, i, j)")
        if self.chance(0.4):
            lines += self.region("gate", "gate(x, b, h, i, d)")
        head = "attention %s(%s)\n    -> (%s) {\n" % (name, ", ".join(args), ", ".join(outs))
        return head + "".join("  %s\n" % l for l in lines) + "}\n"

    def region(self, kind, signature):
        self.kind = kind
        self.ivars = {"mask": ["b", "h", "i", "j"], "score": ["b", "h", "i", "j"],
                      "gate": ["b", "h", "i", "d"]}[kind]
        self.fvars = {"mask": [], "score": ["s"], "gate": ["x"]}[kind]
        self.lets_i, self.lets_f, self.lets_b = [], [], []
        body = []
        if self.chance(0.35):
            for n in range(self.r.randint(1, 3)):
                t = self.r.choice("ifb" if kind != "mask" else "ib")
                name = "%s_%s%d" % (kind[0], t, n)
                body.append("let %s = %s" % (name, self.expr(t, 3)))
                {"i": self.lets_i, "f": self.lets_f, "b": self.lets_b}[t].append(name)
        if kind == "mask":
            top = self.expr("b", 4)
            if self.chance(0.5):
                top = "%s && %s" % (self.structured_mask(), "(%s)" % top if self.chance(0.5)
                                    else self.structured_mask())
            for special in (self.list_mask, self.topk):
                if special:
                    top = special if self.chance(0.3) else "%s && %s" % (
                        special, self.structured_mask() if self.chance(0.6) else "(%s)" % top)
        elif kind == "score":
            e = self.bounded(self.expr("f", 4))
            top = self.r.choice(["s + %s" % e, "s * (1.0 + 0.5 * %s)" % e,
                                 "4.0 * tanh(s / 4.0) + %s" % e])
        else:
            e = self.bounded(self.expr("f", 4))
            top = self.r.choice(["x * %s" % e, "x + 0.25 * %s" % e, "x * (1.0 + %s)" % e])
        if body:
            return ["%s {" % signature] + ["  " + b for b in body] + \
                   ["  return %s" % top, "}"]
        return ["%s = %s" % (signature, top)]

    # -- expressions -------------------------------------------------------
    #
    # Three kinds: ints ("i", exact in the kernel and the reference), bools
    # ("b") and floats ("f"). Floats that feed a comparison, floor, ceil or
    # int() must be exact too ("e": data, params, consts and literals,
    # moved only by operations that do not round), or the f32 kernel and the
    # f64 reference could fall on two sides of a threshold. Other floats are
    # smooth functions of bounded values, so f32 rounding stays far inside
    # the tolerances.

    def flit(self, lo, hi):
        return "%.3f" % self.r.uniform(lo, hi)

    def bounded(self, e):
        """A float in (-1, 1) made from any float expression."""
        return self.r.choice(["tanh(%s)", "sigmoid(%s)", "0.5 * tanh(%s)",
                              "(2.0 * sigmoid(%s) - 1.0)"]) % e

    def structured_mask(self):
        """The shapes the block-sparsity analysis knows, with random constants."""
        r = self.r
        c = r.randint(1, 70)
        w = r.choice(self.int_params) if self.int_params and self.chance(0.4) else str(c)
        return r.choice([
            "j <= i", "j < i", "i - j < %s" % w, "j >= i - %s" % w, "abs(i - j) <= %s" % w,
            "i / %d == j / %d" % (c, c), "j / %d <= i / %d" % (c, c),
            "(j < %d || j > i - %s)" % (r.randint(1, 8), w),
            "j %% %d == i %% %d" % (r.randint(1, 5), r.randint(1, 5)),
            "j >= %d" % r.randint(0, 40), "i - j >= %d" % r.randint(-5, 20),
        ])

    def tensor_reads(self, kind):
        out = []
        for name, (k, uses) in self.tensors.items():
            if k == kind and self.kind in uses:
                use = uses[self.kind]
                out += use if isinstance(use, list) else [use]
        return out

    def leaf(self, t):
        r = self.r
        if t == "i":
            reads = self.tensor_reads("i")
            if reads and self.chance(0.3):
                return r.choice(reads)
            if self.chance(0.3):
                return str(r.randint(-9, 40))
            return r.choice(self.ivars + self.lets_i + self.int_params + self.int_consts)
        if t in ("f", "e"):
            reads = self.tensor_reads("f")
            if reads and self.chance(0.4):
                use = r.choice(reads)
                return use % self.expr("i", 1) if "%s" in use else use
            pool = self.float_params + self.float_consts
            if t == "f":
                pool = pool + self.fvars + self.lets_f
            if pool and self.chance(0.7):
                return r.choice(pool)
            return self.flit(-2.0, 2.0)
        if self.lets_b and self.chance(0.3):
            return r.choice(self.lets_b)
        return r.choice(["true", "false"]) if self.chance(0.1) else self.cmp(1)

    def cmp(self, depth):
        r = self.r
        if self.chance(0.65):
            return "(%s %s %s)" % (self.expr("i", depth), r.choice(["<", "<=", ">", ">=", "==", "!="]),
                                   self.expr("i", depth))
        return "(%s %s %s)" % (self.expr("e", depth), r.choice(["<", "<=", ">", ">=", "!="]),
                               self.expr("e", depth))

    def expr(self, t, depth):
        r = self.r
        if depth <= 0 or self.chance(0.25):
            return self.leaf(t)
        d = depth - 1
        if t == "i":
            op = r.choice(["+", "-", "*", "/", "%", "min", "max", "abs", "neg", "sel", "int",
                           "/c", "%c"])
            if op in "+-":
                return "(%s %s %s)" % (self.expr("i", d), op, self.expr("i", d))
            if op == "*":  # one small factor keeps products small
                return "(%s * %d)" % (self.expr("i", d), r.randint(-3, 3))
            if op in ("/", "%"):  # a varying divisor, never zero
                return "(%s %s (abs(%s) + 1))" % (self.expr("i", d), op, self.expr("i", d))
            if op in ("/c", "%c"):
                return "(%s %s %d)" % (self.expr("i", d), op[0],
                                       r.choice([-7, -3, -2, 2, 3, 5, 16, 64]))
            if op in ("min", "max"):
                return "%s(%s, %s)" % (op, self.expr("i", d), self.expr("i", d))
            if op == "abs":
                return "abs(%s)" % self.expr("i", d)
            if op == "neg":
                return "(-%s)" % self.expr("i", d)
            if op == "sel":
                return "(%s ? %s : %s)" % (self.expr("b", d), self.expr("i", d), self.expr("i", d))
            return "int(%s * %s)" % (r.choice(["4.0", "0.5", "16.0"]), self.expr("e", d))
        if t == "e":
            op = r.choice(["min", "max", "abs", "neg", "sel", "pow2", "float", "floor", "ceil"])
            if op in ("min", "max"):
                return "%s(%s, %s)" % (op, self.expr("e", d), self.expr("e", d))
            if op in ("abs", "floor", "ceil"):
                return "%s(%s)" % (op, self.expr("e", d))
            if op == "neg":
                return "(-%s)" % self.expr("e", d)
            if op == "sel":
                return "select(%s, %s, %s)" % (self.expr("b", d), self.expr("e", d), self.expr("e", d))
            if op == "pow2":
                return "(%s * %s)" % (self.expr("e", d), r.choice(["2.0", "0.25", "0.5"]))
            return "float(%s)" % self.expr("i", d)
        if t == "f":
            op = r.choice(["+", "-", "*", "/", "min", "max", "abs", "fn", "sel", "float", "neg", "e"])
            if op in "+-":
                return "(%s %s %s)" % (self.expr("f", d), op, self.expr("f", d))
            if op == "*":
                return "(%s * %s)" % (self.expr("f", d), self.bounded(self.expr("f", d)))
            if op == "/":
                return "(%s / (1.5 + %s))" % (self.expr("f", d), self.bounded(self.expr("f", d)))
            if op in ("min", "max"):
                return "%s(%s, %s)" % (op, self.expr("f", d), self.expr("f", d))
            if op == "abs":
                return "abs(%s)" % self.expr("f", d)
            if op == "neg":
                return "(-%s)" % self.expr("f", d)
            if op == "fn":
                e = self.expr("f", d)
                return r.choice(["tanh(%s)" % e, "sigmoid(%s)" % e,
                                 "exp(%s)" % self.bounded(e), "log(1.0 + abs(%s))" % e,
                                 "sqrt(1.0 + abs(%s))" % e, "rsqrt(1.0 + abs(%s))" % e])
            if op == "sel":
                return "select(%s, %s, %s)" % (self.expr("b", d), self.expr("f", d), self.expr("f", d))
            if op == "float":  # positions reach a few hundred
                return "(float(%s) * 0.01)" % self.expr("i", d)
            if op == "e":
                return self.expr("e", d)
            return "(-%s)" % self.expr("f", d)
        op = r.choice(["&&", "||", "!", "cmp", "cmp"])
        if op in ("&&", "||"):
            return "(%s %s %s)" % (self.expr("b", d), op, self.expr("b", d))
        if op == "!":
            return "(!%s)" % self.expr("b", d)
        return self.cmp(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for n in range(a.count):
        seed = a.seed * 100003 + n
        g = Gen(random.Random(seed))
        name = "random_%d" % seed
        text = "# gen_specs.py, seed %d\n" % seed + g.spec(name)
        with open(os.path.join(a.out, name + ".attn"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

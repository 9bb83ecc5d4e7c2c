//===- attn_decode_combine.cuh - Merge the key splits of paged decode -----===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Appended after either split kernel of the paged form (attn_decode_paged.cuh,
// attn_decode_mma.cuh). Both leave, per key split and query row, the
// unnormalized accumulator, its max and its sum in `part`:
// [B][Hkv][splits][G * S][DV + 2]. ATTNC_COMBINE: one CTA per query row
// merges the splits, applies the gate and writes o and lse.
//
//===----------------------------------------------------------------------===//

/// Stores one output element in o's type.
ATTNC_DEV void attnc_store_one(const AttncArgs &a, attnc_index at, float x) {
#if ATTNC_OUT == 0
  a.o[at] = x;
#elif ATTNC_OUT == 1
  a.o[at] = attnc_f32_to_bf16(x);
#else
  a.o[at] = attnc_f32_to_f16(x);
#endif
}

extern "C" __global__ void __launch_bounds__(128)
    ATTNC_COMBINE(const AttncArgs args, float *part, int keysPerSplit, int splits, int *flag) {
  // One CTA per query row (b, h, s).
  const attnc_index row = blockIdx.x;
  const attnc_index s = row % args.S, h = (row / args.S) % args.Hq, b = row / (args.S * args.Hq);
  const int G = static_cast<int>(args.Hq / args.Hkv), S = static_cast<int>(args.S), R = G * S;
  const attnc_index hk = h / G;
  const int r = static_cast<int>((h % G) * S + s);
  attnc_index len = ATTNC_SEQ_LENS(args)[b];
  attnc_index width = ATTNC_TABLE_WIDTH(args);
  len = len < 0 ? 0 : len > width * args.pageTokens ? width * args.pageTokens : len;
  AttncArgs a = args;
  a.T = len;
  const float *in = part + ((b * args.Hkv + hk) * splits) * R * (ATTNC_DV + 2);
  const attnc_index stride = static_cast<attnc_index>(R) * (ATTNC_DV + 2);
  float m = -ATTNC_INF;
  for (int sp = 0; sp < splits; ++sp)
    m = fmaxf(m, in[sp * stride + r * (ATTNC_DV + 2) + ATTNC_DV]);
  float l = 0.f;
  for (int sp = 0; sp < splits; ++sp) {
    const float *x = in + sp * stride + r * (ATTNC_DV + 2);
#if ATTNC_SIGMOID
    l += x[ATTNC_DV + 1];
#else
    if (x[ATTNC_DV] != -ATTNC_INF)
      l += x[ATTNC_DV + 1] * attnc_exp2((x[ATTNC_DV] - m) * 1.4426950408889634f);
#endif
  }
  const attnc_index i = s + (ATTNC_ALIGN_END ? len - S : 0);
  (void)i, (void)a; // used by the gate, if any
  for (int d = threadIdx.x; d < ATTNC_DV; d += 128) {
    float o = 0.f;
    for (int sp = 0; sp < splits; ++sp) {
      const float *x = in + sp * stride + r * (ATTNC_DV + 2);
#if ATTNC_SIGMOID
      o += x[d];
#else
      if (x[ATTNC_DV] != -ATTNC_INF)
        o += x[d] * attnc_exp2((x[ATTNC_DV] - m) * 1.4426950408889634f);
#endif
    }
#if !ATTNC_SIGMOID
    o = l > 0.f ? o / l : 0.f;
#endif
#if ATTNC_HAS_GATE
    o = attnc_gate(a, attnc_gate_row(a, b, h, i), o, b, h, i, d);
#endif
    attnc_store_one(args, ((b * args.Hq + h) * args.S + s) * ATTNC_DV + d, o);
  }
#if ATTNC_HAS_LSE
  if (threadIdx.x == 0)
    args.lse[(b * args.Hq + h) * args.S + s] = l > 0.f ? m + __logf(l) : -ATTNC_INF;
#endif
}

//===- attn_decode_paged.cuh - Split-KV decode over paged keys and values -===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The kernel template for the paged form (kv = paged(...)), appended after
// the generated AttncArgs and region functions. Two kernels:
//
//  ATTNC_KERNEL: one CTA per (key split, KV head, sequence). It serves all
//  G * S query rows of its KV head (GQA rows packed, so each page is read
//  once), walks its split's keys in tiles of ATTNC_DECODE_TK: the tile's
//  rows are copied raw (bf16/f16, q8 or q4 codes and their scales) from the
//  pages the block table names into shared memory with 16-byte loads, then
//  dequantized where they are used. Online softmax per row; the unnormalized
//  accumulator, max and sum go to a scratch buffer.
//
//  ATTNC_COMBINE: one CTA per query row merges the splits, applies the gate
//  and writes o and lse.
//
// Table entries outside [0, pages) and lengths outside [0, M * PS] are never
// followed: those keys are dropped and the error flag is raised, which the
// runtime reports.
//
//===----------------------------------------------------------------------===//

#define ATTNC_TK ATTNC_DECODE_TK
#if ATTNC_KV_FORMAT == 0
#define ATTNC_KROW (2 * ATTNC_D)
#define ATTNC_VROW (2 * ATTNC_DV)
#elif ATTNC_KV_FORMAT == 1
#define ATTNC_KROW (ATTNC_D)
#define ATTNC_VROW (ATTNC_DV)
#else
#define ATTNC_KROW (ATTNC_D / 2)
#define ATTNC_VROW (ATTNC_DV / 2)
#endif
// Shared rows are padded by 16 bytes: 16-byte loads of neighbouring keys then
// start in different banks.
#define ATTNC_KSTRIDE (ATTNC_KROW + 16)
#define ATTNC_VSTRIDE (ATTNC_VROW + 16)
#define ATTNC_DV_PER_THREAD ((ATTNC_DV + 127) / 128)

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

/// Feature d of a shared key or value row, dequantized.
ATTNC_DEV float attnc_kv_at(const unsigned char *row, const float *scales, int d, int groupSize) {
#if ATTNC_KV_FORMAT == 0
  attnc_b16 h = reinterpret_cast<const attnc_b16 *>(row)[d];
#if ATTNC_F16
  return attnc_f16_to_f32(h);
#else
  return attnc_bf16_to_f32(h);
#endif
#elif ATTNC_KV_FORMAT == 1
  return static_cast<float>(static_cast<signed char>(row[d])) * scales[d / groupSize];
#else
  unsigned char byte = row[d >> 1];
  int code = static_cast<int>((d & 1) ? (byte >> 4) : (byte & 15)) - 8;
  return static_cast<float>(code) * scales[d / groupSize];
#endif
}

/// Dot product of a scaled query row (f32, shared) with a shared key row.
ATTNC_DEV float attnc_dot_key(const float *q, const unsigned char *row, const float *scales) {
  float acc = 0.f;
#if ATTNC_KV_FORMAT == 0
#pragma unroll 4
  for (int c = 0; c < ATTNC_D / 8; ++c) {
    uint4 w = reinterpret_cast<const uint4 *>(row)[c];
    float4 q0 = reinterpret_cast<const float4 *>(q)[2 * c];
    float4 q1 = reinterpret_cast<const float4 *>(q)[2 * c + 1];
    unsigned u[4] = {w.x, w.y, w.z, w.w};
    float x[8];
#pragma unroll
    for (int n = 0; n < 4; ++n) {
#if ATTNC_F16
      x[2 * n] = attnc_f16_to_f32(static_cast<attnc_b16>(u[n] & 0xffff));
      x[2 * n + 1] = attnc_f16_to_f32(static_cast<attnc_b16>(u[n] >> 16));
#else
      x[2 * n] = __uint_as_float(u[n] << 16);
      x[2 * n + 1] = __uint_as_float(u[n] & 0xffff0000u);
#endif
    }
    acc += q0.x * x[0] + q0.y * x[1] + q0.z * x[2] + q0.w * x[3] + q1.x * x[4] + q1.y * x[5] +
           q1.z * x[6] + q1.w * x[7];
  }
#elif ATTNC_KV_FORMAT == 1
  constexpr int group = ATTNC_D / ATTNC_GROUPS_K;
#pragma unroll 2
  for (int c = 0; c < ATTNC_D / 16; ++c) {
    uint4 w = reinterpret_cast<const uint4 *>(row)[c];
    unsigned u[4] = {w.x, w.y, w.z, w.w};
    float part = 0.f;
    // 16 features: within one group when groups are 16 or more.
#pragma unroll
    for (int n = 0; n < 16; ++n) {
      int code = static_cast<signed char>((u[n / 4] >> (8 * (n % 4))) & 0xff);
      float s = group >= 16 ? 1.f : scales[(16 * c + n) / group];
      part += q[16 * c + n] * static_cast<float>(code) * s;
    }
    acc += group >= 16 ? part * scales[16 * c / group] : part;
  }
#else
  constexpr int group = ATTNC_D / ATTNC_GROUPS_K;
#pragma unroll 2
  for (int c = 0; c < ATTNC_D / 32; ++c) {
    uint4 w = reinterpret_cast<const uint4 *>(row)[c];
    unsigned u[4] = {w.x, w.y, w.z, w.w};
    float part = 0.f;
#pragma unroll
    for (int n = 0; n < 32; ++n) {
      int code = static_cast<int>((u[n / 8] >> (4 * (n % 8))) & 15) - 8;
      float s = group >= 32 ? 1.f : scales[(32 * c + n) / group];
      part += q[32 * c + n] * static_cast<float>(code) * s;
    }
    acc += group >= 32 ? part * scales[32 * c / group] : part;
  }
#endif
  return acc;
}

extern "C" __global__ void __launch_bounds__(128)
    ATTNC_KERNEL(const AttncArgs args, float *part, int keysPerSplit, int splits, int *flag) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int hk = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
  const int G = static_cast<int>(args.Hq / args.Hkv), S = static_cast<int>(args.S);
  // Rows (g, s) of this KV head, ATTNC_DECODE_ROWS per CTA: blockIdx.x is
  // split * rowChunks + chunk.
  const int rowsAll = G * S;
  const int rowChunks = (rowsAll + ATTNC_DECODE_ROWS - 1) / ATTNC_DECODE_ROWS;
  const int split = blockIdx.x / rowChunks, r0 = (blockIdx.x % rowChunks) * ATTNC_DECODE_ROWS;
  const int R = rowsAll - r0 < ATTNC_DECODE_ROWS ? rowsAll - r0 : ATTNC_DECODE_ROWS;
  const attnc_index pageTokens = args.pageTokens, width = ATTNC_TABLE_WIDTH(args);
  attnc_index len = ATTNC_SEQ_LENS(args)[b];
  if (len < 0 || len > width * pageTokens) {
    if (tid == 0)
      atomicExch(flag, 1);
    len = len < 0 ? 0 : width * pageTokens;
  }
  // The regions see this sequence's own length as kv_len.
  AttncArgs a = args;
  a.T = len;
  const attnc_index begin = static_cast<attnc_index>(split) * keysPerSplit;
  const attnc_index end = begin + keysPerSplit < len ? begin + keysPerSplit : len;
  const attnc_index iOffset = ATTNC_ALIGN_END ? len - S : 0;

  float *qs = reinterpret_cast<float *>(smem);                       // [R][D]
  unsigned char *ks = smem + 4 * R * ATTNC_D;                         // [TK][KSTRIDE]
  unsigned char *vs = ks + ATTNC_TK * ATTNC_KSTRIDE;                  // [TK][VSTRIDE]
  float *ksc = reinterpret_cast<float *>(vs + ATTNC_TK * ATTNC_VSTRIDE); // [TK][GROUPS_K]
  float *vsc = ksc + ATTNC_TK * ATTNC_GROUPS_K;                       // [TK][GROUPS_V]
  float *p = vsc + ATTNC_TK * ATTNC_GROUPS_V;                         // [R][TK]
  float *rowM = p + R * ATTNC_TK, *rowL = rowM + R, *rowCorr = rowL + R;
  // Each key's page * PS + slot; -1 for a key whose page is invalid. (All
  // shared memory is dynamic: the runtime lets the kernel have it all.)
  int *tileKeys = reinterpret_cast<int *>(rowCorr + R);

  for (int x = tid; x < R * ATTNC_D; x += 128) {
    int r = x / ATTNC_D, d = x % ATTNC_D;
    attnc_index h = hk * G + (r0 + r) / S, s = (r0 + r) % S;
    attnc_b16 raw = args.q[((b * args.Hq + h) * args.S + s) * ATTNC_D + d];
#if ATTNC_F16
    qs[x] = attnc_f16_to_f32(raw) * ATTNC_SCALE;
#else
    qs[x] = attnc_bf16_to_f32(raw) * ATTNC_SCALE;
#endif
  }
  for (int r = tid; r < R; r += 128) {
    rowM[r] = -ATTNC_INF;
    rowL[r] = 0.f;
  }
  float acc[ATTNC_DECODE_ROWS][ATTNC_DV_PER_THREAD];
#pragma unroll
  for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
#pragma unroll
    for (int c = 0; c < ATTNC_DV_PER_THREAD; ++c)
      acc[r][c] = 0.f;

  const unsigned char *kBase = reinterpret_cast<const unsigned char *>(args.k);
  const unsigned char *vBase = reinterpret_cast<const unsigned char *>(args.v);
  for (attnc_index t0 = begin; t0 < end; t0 += ATTNC_TK) {
    const int n = static_cast<int>(end - t0 < ATTNC_TK ? end - t0 : ATTNC_TK);
    __syncthreads(); // the previous tile is consumed
    for (int jj = tid; jj < n; jj += 128) {
      attnc_index j = t0 + jj;
      int page = ATTNC_PAGE_TABLE(args)[b * width + j / pageTokens];
      if (page < 0 || page >= args.pages) {
        atomicExch(flag, 1);
        page = -1;
      }
      tileKeys[jj] = page < 0 ? -1 : static_cast<int>(j % pageTokens) + page * static_cast<int>(pageTokens);
    }
    __syncthreads();
    // Raw rows, 16 bytes per load, K and V together.
    constexpr int kChunks = ATTNC_KROW / 16, vChunks = ATTNC_VROW / 16;
    for (int c = tid; c < n * (kChunks + vChunks); c += 128) {
      int jj = c / (kChunks + vChunks), piece = c % (kChunks + vChunks);
      int at = tileKeys[jj];
      uint4 w;
      w.x = w.y = w.z = w.w = 0;
      if (at >= 0) {
        attnc_index page = at / pageTokens, slot = at % pageTokens;
        if (piece < kChunks)
          w = *reinterpret_cast<const uint4 *>(kBase + page * args.kPageBytes +
                                               (hk * pageTokens + slot) * ATTNC_KROW + 16 * piece);
        else
          w = *reinterpret_cast<const uint4 *>(vBase + page * args.vPageBytes +
                                               (hk * pageTokens + slot) * ATTNC_VROW +
                                               16 * (piece - kChunks));
      }
      if (piece < kChunks)
        *reinterpret_cast<uint4 *>(ks + jj * ATTNC_KSTRIDE + 16 * piece) = w;
      else
        *reinterpret_cast<uint4 *>(vs + jj * ATTNC_VSTRIDE + 16 * (piece - kChunks)) = w;
    }
#if ATTNC_KV_FORMAT != 0
    for (int c = tid; c < n * (ATTNC_GROUPS_K + ATTNC_GROUPS_V); c += 128) {
      int jj = c / (ATTNC_GROUPS_K + ATTNC_GROUPS_V), g = c % (ATTNC_GROUPS_K + ATTNC_GROUPS_V);
      int at = tileKeys[jj];
      float s = 0.f;
      if (at >= 0) {
        attnc_index page = at / pageTokens, slot = at % pageTokens;
        const unsigned char *base =
            reinterpret_cast<const unsigned char *>(g < ATTNC_GROUPS_K ? ATTNC_K_SCALE(args)
                                                                       : ATTNC_V_SCALE(args));
        attnc_index pageBytes = g < ATTNC_GROUPS_K ? args.ksPageBytes : args.vsPageBytes;
        int groups = g < ATTNC_GROUPS_K ? ATTNC_GROUPS_K : ATTNC_GROUPS_V;
        int gg = g < ATTNC_GROUPS_K ? g : g - ATTNC_GROUPS_K;
        s = reinterpret_cast<const float *>(base + page * pageBytes)[(hk * pageTokens + slot) * groups + gg];
      }
      if (g < ATTNC_GROUPS_K)
        ksc[jj * ATTNC_GROUPS_K + g] = s;
      else
        vsc[jj * ATTNC_GROUPS_V + g - ATTNC_GROUPS_K] = s;
    }
#endif
    __syncthreads();
    // Scores: lanes take neighbouring keys of one row.
    for (int x = tid; x < R * ATTNC_TK; x += 128) {
      int r = x / ATTNC_TK, jj = x % ATTNC_TK;
      float s = -ATTNC_INF;
      if (jj < n && tileKeys[jj] >= 0) {
        attnc_index h = hk * G + (r0 + r) / S, i = (r0 + r) % S + iOffset, j = t0 + jj;
        s = attnc_dot_key(qs + r * ATTNC_D, ks + jj * ATTNC_KSTRIDE, ksc + jj * ATTNC_GROUPS_K);
#if ATTNC_HAS_SCORE
        s = attnc_score(a, s, b, h, i, j);
#endif
#if ATTNC_HAS_MASK
        if (!attnc_mask(a, b, h, i, j))
          s = -ATTNC_INF;
#endif
      }
      p[x] = s;
    }
    __syncthreads();
    // Online softmax: a warp per row, the tile's max and sum by shuffles.
    for (int r = tid / 32; r < R; r += 4) {
      int lane = tid % 32;
      float mt = -ATTNC_INF;
      for (int jj = lane; jj < ATTNC_TK; jj += 32)
        mt = fmaxf(mt, p[r * ATTNC_TK + jj]);
#pragma unroll
      for (int o = 16; o; o >>= 1)
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      float mOld = rowM[r], mNew = fmaxf(mOld, mt);
      float sum = 0.f;
      for (int jj = lane; jj < ATTNC_TK; jj += 32) {
        float s = p[r * ATTNC_TK + jj];
#if ATTNC_SIGMOID
        float w = s == -ATTNC_INF ? 0.f : 1.f / (1.f + attnc_exp2(-s * 1.4426950408889634f));
#else
        float w = s == -ATTNC_INF ? 0.f : attnc_exp2((s - mNew) * 1.4426950408889634f);
#endif
        p[r * ATTNC_TK + jj] = w;
        sum += w;
      }
#pragma unroll
      for (int o = 16; o; o >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
      __syncwarp();
      if (lane == 0) {
#if ATTNC_SIGMOID
        rowCorr[r] = 1.f;
#else
        float corr = mOld == -ATTNC_INF ? 0.f : attnc_exp2((mOld - mNew) * 1.4426950408889634f);
        rowCorr[r] = corr;
        rowL[r] = rowL[r] * corr + sum;
        rowM[r] = mNew;
#endif
      }
    }
    __syncthreads();
    // P.V: a thread per value feature (and 128 more), all rows.
#pragma unroll
    for (int c = 0; c < ATTNC_DV_PER_THREAD; ++c) {
      int d = tid + 128 * c;
      if (d >= ATTNC_DV)
        break;
#pragma unroll
      for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
        if (r < R)
          acc[r][c] *= rowCorr[r];
      for (int jj = 0; jj < n; ++jj) {
        float v = attnc_kv_at(vs + jj * ATTNC_VSTRIDE, vsc + jj * ATTNC_GROUPS_V, d,
                              ATTNC_DV / ATTNC_GROUPS_V);
#pragma unroll
        for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
          if (r < R)
            acc[r][c] += p[r * ATTNC_TK + jj] * v;
      }
    }
  }
  __syncthreads();
  // Partials: [B][Hkv][splits][G * S][DV + 2] = accumulator, max, sum.
  float *out = part + (((static_cast<attnc_index>(b) * args.Hkv + hk) * splits + split) * rowsAll +
                       r0) *
                          (ATTNC_DV + 2);
#pragma unroll
  for (int c = 0; c < ATTNC_DV_PER_THREAD; ++c) {
    int d = tid + 128 * c;
    if (d < ATTNC_DV)
#pragma unroll
      for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
        if (r < R)
          out[r * (ATTNC_DV + 2) + d] = acc[r][c];
  }
  for (int r = tid; r < R; r += 128) {
    out[r * (ATTNC_DV + 2) + ATTNC_DV] = rowM[r];
    out[r * (ATTNC_DV + 2) + ATTNC_DV + 1] = rowL[r];
  }
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
    o = attnc_gate(a, o, b, h, i, d);
#endif
    attnc_store_one(args, ((b * args.Hq + h) * args.S + s) * ATTNC_DV + d, o);
  }
#if ATTNC_HAS_LSE
  if (threadIdx.x == 0)
    args.lse[(b * args.Hq + h) * args.S + s] = l > 0.f ? m + __logf(l) : -ATTNC_INF;
#endif
}

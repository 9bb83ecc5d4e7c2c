//===- attn_decode_paged.cuh - Split-KV decode over paged keys and values -===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The kernel template for the paged form (kv = paged(...)), appended after
// the generated AttncArgs and region functions. Two kernels:
//
//  ATTNC_KERNEL: one CTA per (key split, row chunk, KV head, sequence). It
//  serves up to ATTNC_DECODE_ROWS query rows (g, s) of its KV head (GQA rows
//  packed, so a page is read once for all of them) and walks its split's
//  keys in tiles of ATTNC_DECODE_TK. Tiles are double-buffered: while one is
//  used, cp.async copies the next one's rows raw (bf16/f16, q8 or q4 codes,
//  and scales) from the pages the block table names into shared memory.
//  Scores: eight lanes per key, each with its slice of the query rows in
//  registers, summed by shuffles. P.V: a thread per pair of value features,
//  the two halves of the CTA on alternate keys. Codes are dequantized where
//  they are used. Online softmax per row; the unnormalized accumulator, max
//  and sum of each row go to a scratch buffer.
//
//  The combine kernel (attn_decode_combine.cuh) follows it.
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

#define ATTNC_LOG2E_F 1.4426950408889634f
// Per lane of a key's eight: D / 8 query features, read from shared rows in
// 32-bit words (bf16/f16: 2 features, q8: 4, q4: 8).
#define ATTNC_LANE_D (ATTNC_D / 8)
#if ATTNC_KV_FORMAT == 0
#define ATTNC_PER_WORD 2
#elif ATTNC_KV_FORMAT == 1
#define ATTNC_PER_WORD 4
#else
#define ATTNC_PER_WORD 8
#endif
#define ATTNC_LANE_WORDS (ATTNC_LANE_D / ATTNC_PER_WORD)
#define ATTNC_GROUP_K (ATTNC_D / ATTNC_GROUPS_K)
#define ATTNC_GROUP_V (ATTNC_DV / ATTNC_GROUPS_V)

/// The features of one 32-bit word of a shared row, as f32 (codes times
/// `scale`, which is 1 for bf16/f16).
ATTNC_DEV void attnc_unpack_word(unsigned w, float scale, float (&x)[ATTNC_PER_WORD]) {
#if ATTNC_KV_FORMAT == 0
#if ATTNC_F16
  x[0] = attnc_f16_to_f32(static_cast<attnc_b16>(w & 0xffff));
  x[1] = attnc_f16_to_f32(static_cast<attnc_b16>(w >> 16));
#else
  x[0] = __uint_as_float(w << 16);
  x[1] = __uint_as_float(w & 0xffff0000u);
#endif
#elif ATTNC_KV_FORMAT == 1
#pragma unroll
  for (int n = 0; n < 4; ++n)
    x[n] = static_cast<float>(static_cast<int>(w << (24 - 8 * n)) >> 24) * scale;
#else
#pragma unroll
  for (int n = 0; n < 8; ++n)
    x[n] = static_cast<float>(static_cast<int>((w >> (4 * n)) & 15) - 8) * scale;
#endif
}

/// Value features 8t .. 8t + 7 of a shared row as f32, from one shared
/// load (and one scale: value groups hold a multiple of 8 features).
ATTNC_DEV void attnc_value_eight(const unsigned char *row, const float *scales, int t,
                                 float (&v)[8]) {
#if ATTNC_KV_FORMAT == 0
  uint4 w = *reinterpret_cast<const uint4 *>(row + 16 * t);
  unsigned u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int n = 0; n < 4; ++n) {
    float x[2];
    attnc_unpack_word(u[n], 1.f, x);
    v[2 * n] = x[0];
    v[2 * n + 1] = x[1];
  }
#else
  float s = scales[8 * t / ATTNC_GROUP_V];
#if ATTNC_KV_FORMAT == 1
  uint2 w = *reinterpret_cast<const uint2 *>(row + 8 * t);
  unsigned u[2] = {w.x ^ 0x80808080u, w.y ^ 0x80808080u};
  const float bias = -128.f * s;
#pragma unroll
  for (int e = 0; e < 8; ++e)
    v[e] = (__uint_as_float(0x4B000000u | ((u[e / 4] >> (8 * (e % 4))) & 0xff)) - 8388608.f) * s +
           bias;
#else
  unsigned u = *reinterpret_cast<const unsigned *>(row + 4 * t);
  const float bias = -8.f * s;
#pragma unroll
  for (int e = 0; e < 8; ++e)
    v[e] = (__uint_as_float(0x4B000000u | ((u >> (4 * e)) & 15)) - 8388608.f) * s + bias;
#endif
#endif
}

extern "C" __global__ void __launch_bounds__(128, ATTNC_MIN_BLOCKS)
    ATTNC_KERNEL(const AttncArgs args, float *part, int keysPerSplit, int splits, int *flag) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int hk = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
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

  // Shared memory: two tiles of raw rows and scales, then the tile's
  // weights [TK][4 rows], the row statistics, two tiles of page slots.
  constexpr int kTileBytes = ATTNC_TK * (ATTNC_KSTRIDE + ATTNC_VSTRIDE) +
                             4 * ATTNC_TK * (ATTNC_GROUPS_K + ATTNC_GROUPS_V);
  static_assert(2 * kTileBytes >= 16384, "the key groups' sums reuse the tile buffers");
  float *p = reinterpret_cast<float *>(smem + 2 * kTileBytes); // [TK][4]
  float *rowM = p + 4 * ATTNC_TK, *rowL = rowM + 4, *rowCorr = rowL + 4;
  int *tileKeys = reinterpret_cast<int *>(rowCorr + 4); // [2][TK]
  auto tileK = [&](int buf) { return smem + buf * kTileBytes; };
  auto tileV = [&](int buf) { return smem + buf * kTileBytes + ATTNC_TK * ATTNC_KSTRIDE; };
  auto tileKS = [&](int buf) {
    return reinterpret_cast<float *>(smem + buf * kTileBytes +
                                     ATTNC_TK * (ATTNC_KSTRIDE + ATTNC_VSTRIDE));
  };
  auto tileVS = [&](int buf) { return tileKS(buf) + ATTNC_TK * ATTNC_GROUPS_K; };

  // This lane's slice of its key's features, for every row, in registers.
  const int keyLane = lane % 8, keyOfWarp = lane / 8;
  float qr[ATTNC_DECODE_ROWS][ATTNC_LANE_D];
#pragma unroll
  for (int r = 0; r < ATTNC_DECODE_ROWS; ++r) {
    int rr = r < R ? r : R - 1;
    attnc_index h = hk * G + (r0 + rr) / S, s = (r0 + rr) % S;
    const attnc_b16 *qRow = args.q + ((b * args.Hq + h) * args.S + s) * ATTNC_D + keyLane * ATTNC_LANE_D;
#pragma unroll
    for (int d = 0; d < ATTNC_LANE_D; ++d)
#if ATTNC_F16
      qr[r][d] = attnc_f16_to_f32(qRow[d]) * ATTNC_SCALE;
#else
      qr[r][d] = attnc_bf16_to_f32(qRow[d]) * ATTNC_SCALE;
#endif
  }
#if ATTNC_KV_FORMAT != 0
  // Per row and word of this lane's slice: the sum of the query features.
  float qsum[ATTNC_DECODE_ROWS][ATTNC_LANE_WORDS];
#pragma unroll
  for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
#pragma unroll
    for (int w = 0; w < ATTNC_LANE_WORDS; ++w) {
      qsum[r][w] = 0.f;
#pragma unroll
      for (int e = 0; e < ATTNC_PER_WORD; ++e)
        qsum[r][w] += qr[r][w * ATTNC_PER_WORD + e];
    }
#endif
  if (tid < 4) {
    rowM[tid] = -ATTNC_INF;
    rowL[tid] = 0.f;
  }
  constexpr int kThreadsPerKey = ATTNC_DV / 8, kKeyGroups = 128 / kThreadsPerKey;
  const int keyGroup = tid / kThreadsPerKey, featureT = tid % kThreadsPerKey;
  float acc[ATTNC_DECODE_ROWS][8];
#pragma unroll
  for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
#pragma unroll
    for (int e = 0; e < 8; ++e)
      acc[r][e] = 0.f;

  const unsigned char *kBase = reinterpret_cast<const unsigned char *>(args.k);
  const unsigned char *vBase = reinterpret_cast<const unsigned char *>(args.v);
  // Starts copying the tile at t0 into buffer `buf`. 128 / TK threads share
  // a key: one table lookup each, then every piece of the key's rows.
  const int pageTokens32 = static_cast<int>(pageTokens);
  auto stage = [&](attnc_index t0, int buf) {
    const int n = static_cast<int>(end - t0 < ATTNC_TK ? end - t0 : ATTNC_TK);
    constexpr int perKey = 128 / ATTNC_TK;
    constexpr int kChunks = ATTNC_KROW / 16, vChunks = ATTNC_VROW / 16;
    const int jj = tid / perKey, first = tid % perKey;
    if (jj < n) {
      const int j = static_cast<int>(t0) + jj; // keys per sequence fit in 32 bits
      int page = __ldg(ATTNC_PAGE_TABLE(args) + b * width + j / pageTokens32);
      const bool ok = page >= 0 && page < args.pages;
      if (!ok)
        page = 0;
      if (first == 0) {
        tileKeys[buf * ATTNC_TK + jj] = ok ? 1 : -1;
        if (!ok)
          atomicExch(flag, 1);
      }
      const attnc_index row = static_cast<attnc_index>(hk) * pageTokens32 + j % pageTokens32;
      const unsigned char *kRow = kBase + page * args.kPageBytes + row * ATTNC_KROW;
      const unsigned char *vRow = vBase + page * args.vPageBytes + row * ATTNC_VROW;
#pragma unroll
      for (int c = first; c < kChunks + vChunks; c += perKey) {
        if (c < kChunks)
          attnc_cp_async16(tileK(buf) + jj * ATTNC_KSTRIDE + 16 * c, kRow + 16 * c, ok);
        else
          attnc_cp_async16(tileV(buf) + jj * ATTNC_VSTRIDE + 16 * (c - kChunks),
                           vRow + 16 * (c - kChunks), ok);
      }
#if ATTNC_KV_FORMAT != 0
      const unsigned char *ks = reinterpret_cast<const unsigned char *>(ATTNC_K_SCALE(args)) +
                                page * args.ksPageBytes + 4 * row * ATTNC_GROUPS_K;
      const unsigned char *vs = reinterpret_cast<const unsigned char *>(ATTNC_V_SCALE(args)) +
                                page * args.vsPageBytes + 4 * row * ATTNC_GROUPS_V;
      for (int g = first; g < ATTNC_GROUPS_K + ATTNC_GROUPS_V; g += perKey) {
        if (g < ATTNC_GROUPS_K)
          attnc_cp_async4(tileKS(buf) + jj * ATTNC_GROUPS_K + g, ks + 4 * g, ok);
        else
          attnc_cp_async4(tileVS(buf) + jj * ATTNC_GROUPS_V + g - ATTNC_GROUPS_K,
                          vs + 4 * (g - ATTNC_GROUPS_K), ok);
      }
#endif
    }
    attnc_cp_async_commit();
  };

  int buf = 0;
  if (begin < end)
    stage(begin, 0);
  for (attnc_index t0 = begin; t0 < end; t0 += ATTNC_TK, buf ^= 1) {
    const int n = static_cast<int>(end - t0 < ATTNC_TK ? end - t0 : ATTNC_TK);
    if (t0 + ATTNC_TK < end) {
      stage(t0 + ATTNC_TK, buf ^ 1);
      attnc_cp_async_wait_one();
    } else {
      attnc_cp_async_wait_all();
    }
    __syncthreads();
    const unsigned char *K = tileK(buf), *V = tileV(buf);
    const float *KS = tileKS(buf), *VS = tileVS(buf);
    const int *valid = tileKeys + buf * ATTNC_TK;

    // Scores: eight lanes per key, four keys per warp at a time.
    for (int jj = warp * 4 + keyOfWarp; jj < ATTNC_TK; jj += 16) {
      float dot[ATTNC_DECODE_ROWS];
#pragma unroll
      for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
        dot[r] = 0.f;
      if (jj < n) {
        const unsigned *words = reinterpret_cast<const unsigned *>(
            K + jj * ATTNC_KSTRIDE + keyLane * ATTNC_LANE_D * ATTNC_KROW / ATTNC_D);
#pragma unroll
        for (int w = 0; w < ATTNC_LANE_WORDS; ++w) {
#if ATTNC_KV_FORMAT == 0
          float x[ATTNC_PER_WORD];
          attnc_unpack_word(words[w], 1.f, x);
#pragma unroll
          for (int e = 0; e < ATTNC_PER_WORD; ++e)
#pragma unroll
            for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
              dot[r] += qr[r][w * ATTNC_PER_WORD + e] * x[e];
#else
          // Codes as unsigned fields u = code + offset, made floats by
          // or-ing them into 2^23's mantissa; the offset and the word's
          // scale apply once per word: scale * (sum q u - offset * sum q).
          int f = keyLane * ATTNC_LANE_D + w * ATTNC_PER_WORD; // first feature of the word
          float scale = KS[jj * ATTNC_GROUPS_K + f / ATTNC_GROUP_K];
#if ATTNC_KV_FORMAT == 1
          unsigned word = words[w] ^ 0x80808080u;
          constexpr int bits = 8;
          constexpr unsigned mask = 0xff;
          constexpr float offset = 128.f;
#else
          unsigned word = words[w];
          constexpr int bits = 4;
          constexpr unsigned mask = 15;
          constexpr float offset = 8.f;
#endif
          float u[ATTNC_PER_WORD];
#pragma unroll
          for (int e = 0; e < ATTNC_PER_WORD; ++e)
            u[e] = __uint_as_float(0x4B000000u | ((word >> (bits * e)) & mask)) - 8388608.f;
#pragma unroll
          for (int r = 0; r < ATTNC_DECODE_ROWS; ++r) {
            float part = 0.f;
#pragma unroll
            for (int e = 0; e < ATTNC_PER_WORD; ++e)
              part += qr[r][w * ATTNC_PER_WORD + e] * u[e];
            dot[r] += scale * (part - offset * qsum[r][w]);
          }
#endif
        }
      }
#pragma unroll
      for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
#pragma unroll
        for (int o = 4; o; o >>= 1)
          dot[r] += __shfl_xor_sync(0xffffffffu, dot[r], o);
      // Lane r of the key's eight finishes row r.
#pragma unroll
      for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
        if (keyLane == r) {
          float s = -ATTNC_INF;
          if (r < R && jj < n && valid[jj] > 0) {
            attnc_index h = hk * G + (r0 + r) / S, i = (r0 + r) % S + iOffset, j = t0 + jj;
            (void)h, (void)i, (void)j, (void)a; // used by the regions, if any
            s = dot[r];
#if ATTNC_HAS_SCORE
            s = attnc_score(a, s, b, h, i, j);
#endif
#if ATTNC_HAS_MASK
            if (!attnc_mask(a, b, h, i, j))
              s = -ATTNC_INF;
#endif
          }
          p[jj * 4 + r] = r < R ? s : 0.f; // rows past R weigh nothing
        }
    }
    __syncthreads();
    // Online softmax: warp r takes row r.
    if (warp < R) {
      const int r = warp;
      float mt = -ATTNC_INF;
      for (int jj = lane; jj < ATTNC_TK; jj += 32)
        mt = fmaxf(mt, p[jj * 4 + r]);
#pragma unroll
      for (int o = 16; o; o >>= 1)
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      float mOld = rowM[r], mNew = fmaxf(mOld, mt);
      float sum = 0.f;
      for (int jj = lane; jj < ATTNC_TK; jj += 32) {
        float s = p[jj * 4 + r];
#if ATTNC_SIGMOID
        float w = s == -ATTNC_INF ? 0.f : 1.f / (1.f + attnc_exp2(-s * ATTNC_LOG2E_F));
#else
        float w = s == -ATTNC_INF ? 0.f : attnc_exp2((s - mNew) * ATTNC_LOG2E_F);
#endif
        p[jj * 4 + r] = w;
        sum += w;
      }
#pragma unroll
      for (int o = 16; o; o >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
      __syncwarp(); // every lane has read rowM[r] before lane 0 updates it
      if (lane == 0) {
#if ATTNC_SIGMOID
        rowCorr[r] = 1.f;
#else
        float corr = mOld == -ATTNC_INF ? 0.f : attnc_exp2((mOld - mNew) * ATTNC_LOG2E_F);
        rowCorr[r] = corr;
        rowL[r] = rowL[r] * corr + sum;
        rowM[r] = mNew;
#endif
      }
    } else if (warp >= R && tid - 32 * R < 4 - R) {
      rowCorr[R + tid - 32 * R] = 1.f; // rows this CTA does not have
    }
    __syncthreads();
    // P.V: Dv / 8 threads per key, each with eight value features (one
    // shared load); the CTA's key groups take every keyGroups-th key, and
    // their sums meet at the end.
    float corr[ATTNC_DECODE_ROWS];
#pragma unroll
    for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
      corr[r] = rowCorr[r];
#pragma unroll
    for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
#pragma unroll
      for (int e = 0; e < 8; ++e)
        acc[r][e] *= corr[r];
    for (int jj = keyGroup; jj < n; jj += kKeyGroups) {
      float4 w4 = *reinterpret_cast<const float4 *>(p + jj * 4);
      float w[4] = {w4.x, w4.y, w4.z, w4.w};
      float v[8];
      attnc_value_eight(V + jj * ATTNC_VSTRIDE, VS + jj * ATTNC_GROUPS_V, featureT, v);
#pragma unroll
      for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
#pragma unroll
        for (int e = 0; e < 8; ++e)
          acc[r][e] += w[r] * v[e];
    }
    __syncthreads(); // the buffer is free for the copy two tiles on
  }
  // The key groups' sums meet in the (now free) tile buffers:
  // [keyGroups][4 rows][DV] floats, 16 KB.
  float *groupAcc = reinterpret_cast<float *>(smem);
#pragma unroll
  for (int r = 0; r < ATTNC_DECODE_ROWS; ++r)
#pragma unroll
    for (int e = 0; e < 8; ++e)
      groupAcc[(keyGroup * 4 + r) * ATTNC_DV + 8 * featureT + e] = acc[r][e];
  __syncthreads();
  // Partials: [B][Hkv][splits][G * S][DV + 2] = accumulator, max, sum.
  float *out = part + (((static_cast<attnc_index>(b) * args.Hkv + hk) * splits + split) * rowsAll +
                       r0) *
                          (ATTNC_DV + 2);
  for (int x = tid; x < R * ATTNC_DV; x += 128) {
    int r = x / ATTNC_DV, f = x % ATTNC_DV;
    float sum = 0.f;
#pragma unroll
    for (int g = 0; g < kKeyGroups; ++g)
      sum += groupAcc[(g * 4 + r) * ATTNC_DV + f];
    out[r * (ATTNC_DV + 2) + f] = sum;
  }
  if (tid < R) {
    out[tid * (ATTNC_DV + 2) + ATTNC_DV] = rowM[tid];
    out[tid * (ATTNC_DV + 2) + ATTNC_DV + 1] = rowL[tid];
  }
}

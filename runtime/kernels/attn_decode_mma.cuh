//===- attn_decode_mma.cuh - Paged split-KV decode on the tensor cores ----===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The split kernel of the paged form on sm_90 and up for D = Dv of 64 or 128
// (attn_decode_paged.cuh serves the rest), appended after the generated
// AttncArgs and region functions; the combine kernel
// (attn_decode_combine.cuh) follows.
//
// One CTA per (key split, chunk of 8 query rows, KV head, sequence), four
// warps. The split's keys are cut into four runs, one per warp, and each
// warp streams its run alone through its own ring of ATTNC_DECODE_STAGES
// tiles of ATTNC_DECODE_TK keys, so no warp ever waits for another:
//  - Lanes 0-3 copy a tile's K rows, V rows and (q8, q4) their scales page
//    by page with bulk copies (cp.async.bulk), one tensor per lane (scale
//    rows of one or two groups: every lane, a key's words each), which
//    complete on the stage's mbarrier, STAGES - 1 tiles ahead of use. Page ids come from a window of 32 table entries,
//    one per lane, loaded a window ahead: no copy waits for a table read.
//  - Transposed products on mma.m16n8k16, so that keys and features fill
//    the 16 rows and the few query rows (the GQA heads and positions of one
//    KV head, read once for all of them) the 8 columns: S^T = K Q^T, then
//    O^T += V^T P^T. Each thread reads its slice of a key's row straight
//    from shared memory as K's A fragment; q8 and q4 codes become bf16
//    (f16) pairs in registers (a q4 nibble or-ed into the mantissa of
//    128.0, minus 136, times the group's scale). A thread's features need
//    not be adjacent (attnc_pair_feature): Q's fragments are gathered in
//    the same order. movmatrix transposes the value pairs into V^T's A
//    fragments and the weights into P^T's B fragments, and the
//    accumulator's rows come out in the same feature order.
//  - q4 rows whose scale groups are whole blocks of 64 features
//    (ATTNC_Q4_RAW): a thread reads 8-byte pieces of a row instead of a
//    quarter, so that each k-step of K and each 16-feature tile of V lies in
//    one group. K's codes enter the product raw (128 + n: the offset is
//    taken out through the accumulator's start value, q's group sum times
//    136) and the group's scale multiplies the f32 partial score; V's codes
//    lose their offset exactly and the group's scale multiplies the weight.
//    Scaled K codes would each be rounded to bf16, which put pages of one
//    scale per row of 64 features past the conformance tolerance; this also
//    takes two packed multiplies per pair of K's codes, one per pair of V's.
//  - q8 rows of one scale each (ATTNC_Q8_RAW): the same, with the codes
//    themselves (|n| <= 127, exact in bf16 and f16) and no offset.
//  - Online softmax per row in registers; a warp rescales its accumulator
//    only when some row's max moved.
// At the end the warps' states meet in shared memory and the CTA writes, per
// row, the accumulator, its max and its sum, which ATTNC_COMBINE merges.
//
// Table entries outside [0, pages) and lengths outside [0, M * PS] are never
// followed: those keys are dropped and the error flag is raised.
//
//===----------------------------------------------------------------------===//

#define ATTNC_TK ATTNC_DECODE_TK
#define ATTNC_STAGES ATTNC_DECODE_STAGES
#if ATTNC_KV_FORMAT == 0
#define ATTNC_ROW (2 * ATTNC_D)
#define ATTNC_SCALE_BYTES 0
#else
#if ATTNC_KV_FORMAT == 1
#define ATTNC_ROW (ATTNC_D)
#else
#define ATTNC_ROW (ATTNC_D / 2)
#endif
#define ATTNC_SCALE_BYTES (4 * (ATTNC_GROUPS_K + ATTNC_GROUPS_V))
#endif
// ATTNC_SCALE_LANES (set by attnc): scale rows of one or two groups (4 or
// 8 bytes a key) are not whole 16-byte pieces, which bulk copies need; every
// lane then copies its keys' scales with cp.async, and each stage's barrier
// also waits for the 32 lanes' copies (cp.async.mbarrier.arrive.noinc).
// Packed pairs of a key's row per thread; also the output's n8 tiles.
#define ATTNC_NR (ATTNC_D / 8)
#define ATTNC_STAGE_BYTES (ATTNC_TK * (2 * ATTNC_ROW + ATTNC_SCALE_BYTES))
// mbarriers and valid-key masks of every warp's stages, then the rings.
#define ATTNC_RING_OFFSET ((4 * ATTNC_STAGES * 16 + 127) / 128 * 128)
#define ATTNC_LOG2E_F 1.4426950408889634f
// A tile's valid keys, one bit each: 32-bit masks cost fewer instructions.
#if ATTNC_TK <= 32
typedef unsigned attnc_keymask;
#else
typedef unsigned long long attnc_keymask;
#endif
#define ATTNC_ALL_KEYS ((attnc_keymask(2) << (ATTNC_TK - 1)) - 1)

/// The feature of a key's row that half `e` of packed pair `r` of thread
/// `t` holds. bf16/f16: thread t reads 16-byte pieces t, t + 4, ... (the
/// quad then covers 64 adjacent bytes); q8 and q4: thread t reads the t-th
/// quarter of the row, and a q4 word's pairs are nibbles (i, i + 4); raw q4
/// codes: thread t reads 8-byte pieces t, t + 4, ... (16 features each), so
/// pairs 8c to 8c + 7 of the quad are features 64c to 64c + 63.
// Raw q4 codes with more than one group per row: 8-byte pieces per thread
// (a quarter of a row of 64 features is one piece anyway).
#define ATTNC_Q4_PIECES (ATTNC_Q4_RAW && (ATTNC_GROUPS_K > 1 || ATTNC_GROUPS_V > 1))
ATTNC_DEV int attnc_pair_feature(int r, int t, int e) {
#if ATTNC_KV_FORMAT == 0
  return 8 * (4 * (r / 4) + t) + 2 * (r % 4) + e;
#elif ATTNC_KV_FORMAT == 1
  return ATTNC_D / 4 * t + 2 * r + e;
#elif ATTNC_Q4_PIECES
  return 64 * (r / 8) + 16 * t + 8 * (r / 4 % 2) + r % 4 + 4 * e;
#else
  return ATTNC_D / 4 * t + 8 * (r / 4) + r % 4 + 4 * e;
#endif
}

// q4 codes or-ed into the mantissa of 128.0 (1024.0 for f16) read 128 + n
// (1024 + n); adding ATTNC_Q4_MINUS_OFFSET (packed -136, -1032) leaves n - 8.
#if ATTNC_F16
#define ATTNC_Q4_MAGIC 0x64006400u
#define ATTNC_Q4_ONE 0x3C003C00u
#define ATTNC_Q4_MINUS_OFFSET 0xE408E408u
#define ATTNC_Q4_OFFSET 1032.f
#else
#define ATTNC_Q4_MAGIC 0x43004300u
#define ATTNC_Q4_ONE 0x3F803F80u
#define ATTNC_Q4_MINUS_OFFSET 0xC308C308u
#define ATTNC_Q4_OFFSET 136.f
#endif

/// Nibbles i and i + 4 of `word` as a packed pair 128 + n (1024 + n): one
/// LOP3, the magic number held in a register (LOP3 takes one immediate, and
/// ptxas splits mask and or into two otherwise).
ATTNC_DEV unsigned attnc_q4_pair(unsigned word, int i, unsigned magic) {
  unsigned r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" // (a & b) | c
      : "=r"(r)
      : "r"(word >> (4 * i)), "n"(0x000F000F), "r"(magic));
  return r;
}

/// a * b + c on two packed bf16 (f16).
ATTNC_DEV unsigned attnc_fma2(unsigned a, unsigned b, unsigned c) {
  unsigned d;
#if ATTNC_F16
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#else
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#endif
  return d;
}
/// A packed pair of raw q4 codes, 128 + n (1024 + n), as n - 8, exactly.
ATTNC_DEV unsigned attnc_q4_center(unsigned x) {
  return attnc_fma2(x, ATTNC_Q4_ONE, ATTNC_Q4_MINUS_OFFSET);
}
ATTNC_DEV unsigned attnc_prmt(unsigned a, unsigned b, unsigned sel) {
  unsigned d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}
/// The 8x8 matrix of b16 whose row g, columns 2t and 2t + 1 lane 4g + t
/// holds, transposed.
ATTNC_DEV unsigned attnc_transpose8x8(unsigned x) {
  unsigned y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(y) : "r"(x));
  return y;
}

/// The scale group of feature `f` of thread t's quarter of a quantized row;
/// split so that the words of one group share one scale load.
template <int groupSize> ATTNC_DEV int attnc_group_of(int t, int f) {
  if ((ATTNC_D / 4) % groupSize == 0)
    return ATTNC_D / 4 / groupSize * t + f / groupSize;
  return (ATTNC_D / 4 * t + f) / groupSize;
}

/// Thread t's packed pairs of one key's row in a stage (`row`), dequantized
/// with the row's scales (`scales`, one per `groupSize` features).
template <int groupSize, bool raw = false>
ATTNC_DEV void attnc_row_pairs(const unsigned char *row, const float *scales, int t,
                               unsigned (&x)[ATTNC_NR]) {
#if ATTNC_KV_FORMAT == 0
  (void)scales;
#pragma unroll
  for (int c = 0; c < ATTNC_D / 32; ++c) {
    uint4 w = *reinterpret_cast<const uint4 *>(row + 16 * (4 * c + t));
    x[4 * c] = w.x;
    x[4 * c + 1] = w.y;
    x[4 * c + 2] = w.z;
    x[4 * c + 3] = w.w;
  }
#else
  // This thread's quarter of the row: ATTNC_ROW / 4 bytes.
  constexpr int kWords = ATTNC_ROW / 16;
  unsigned words[kWords];
#if ATTNC_ROW / 4 >= 16
#pragma unroll
  for (int c = 0; c < kWords / 4; ++c) {
    uint4 w = *reinterpret_cast<const uint4 *>(row + ATTNC_ROW / 4 * t + 16 * c);
    words[4 * c] = w.x;
    words[4 * c + 1] = w.y;
    words[4 * c + 2] = w.z;
    words[4 * c + 3] = w.w;
  }
#else
  uint2 w2 = *reinterpret_cast<const uint2 *>(row + ATTNC_ROW / 4 * t);
  words[0] = w2.x;
  words[1] = w2.y;
#endif
#if ATTNC_KV_FORMAT == 1
  // Four codes per word: code + 128 or-ed into the mantissa of 2^23 is a
  // float; subtracting 2^23 + 128 leaves the code exactly.
#pragma unroll
  for (int w = 0; w < kWords; ++w) {
    // Raw (ATTNC_Q8_RAW): the codes themselves, exact in bf16 and f16.
    const float s = raw ? 1.f : scales[attnc_group_of<groupSize>(t, 4 * w)];
    const unsigned u = words[w] ^ 0x80808080u;
    float f[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      f[k] = __uint_as_float(attnc_prmt(u, 0x4B000000u, 0x7540u + k)) - 8388736.f;
    x[2 * w] = attnc_pack_in(f[0] * s, f[1] * s);
    x[2 * w + 1] = attnc_pack_in(f[2] * s, f[3] * s);
  }
#else
  // Eight codes per word, nibbles i and i + 4 into one pair: n - 8
  // exactly, then one rounding times the scale.
  unsigned magic = ATTNC_Q4_MAGIC;
  asm("" : "+r"(magic));
  unsigned s2 = 0;
#pragma unroll
  for (int w = 0; w < kWords; ++w) {
    // One conversion per scale group, not per word (a group of a quarter
    // row or more: one for the thread's whole quarter).
    if (w == 0 || attnc_group_of<groupSize>(0, 8 * w) != attnc_group_of<groupSize>(0, 8 * w - 8) ||
        ((ATTNC_D / 4) % groupSize != 0 && groupSize % (ATTNC_D / 4) != 0)) {
      const float s = scales[attnc_group_of<groupSize>(t, 8 * w)];
      s2 = attnc_pack_in(s, s);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
      x[4 * w + i] = attnc_fma2(attnc_q4_center(attnc_q4_pair(words[w], i, magic)), s2, 0x80008000u);
  }
#endif
#endif
}

// Raw codes in the products, scales on the f32 scores and on the weights.
#define ATTNC_RAW_CODES (ATTNC_Q4_RAW || ATTNC_Q8_RAW)
#if ATTNC_Q4_RAW
/// Thread t's packed pairs of one q4 key row as raw codes, 128 + n (1024 +
/// n), in the order of attnc_pair_feature: 8-byte pieces t, t + 4, ... when
/// a row holds more than one group, else (fewer, wider loads) the t-th
/// quarter of the row.
ATTNC_DEV void attnc_q4_raw_pairs(const unsigned char *row, int t, unsigned (&x)[ATTNC_NR]) {
  unsigned magic = ATTNC_Q4_MAGIC;
  asm("" : "+r"(magic));
#if !ATTNC_Q4_PIECES && ATTNC_D == 128
  const uint4 w = *reinterpret_cast<const uint4 *>(row + 16 * t);
  const unsigned words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int k = 0; k < 4; ++k)
#pragma unroll
    for (int i = 0; i < 4; ++i)
      x[4 * k + i] = attnc_q4_pair(words[k], i, magic);
#else
#pragma unroll
  for (int c = 0; c < ATTNC_D / 64; ++c) {
    const uint2 w = *reinterpret_cast<const uint2 *>(row + 8 * (4 * c + t));
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      x[8 * c + i] = attnc_q4_pair(w.x, i, magic);
      x[8 * c + 4 + i] = attnc_q4_pair(w.y, i, magic);
    }
  }
#endif
}
/// Raw codes of a key row: q4 as 128 + n (1024 + n), q8 as n.
ATTNC_DEV void attnc_raw_pairs(const unsigned char *row, int t, unsigned (&x)[ATTNC_NR]) {
  attnc_q4_raw_pairs(row, t, x);
}
#elif ATTNC_Q8_RAW
ATTNC_DEV void attnc_raw_pairs(const unsigned char *row, int t, unsigned (&x)[ATTNC_NR]) {
  attnc_row_pairs<ATTNC_D, true>(row, nullptr, t, x);
}
#endif
#if ATTNC_RAW_CODES
/// The scale group of k-step `ks` of K (of V's n8 tile pair `u`): pairs
/// 8c to 8c + 7 are the 64-feature block c (q8: one group per row).
#define ATTNC_KSTEP_GROUP(ks) ((ks) / 4 * 64 * ATTNC_GROUPS_K / ATTNC_D)
#define ATTNC_VTILE_GROUP(u) ((u) / 4 * 64 * ATTNC_GROUPS_V / ATTNC_D)
#endif


extern "C" __global__ void __launch_bounds__(128, ATTNC_MIN_BLOCKS)
    ATTNC_KERNEL(const AttncArgs args, float *part, int keysPerSplit, int splits, int *flag) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int hk = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  // The fragment coordinates: g = lane / 4 (a row of A, a column of B),
  // t = lane % 4. Unsigned, so that index arithmetic on t simplifies.
  const unsigned g = static_cast<unsigned>(lane) >> 2, t = static_cast<unsigned>(lane) & 3u;
  const int G = static_cast<int>(args.Hq / args.Hkv), S = static_cast<int>(args.S);
  // Rows (g, s) of this KV head, 8 per CTA: blockIdx.x is
  // split * rowChunks + chunk.
  const int rowsAll = G * S;
  const int rowChunks = (rowsAll + 7) / 8;
  const int split = blockIdx.x / rowChunks, r0 = (blockIdx.x % rowChunks) * 8;
  const int R = rowsAll - r0 < 8 ? rowsAll - r0 : 8;
  const attnc_index width = ATTNC_TABLE_WIDTH(args);
  const int ps = static_cast<int>(args.pageTokens);
  attnc_index len = ATTNC_SEQ_LENS(args)[b];
  if (len < 0 || len > width * ps) {
    if (tid == 0)
      atomicExch(flag, 1);
    len = len < 0 ? 0 : width * ps;
  }
  // The regions see this sequence's own length as kv_len.
  AttncArgs a = args;
  a.T = len;
  const attnc_index iOffset = ATTNC_ALIGN_END ? len - S : 0;
  // Keys per sequence fit in 32 bits (the runtime checks the table's size).
  const int begin = split * keysPerSplit;
  const int end = static_cast<attnc_index>(begin) + keysPerSplit < len ? begin + keysPerSplit
                                                                       : static_cast<int>(len);
  // This warp's run of whole tiles.
  const int tilesAll = end > begin ? (end - begin + ATTNC_TK - 1) / ATTNC_TK : 0;
  const int tilesPerWarp = (tilesAll + 3) / 4;
  const int wb = begin + warp * tilesPerWarp * ATTNC_TK;
  const int we = end < wb + tilesPerWarp * ATTNC_TK ? end : wb + tilesPerWarp * ATTNC_TK;
  const int nTiles = we > wb ? (we - wb + ATTNC_TK - 1) / ATTNC_TK : 0;

  unsigned long long *bars = reinterpret_cast<unsigned long long *>(smem) + warp * ATTNC_STAGES;
  unsigned long long *validKeys =
      reinterpret_cast<unsigned long long *>(smem) + 4 * ATTNC_STAGES + warp * ATTNC_STAGES;
  unsigned char *ring = smem + ATTNC_RING_OFFSET + warp * ATTNC_STAGES * ATTNC_STAGE_BYTES;
  if (lane == 0)
    for (int s = 0; s < ATTNC_STAGES; ++s)
      attnc_mbar_init(bars + s, ATTNC_SCALE_LANES ? 33 : 1);
  attnc_fence_proxy_async(); // the copy engine sees the initialized barriers
  __syncwarp();

  // Q^T's B fragments, gathered in the order of the key pairs: query row g,
  // raw bf16 (f16) bits; rows past R are zero.
  unsigned qb[ATTNC_D / 16][2];
  {
    const int rr = static_cast<int>(g) < R ? static_cast<int>(g) : R - 1;
    const attnc_index h = static_cast<attnc_index>(hk) * G + (r0 + rr) / S;
    const attnc_b16 *qRow = args.q + ((b * args.Hq + h) * args.S + (r0 + rr) % S) * ATTNC_D;
#pragma unroll
    for (int pr = 0; pr < ATTNC_D / 8; ++pr) {
      unsigned lo = qRow[attnc_pair_feature(pr, t, 0)], up = qRow[attnc_pair_feature(pr, t, 1)];
      qb[pr / 2][pr % 2] = static_cast<int>(g) < R ? lo | (up << 16) : 0u;
    }
  }
#if ATTNC_Q8_RAW
  // q8 codes carry no offset: partial scores start at zero.
  const float kStart[1][2] = {{0.f, 0.f}};
#elif ATTNC_Q4_RAW
  // Raw codes are 136 (1032) too large: a group's partial scores start at
  // minus 136 times q's sum over the group, rows 2t and 2t + 1.
  float kStart[ATTNC_GROUPS_K][2];
  {
    float sum[ATTNC_GROUPS_K];
#pragma unroll
    for (int k = 0; k < ATTNC_GROUPS_K; ++k)
      sum[k] = 0.f;
#pragma unroll
    for (int ks = 0; ks < ATTNC_D / 16; ++ks)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const unsigned w = qb[ks][h];
#if ATTNC_F16
        sum[ATTNC_KSTEP_GROUP(ks)] += attnc_f16_to_f32(w & 0xFFFFu) + attnc_f16_to_f32(w >> 16);
#else
        sum[ATTNC_KSTEP_GROUP(ks)] += __uint_as_float(w << 16) + __uint_as_float(w & 0xFFFF0000u);
#endif
      }
#pragma unroll
    for (int k = 0; k < ATTNC_GROUPS_K; ++k) {
      sum[k] += __shfl_xor_sync(0xffffffffu, sum[k], 1);
      sum[k] += __shfl_xor_sync(0xffffffffu, sum[k], 2);
#pragma unroll
      for (int col = 0; col < 2; ++col)
        kStart[k][col] =
            -ATTNC_Q4_OFFSET * __shfl_sync(0xffffffffu, sum[k], static_cast<int>(4 * (2 * t + col)));
    }
  }
#endif
  // The rows of this thread's accumulator and scores: 2t and 2t + 1.
  attnc_index rowH[2], rowI[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int r = static_cast<int>(2 * t) + e, rr = r < R ? r : R - 1;
    rowH[e] = static_cast<attnc_index>(hk) * G + (r0 + rr) / S;
    rowI[e] = (r0 + rr) % S + iOffset;
  }
  (void)rowH, (void)rowI, (void)a;

  // O^T: n8 tile u holds features attnc_pair_feature(2u, g / 2, g % 2) (c0,
  // c1) and attnc_pair_feature(2u + 1, ...) (c2, c3) of rows 2t, 2t + 1.
  float acc[ATTNC_NR / 2][4];
#pragma unroll
  for (int u = 0; u < ATTNC_NR / 2; ++u)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      acc[u][e] = 0.f;
  float m[2] = {-ATTNC_INF, -ATTNC_INF}, l[2] = {0.f, 0.f};

  // Page ids: lane x holds the table entry of page winBase + x, and `next`
  // the one 32 pages on, loaded when the window moves.
  const int *tableRow = ATTNC_PAGE_TABLE(args) + b * width;
  auto entry = [&](int p) { return p < width ? __ldg(tableRow + p) : -1; };
  int winBase = nTiles ? wb / ps : 0;
  int cur = nTiles ? entry(winBase + lane) : 0, next = nTiles ? entry(winBase + 32 + lane) : 0;
  auto pageOf = [&](int p) {
    while (p >= winBase + 32) {
      cur = next;
      winBase += 32;
      next = entry(winBase + 32 + lane);
    }
    return __shfl_sync(0xffffffffu, cur, p - winBase);
  };
  // The copies of a run are spread over lanes, one tensor each: lane 0 K
  // rows, 1 V rows, 2 and 3 (q8, q4) their scales. Each copying lane keeps
  // its tensor's rows of this KV head in page 0, its page stride, its bytes
  // per key and where its rows go in a stage, so a run's addresses are
  // computed once for all of them.
  constexpr int kCopyLanes = ATTNC_KV_FORMAT != 0 && !ATTNC_SCALE_LANES ? 4 : 2;
  const unsigned char *copyHead = nullptr;
  attnc_index copyPageBytes = 0;
  int copyRowBytes = 0, copyStageOffset = 0;
  {
    const attnc_index headRow = static_cast<attnc_index>(hk) * ps;
    if (lane == 0) {
      copyHead = reinterpret_cast<const unsigned char *>(args.k);
      copyPageBytes = args.kPageBytes;
      copyRowBytes = ATTNC_ROW;
    } else if (lane == 1) {
      copyHead = reinterpret_cast<const unsigned char *>(args.v);
      copyPageBytes = args.vPageBytes;
      copyRowBytes = ATTNC_ROW;
      copyStageOffset = ATTNC_TK * ATTNC_ROW;
    }
#if ATTNC_KV_FORMAT != 0 && !ATTNC_SCALE_LANES
    else if (lane == 2) {
      copyHead = reinterpret_cast<const unsigned char *>(ATTNC_K_SCALE(args));
      copyPageBytes = args.ksPageBytes;
      copyRowBytes = 4 * ATTNC_GROUPS_K;
      copyStageOffset = 2 * ATTNC_TK * ATTNC_ROW;
    } else if (lane == 3) {
      copyHead = reinterpret_cast<const unsigned char *>(ATTNC_V_SCALE(args));
      copyPageBytes = args.vsPageBytes;
      copyRowBytes = 4 * ATTNC_GROUPS_V;
      copyStageOffset = 2 * ATTNC_TK * ATTNC_ROW + ATTNC_TK * 4 * ATTNC_GROUPS_K;
    }
#endif
    if (copyHead)
      copyHead += headRow * copyRowBytes;
  }
  // Starts the copies of tile `it` into its stage: one bulk copy per run of
  // keys within a page, for K and V rows (and their scales). Tiles are
  // issued in order, so the page and slot of the next key to copy advance
  // run by run, with no division.
  int copyPage = nTiles ? wb / ps : 0, copySlot = nTiles ? wb - copyPage * ps : 0;
  auto issue = [&](int it) {
    const int st = it % ATTNC_STAGES;
    unsigned char *buf = ring + st * ATTNC_STAGE_BYTES;
    const int t0 = wb + it * ATTNC_TK, n = we - t0 < ATTNC_TK ? we - t0 : ATTNC_TK;
    attnc_keymask valid = 0;
    bool bad = false;
    for (int j = 0; j < n;) {
      const int run = ps - copySlot < n - j ? ps - copySlot : n - j;
      const int page = pageOf(copyPage);
      if (page >= 0 && page < args.pages) {
        valid |= ((attnc_keymask(2) << (run - 1)) - 1) << j;
        // The bytes are expected before any lane's copy can complete.
        if (lane == 0)
          attnc_mbar_expect_tx(bars + st,
                               run * (2 * ATTNC_ROW + (ATTNC_SCALE_LANES ? 0 : ATTNC_SCALE_BYTES)));
        __syncwarp();
        if (lane < kCopyLanes)
          attnc_bulk_copy(buf + copyStageOffset + j * copyRowBytes,
                          copyHead + page * copyPageBytes + copySlot * copyRowBytes,
                          run * copyRowBytes, bars + st);
#if ATTNC_SCALE_LANES
        // Key x of the tile, in this run: its K and V scales, a word each.
        for (int x = lane; x < ATTNC_TK; x += 32) {
          if (x < j || x >= j + run)
            continue;
          const attnc_index at = static_cast<attnc_index>(hk) * ps + copySlot + (x - j);
          const unsigned char *kSrc = reinterpret_cast<const unsigned char *>(ATTNC_K_SCALE(args)) +
                                      page * args.ksPageBytes + at * (4 * ATTNC_GROUPS_K);
          const unsigned char *vSrc = reinterpret_cast<const unsigned char *>(ATTNC_V_SCALE(args)) +
                                      page * args.vsPageBytes + at * (4 * ATTNC_GROUPS_V);
          float *kDst = reinterpret_cast<float *>(buf + 2 * ATTNC_TK * ATTNC_ROW) + x * ATTNC_GROUPS_K;
          float *vDst = reinterpret_cast<float *>(buf + 2 * ATTNC_TK * ATTNC_ROW) +
                        ATTNC_TK * ATTNC_GROUPS_K + x * ATTNC_GROUPS_V;
#pragma unroll
          for (int g = 0; g < ATTNC_GROUPS_K; ++g)
            attnc_cp_async4(kDst + g, kSrc + 4 * g, true);
#pragma unroll
          for (int g = 0; g < ATTNC_GROUPS_V; ++g)
            attnc_cp_async4(vDst + g, vSrc + 4 * g, true);
        }
#endif
      } else {
        bad = true;
      }
      j += run;
      copySlot += run;
      if (copySlot == ps) {
        copySlot = 0;
        ++copyPage;
      }
    }
    if (lane == 0) {
      validKeys[st] = valid;
      if (bad)
        atomicExch(flag, 1);
      attnc_mbar_arrive(bars + st);
    }
#if ATTNC_SCALE_LANES
    // Arrives once this lane's scale copies have landed.
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(
                     attnc_smem_addr(bars + st))
                 : "memory");
#endif
  };

  for (int it = 0; it < ATTNC_STAGES - 1 && it < nTiles; ++it)
    issue(it);
  __syncwarp();
  for (int it = 0; it < nTiles; ++it) {
    if (it + ATTNC_STAGES - 1 < nTiles)
      issue(it + ATTNC_STAGES - 1); // into the stage the last iteration freed
    const int st = it % ATTNC_STAGES;
    attnc_mbar_wait(bars + st, (it / ATTNC_STAGES) & 1);
    const unsigned char *K = ring + st * ATTNC_STAGE_BYTES, *V = K + ATTNC_TK * ATTNC_ROW;
    const float *KS = reinterpret_cast<const float *>(K + 2 * ATTNC_TK * ATTNC_ROW);
#if ATTNC_KV_FORMAT != 0
    const float *VS = KS + ATTNC_TK * ATTNC_GROUPS_K;
#else
    const float *VS = KS;
#endif
    const attnc_keymask valid = static_cast<attnc_keymask>(validKeys[st]);
    const int t0 = wb + it * ATTNC_TK;
    (void)t0;

    // S^T, 16 keys at a time: chunk ck holds keys 16 ck + g (c0, c1) and
    // 16 ck + 8 + g (c2, c3) of rows 2t, 2t + 1.
    float sc[ATTNC_TK / 16][4];
#pragma unroll
    for (int ck = 0; ck < ATTNC_TK / 16; ++ck) {
      unsigned k0[ATTNC_NR], k1[ATTNC_NR];
      const int j0 = 16 * ck + g, j1 = j0 + 8;
#if ATTNC_RAW_CODES
      // Each group's k-steps into their own partial scores, each scaled by
      // its keys' scale.
      attnc_raw_pairs(K + j0 * ATTNC_ROW, t, k0);
      attnc_raw_pairs(K + j1 * ATTNC_ROW, t, k1);
#pragma unroll
      for (int e = 0; e < 4; ++e)
        sc[ck][e] = 0.f;
#pragma unroll
      for (int gk = 0; gk < ATTNC_GROUPS_K; ++gk) {
        float part[4] = {kStart[gk][0], kStart[gk][1], kStart[gk][0], kStart[gk][1]};
#pragma unroll
        for (int ks = gk * (ATTNC_D / 16 / ATTNC_GROUPS_K);
             ks < (gk + 1) * (ATTNC_D / 16 / ATTNC_GROUPS_K); ++ks) {
          const unsigned ka[4] = {k0[2 * ks], k1[2 * ks], k0[2 * ks + 1], k1[2 * ks + 1]};
          attnc_mma(part, ka, qb[ks][0], qb[ks][1]);
        }
        const float s0 = KS[j0 * ATTNC_GROUPS_K + gk], s1 = KS[j1 * ATTNC_GROUPS_K + gk];
        sc[ck][0] = fmaf(s0, part[0], sc[ck][0]);
        sc[ck][1] = fmaf(s0, part[1], sc[ck][1]);
        sc[ck][2] = fmaf(s1, part[2], sc[ck][2]);
        sc[ck][3] = fmaf(s1, part[3], sc[ck][3]);
      }
#else
      attnc_row_pairs<ATTNC_D / ATTNC_GROUPS_K>(K + j0 * ATTNC_ROW, KS + j0 * ATTNC_GROUPS_K, t, k0);
      attnc_row_pairs<ATTNC_D / ATTNC_GROUPS_K>(K + j1 * ATTNC_ROW, KS + j1 * ATTNC_GROUPS_K, t, k1);
#pragma unroll
      for (int e = 0; e < 4; ++e)
        sc[ck][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < ATTNC_D / 16; ++ks) {
        const unsigned ka[4] = {k0[2 * ks], k1[2 * ks], k0[2 * ks + 1], k1[2 * ks + 1]};
        attnc_mma(sc[ck], ka, qb[ks][0], qb[ks][1]);
      }
#endif
    }
    // Scaled scores; keys not copied (and, with a mask, masked keys) are
    // -inf. Query rows past R need no masking: their q is zero, and their
    // results are never written.
    const bool full = valid == ATTNC_ALL_KEYS;
    // Bit 16 ck + 8 h: key 16 ck + 8 h + g of the tile.
    const attnc_keymask laneKeys = valid >> g;
#pragma unroll
    for (int ck = 0; ck < ATTNC_TK / 16; ++ck)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int jj = 16 * ck + static_cast<int>(g) + 8 * (e >> 1), col = e & 1;
        float s = sc[ck][e] * ATTNC_SCALE;
        (void)jj, (void)col;
#if ATTNC_HAS_SCORE || ATTNC_HAS_MASK
        {
          const attnc_index j = t0 + jj;
#if ATTNC_HAS_SCORE
          s = attnc_score(a, s, b, rowH[col], rowI[col], j);
#endif
#if ATTNC_HAS_MASK
          s = attnc_mask(a, b, rowH[col], rowI[col], j) ? s : -ATTNC_INF;
#endif
        }
#endif
        if (!full)
          s = (laneKeys >> (16 * ck + 8 * (e >> 1))) & 1 ? s : -ATTNC_INF;
        sc[ck][e] = s;
      }

    // Weights.
#if ATTNC_SIGMOID
#pragma unroll
    for (int ck = 0; ck < ATTNC_TK / 16; ++ck)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float s = sc[ck][e];
        sc[ck][e] = s == -ATTNC_INF ? 0.f : 1.f / (1.f + attnc_exp2(-s * ATTNC_LOG2E_F));
      }
#else
    // Row 2t + col's max over the tile: this thread's keys, then the eight
    // lanes of the same t.
    float mt[2] = {-ATTNC_INF, -ATTNC_INF};
#pragma unroll
    for (int ck = 0; ck < ATTNC_TK / 16; ++ck) {
      mt[0] = fmaxf(mt[0], fmaxf(sc[ck][0], sc[ck][2]));
      mt[1] = fmaxf(mt[1], fmaxf(sc[ck][1], sc[ck][3]));
    }
    float corr[2], mb[2];
    bool moved = false;
#pragma unroll
    for (int col = 0; col < 2; ++col) {
#pragma unroll
      for (int o = 4; o < 32; o <<= 1)
        mt[col] = fmaxf(mt[col], __shfl_xor_sync(0xffffffffu, mt[col], o));
      const float mNew = fmaxf(m[col], mt[col]);
      corr[col] = mNew == m[col] ? 1.f : attnc_exp2((m[col] - mNew) * ATTNC_LOG2E_F);
      moved |= mNew != m[col];
      m[col] = mNew;
      mb[col] = mNew == -ATTNC_INF ? 0.f : mNew * ATTNC_LOG2E_F;
      l[col] *= corr[col];
    }
    if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
      for (int u = 0; u < ATTNC_NR / 2; ++u) {
        acc[u][0] *= corr[0];
        acc[u][1] *= corr[1];
        acc[u][2] *= corr[0];
        acc[u][3] *= corr[1];
      }
    }
#pragma unroll
    for (int ck = 0; ck < ATTNC_TK / 16; ++ck)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = attnc_exp2(fmaf(sc[ck][e], ATTNC_LOG2E_F, -mb[e & 1]));
        l[e & 1] += p;
        sc[ck][e] = p;
      }
#endif

    // O^T += V^T P^T, 16 keys at a time. P^T's B fragment: the weights of
    // keys g and 8 + g, transposed. V^T's A fragments: the value pairs of
    // keys g and 8 + g, transposed, two features' matrices per product.
#pragma unroll
    for (int ck = 0; ck < ATTNC_TK / 16; ++ck) {
      unsigned v0[ATTNC_NR], v1[ATTNC_NR];
      const int j0 = 16 * ck + g, j1 = j0 + 8;
#if ATTNC_RAW_CODES
      // Per group, the weights times the keys' scales (zero for keys not
      // copied, whose scales may be anything); q4's codes minus 136.
      unsigned pb0[ATTNC_GROUPS_V], pb1[ATTNC_GROUPS_V];
#if ATTNC_P_SPLIT
      unsigned pr0[ATTNC_GROUPS_V], pr1[ATTNC_GROUPS_V]; // what rounding P left
#endif
      const bool ok0 = full || ((valid >> j0) & 1), ok1 = full || ((valid >> j1) & 1);
#pragma unroll
      for (int gv = 0; gv < ATTNC_GROUPS_V; ++gv) {
        const float s0 = ok0 ? VS[j0 * ATTNC_GROUPS_V + gv] : 0.f;
        const float s1 = ok1 ? VS[j1 * ATTNC_GROUPS_V + gv] : 0.f;
        const float w0 = sc[ck][0] * s0, w1 = sc[ck][1] * s0;
        const float w2 = sc[ck][2] * s1, w3 = sc[ck][3] * s1;
        const unsigned k0 = attnc_pack_in(w0, w1), k1 = attnc_pack_in(w2, w3);
        pb0[gv] = attnc_transpose8x8(k0);
        pb1[gv] = attnc_transpose8x8(k1);
#if ATTNC_P_SPLIT
        pr0[gv] = attnc_transpose8x8(attnc_pack_rest(w0, w1, k0));
        pr1[gv] = attnc_transpose8x8(attnc_pack_rest(w2, w3, k1));
#endif
      }
      attnc_raw_pairs(V + j0 * ATTNC_ROW, t, v0);
      attnc_raw_pairs(V + j1 * ATTNC_ROW, t, v1);
#if ATTNC_Q4_RAW
#pragma unroll
      for (int r = 0; r < ATTNC_NR; ++r) {
        v0[r] = attnc_q4_center(v0[r]);
        v1[r] = attnc_q4_center(v1[r]);
      }
#endif
#pragma unroll
      for (int u = 0; u < ATTNC_NR / 2; ++u) {
        const unsigned va[4] = {attnc_transpose8x8(v0[2 * u]), attnc_transpose8x8(v0[2 * u + 1]),
                                attnc_transpose8x8(v1[2 * u]), attnc_transpose8x8(v1[2 * u + 1])};
        attnc_mma(acc[u], va, pb0[ATTNC_VTILE_GROUP(u)], pb1[ATTNC_VTILE_GROUP(u)]);
#if ATTNC_P_SPLIT
        attnc_mma(acc[u], va, pr0[ATTNC_VTILE_GROUP(u)], pr1[ATTNC_VTILE_GROUP(u)]);
#endif
      }
#else
      const unsigned k0 = attnc_pack_in(sc[ck][0], sc[ck][1]);
      const unsigned k1 = attnc_pack_in(sc[ck][2], sc[ck][3]);
      const unsigned pb0 = attnc_transpose8x8(k0), pb1 = attnc_transpose8x8(k1);
#if ATTNC_P_SPLIT
      const unsigned pr0 = attnc_transpose8x8(attnc_pack_rest(sc[ck][0], sc[ck][1], k0));
      const unsigned pr1 = attnc_transpose8x8(attnc_pack_rest(sc[ck][2], sc[ck][3], k1));
#endif
      attnc_row_pairs<ATTNC_D / ATTNC_GROUPS_V>(V + j0 * ATTNC_ROW, VS + j0 * ATTNC_GROUPS_V, t, v0);
      attnc_row_pairs<ATTNC_D / ATTNC_GROUPS_V>(V + j1 * ATTNC_ROW, VS + j1 * ATTNC_GROUPS_V, t, v1);
      if (!full) {
        // Keys not copied hold stale or never-written bytes: zero them, as
        // a zero weight times a NaN would not be zero.
        const bool ok0 = (valid >> j0) & 1, ok1 = (valid >> j1) & 1;
#pragma unroll
        for (int r = 0; r < ATTNC_NR; ++r) {
          v0[r] = ok0 ? v0[r] : 0u;
          v1[r] = ok1 ? v1[r] : 0u;
        }
      }
#pragma unroll
      for (int u = 0; u < ATTNC_NR / 2; ++u) {
        const unsigned va[4] = {attnc_transpose8x8(v0[2 * u]), attnc_transpose8x8(v0[2 * u + 1]),
                                attnc_transpose8x8(v1[2 * u]), attnc_transpose8x8(v1[2 * u + 1])};
        attnc_mma(acc[u], va, pb0, pb1);
#if ATTNC_P_SPLIT
        attnc_mma(acc[u], va, pr0, pr1);
#endif
      }
#endif
    }
    __syncwarp(); // the stage is free for the copy STAGES - 1 tiles on
  }

  // The warps' states meet in the (now idle) rings: accumulators
  // [4][8][DV], then max and sum [4][8].
#pragma unroll
  for (int col = 0; col < 2; ++col)
#pragma unroll
    for (int o = 4; o < 32; o <<= 1)
      l[col] += __shfl_xor_sync(0xffffffffu, l[col], o);
  __syncthreads();
  float *accAll = reinterpret_cast<float *>(smem + ATTNC_RING_OFFSET);
  float *mAll = accAll + 4 * 8 * ATTNC_DV, *lAll = mAll + 32;
#pragma unroll
  for (int u = 0; u < ATTNC_NR / 2; ++u)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      accAll[(warp * 8 + 2 * t + (e & 1)) * ATTNC_DV +
             attnc_pair_feature(2 * u + (e >> 1), g / 2, g % 2)] = acc[u][e];
  if (g == 0) {
    mAll[warp * 8 + 2 * t] = m[0];
    mAll[warp * 8 + 2 * t + 1] = m[1];
    lAll[warp * 8 + 2 * t] = l[0];
    lAll[warp * 8 + 2 * t + 1] = l[1];
  }
  __syncthreads();
  // Partials: [B][Hkv][splits][G * S][DV + 2] = accumulator, max, sum.
  float *out = part + (((static_cast<attnc_index>(b) * args.Hkv + hk) * splits + split) * rowsAll +
                       r0) *
                          (ATTNC_DV + 2);
  auto weightOf = [&](int w, int row, float mMax) {
#if ATTNC_SIGMOID
    (void)w, (void)row, (void)mMax;
    return 1.f;
#else
    const float mw = mAll[w * 8 + row];
    return mw == -ATTNC_INF ? 0.f : attnc_exp2((mw - mMax) * ATTNC_LOG2E_F);
#endif
  };
  auto maxOf = [&](int row) {
    return fmaxf(fmaxf(mAll[row], mAll[8 + row]), fmaxf(mAll[16 + row], mAll[24 + row]));
  };
  for (int x = tid; x < R * ATTNC_DV; x += 128) {
    const int row = x / ATTNC_DV, f = x % ATTNC_DV;
    const float mMax = maxOf(row);
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w)
      sum += weightOf(w, row, mMax) * accAll[(w * 8 + row) * ATTNC_DV + f];
    out[row * (ATTNC_DV + 2) + f] = sum;
  }
  if (tid < R) {
    const float mMax = maxOf(tid);
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w)
      sum += weightOf(w, tid, mMax) * lAll[w * 8 + tid];
    out[tid * (ATTNC_DV + 2) + ATTNC_DV] = mMax;
    out[tid * (ATTNC_DV + 2) + ATTNC_DV + 1] = sum;
  }
}

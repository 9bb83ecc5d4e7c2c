//===- attn_fwd_ws.cuh - Warp-specialized Hopper attention forward -------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The sm_90a kernel, appended after attn_fwd_mma.cuh (the helpers it uses,
// the wgmma wrappers, attnc_weights and the swizzled tile copy, are in
// attn_fwd_common.cuh; attnc_classify is in attn_tile_classes.cuh).
// One CTA of 1 + ATTNC_WS_CONSUMERS warpgroups serves 64 query rows per
// consumer of one (batch, head):
//
//   warpgroup 0   producer: one thread copies key and value tiles into a
//                 ring of stages with the tensor memory accelerator (TMA:
//                 cp.async.bulk.tensor through the tensor maps tmK and tmV,
//                 which swizzle as the tensor cores read and fill rows past
//                 the keys' end with zeros); each tile completes a
//                 transaction count on an mbarrier. The warpgroup keeps few
//                 registers (setmaxnreg.dec).
//   warpgroups 1.. consumers (two; three at D = 64, or one with two CTAs per
//                 SM for short key ranges, where attnc picks them),
//                 64 query rows each, all the registers the producer gives
//                 up: S = Q K^T (wgmma m64n128k16), the variant's mask,
//                 score and online softmax in registers, O += P V (wgmma
//                 with P from registers).
//
// Inside each consumer the products of consecutive tiles overlap its
// softmax: it issues S(n+1) = Q K(n+1)^T and O += P(n) V(n) together, waits
// for S only, runs the softmax of tile n+1 while P V runs, then rescales O.
// Keys and values have separate stages and barriers, so the key tile n+2 is
// loading while tile n+1's values are still in use.
//
// Barriers (one phase per use of a stage; stage = n % ATTNC_ST, parity =
// n / ATTNC_ST % 2 for the n-th visited tile; two stages unless
// $ATTNC_CUDA_WS_STAGES asks for more):
//   fullK/fullV[s]   the producer's arrival with the tile's byte count; the
//                    phase completes when the copy engine has written them
//   emptyK/emptyV[s] an arrival per consumer thread: the products reading it
//                    are done
//
// TMA writes through the async proxy, the proxy wgmma reads through, so no
// proxy fence is needed between them. (A first version copied with cp.async
// from all producer threads; the fence.proxy.async each thread then needed
// became MEMBAR.ALL.CTA, which waited for the copies still in flight and
// serialized the ring.)
//
//===----------------------------------------------------------------------===//

// Two consumers: 128 x 40 + 256 x 232 = 64512 registers, all the CTA
// launches with (168 per thread); three: 128 x 32 + 384 x 160 = 65536 (128
// per thread). With higher caps the consumers' setmaxnreg.inc would wait
// forever for registers.
#define ATTNC_NC ATTNC_WS_CONSUMERS // 1 to 3 (attn_fwd_common.cuh checks)
#if ATTNC_NC == 3
#define ATTNC_WS_PRODUCER_REGS 32
#define ATTNC_WS_CONSUMER_REGS 160
#elif ATTNC_NC == 1
// One consumer, two CTAs per SM: 2 x (128 x 24 + 128 x 232) = 65536.
#define ATTNC_WS_PRODUCER_REGS 24
#define ATTNC_WS_CONSUMER_REGS 232
#else
#define ATTNC_WS_PRODUCER_REGS 40
#define ATTNC_WS_CONSUMER_REGS 232
#endif
// Stages of the K and V rings (attnc sets it: 2, or $ATTNC_CUDA_WS_STAGES).
#ifndef ATTNC_WS_STAGES
#define ATTNC_WS_STAGES 2
#endif
#define ATTNC_ST ATTNC_WS_STAGES
// The stage of the n-th visited tile and the parity of its use there
// (unsigned: n is never negative, and the division is then a shift).
#define ATTNC_STAGE(n) static_cast<int>(static_cast<unsigned>(n) % ATTNC_ST)
#define ATTNC_PHASE(n) ((static_cast<unsigned>(n) / ATTNC_ST) & 1)
// Value-dim width of one P V instruction (attnc sets it; 128 = one wgmma
// m64n128k16 per 16 keys at Dv = 128, 64 = two m64n64k16).
#ifndef ATTNC_WS_PV_N
#define ATTNC_WS_PV_N 128
#endif

/// A CUtensorMap, passed by value as a __grid_constant__ kernel parameter.
struct __align__(64) attnc_tmap {
  unsigned long long opaque[16];
};
/// One box of a 3-D tensor map at coordinates (c0 innermost, c1, c2) into
/// shared memory at `dst`, completing on `bar`.
ATTNC_DEV void attnc_tma_load(void *dst, const attnc_tmap *map, int c0, int c1, int c2,
                              unsigned long long *bar) {
  asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes "
               "[%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(attnc_smem_addr(dst)),
               "l"(reinterpret_cast<unsigned long long>(map)), "r"(c0), "r"(c1), "r"(c2),
               "r"(attnc_smem_addr(bar))
               : "memory");
}
/// Named barriers 1 .. ATTNC_NC (0 is __syncthreads) order the consumers'
/// matrix products in a ring: each waits for its turn, issues, and passes
/// the turn to the next.
/// One consumer has nobody to take turns with (two CTAs on the SM
/// interleave instead).
ATTNC_DEV void attnc_turn_wait(int wg) {
#if ATTNC_NC > 1
  asm volatile("bar.sync %0, 256;\n" ::"r"(1 + wg) : "memory");
#endif
}
ATTNC_DEV void attnc_turn_pass(int wg) {
#if ATTNC_NC > 1
  asm volatile("bar.arrive %0, 256;\n" ::"r"(1 + (wg + 1) % ATTNC_NC) : "memory");
#endif
}
/// Named barrier ATTNC_NC + 1 + wg: the 128 threads of consumer wg.
ATTNC_DEV void attnc_consumer_sync(int wg) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(ATTNC_NC + 1 + wg) : "memory");
}
ATTNC_DEV void attnc_wgmma_wait_one() {
  asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
}

#if ATTNC_TRACE
// Phase times of a CTA (ATTNC_TRACE = N: every N-th CTA prints them): the
// global timer (ns, comparable across SMs) and the SM's clock.
ATTNC_DEV unsigned long long attnc_globaltimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
#define ATTNC_STAMP(k) (traceAt[k] = attnc_globaltimer())
#else
#define ATTNC_STAMP(k) ((void)0)
#endif

#ifndef ATTNC_PLANE_GROUP
#define ATTNC_PLANE_GROUP 1
#endif

/// The query tile, head and batch of this CTA. The grid is (query tiles,
/// heads, batches) and CTAs start roughly in the order of their linear
/// index. Longest rows first: with a causal mask the last query tiles do
/// the most work, and starting them early shortens the tail of the launch.
/// Planes (batch, head) go in groups of ATTNC_PLANE_GROUP (0: all of them),
/// their query tiles interleaved, so that the light tiles of one plane are
/// not all that is left at the end of the launch; the keys that a group's
/// CTAs read at once should fit in L2.
ATTNC_DEV void attnc_cta_tile(long long numQTiles, long long &qTile, long long &h,
                              long long &b) {
  const long long heads = gridDim.y, planes = heads * gridDim.z;
  const long long L = blockIdx.x + numQTiles * (blockIdx.y + heads * blockIdx.z);
  const long long group = ATTNC_PLANE_GROUP > 0 ? ATTNC_PLANE_GROUP : planes;
  const long long first = L / (group * numQTiles) * group; // the group's first plane
  const long long size = planes - first < group ? planes - first : group;
  const long long within = L - first * numQTiles;
  qTile = numQTiles - 1 - within / size;
  const long long plane = first + within % size;
  h = plane % heads;
  b = plane / heads;
}

extern "C" __global__ void __launch_bounds__(ATTNC_THREADS, ATTNC_MIN_BLOCKS)
    ATTNC_KERNEL(const __grid_constant__ AttncArgs a, const __grid_constant__ attnc_tmap tmK,
                 const __grid_constant__ attnc_tmap tmV) {
  extern __shared__ __align__(16) unsigned char attnc_smem[];
  static_assert(ATTNC_BM == 64 * ATTNC_NC, "64 query rows per consumer warpgroup");
  // Swizzled tiles start on 1024-byte boundaries (the host adds the slack).
  unsigned char *smemBase = attnc_smem + ((1024 - (attnc_smem_addr(attnc_smem) & 1023)) & 1023);
  attnc_b16 *qs = reinterpret_cast<attnc_b16 *>(smemBase);
  attnc_b16 *ks = qs + ATTNC_BM * ATTNC_D;
  attnc_b16 *vs = ks + ATTNC_ST * ATTNC_BN * ATTNC_D;
  unsigned long long *bars =
      reinterpret_cast<unsigned long long *>(vs + ATTNC_ST * ATTNC_BN * ATTNC_DV);
  unsigned long long *fullK = bars, *fullV = bars + ATTNC_ST, *emptyK = bars + 2 * ATTNC_ST,
                     *emptyV = bars + 3 * ATTNC_ST;
  unsigned char *tileClass = reinterpret_cast<unsigned char *>(bars + 4 * ATTNC_ST);

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
#if ATTNC_TRACE
  unsigned long long traceAt[6] = {0, 0, 0, 0, 0, 0};
  int traceTiles = 0;
#endif
  ATTNC_STAMP(0);
  const long long numQTiles = (a.S + ATTNC_BM - 1) / ATTNC_BM;
  long long qTile, h, b;
  attnc_cta_tile(numQTiles, qTile, h, b);
  const long long hk = h / (a.Hq / a.Hkv);
  const long long q0 = qTile * ATTNC_BM;
#if ATTNC_ALIGN_END
  const long long iOffset = a.T - a.S;
#else
  const long long iOffset = 0;
#endif
  const int numKTiles = static_cast<int>((a.T + ATTNC_BN - 1) / ATTNC_BN);
  const attnc_b16 *qg = a.q + ((b * a.Hq + h) * a.S + q0) * ATTNC_D;
  const int qRows = static_cast<int>(a.S - q0 < ATTNC_BM ? a.S - q0 : ATTNC_BM);

  // Each consumer warpgroup starts copying its 64 rows of Q (swizzled as
  // attnc_load_tile_sw lays out the whole tile), then every thread fills
  // the tile classes and thread 0 sets up the barriers. The CTA meets once,
  // and the producer's first key copy starts while Q is still in flight:
  // the consumers wait for their own rows only when they need them.
  if (warp >= 4) {
    constexpr int chunks = ATTNC_D / 8;
    unsigned char *qBytes = reinterpret_cast<unsigned char *>(qs);
    const int wgRow = ((warp - 4) >> 2) * 64;
#pragma unroll 4
    for (int n = tid & 127; n < 64 * chunks; n += 128) {
      const int r = wgRow + n / chunks, c = n % chunks;
      const bool ok = r < qRows;
      const attnc_b16 *src = ok ? qg + static_cast<long long>(r) * ATTNC_D + c * 8 : qg;
      attnc_cp_async16(qBytes + (c >> 3) * (ATTNC_BM * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4),
                       src, ok);
    }
    attnc_cp_async_commit();
  }
  attnc_fill_tile_classes(a, tileClass, b, h, qTile, numQTiles, numKTiles, q0, qRows, iOffset,
                          tid);
  if (tid == 0) {
    for (int s = 0; s < ATTNC_ST; ++s) {
      attnc_mbar_init(fullK + s, 1);
      attnc_mbar_init(fullV + s, 1);
      attnc_mbar_init(emptyK + s, 128 * ATTNC_NC);
      attnc_mbar_init(emptyV + s, 128 * ATTNC_NC);
    }
    attnc_fence_proxy_async(); // the copy engine sees the initialized barriers
  }
  __syncthreads();
  ATTNC_STAMP(1);

  // Each warp finds the range of tiles to visit (attnc_visited_range); the
  // next tile to visit from kt on (numKTiles: none).
  int firstTile, lastTile;
  auto nextTile = [&](int kt) {
    while (kt <= lastTile && tileClass[kt] == ATTNC_EMPTY)
      ++kt;
    return kt <= lastTile ? kt : numKTiles;
  };

  if (warp < 4) {
    //===------------------------------------------------------------------===//
    // Producer
    //===------------------------------------------------------------------===//
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(ATTNC_WS_PRODUCER_REGS));
    if (warp != 0)
      return;
    attnc_visited_range(tileClass, numKTiles, firstTile, lastTile);
    if (tid != 0)
      return;
    // K and V rows of this (batch, KV head) are rows of plane b * Hkv + hk.
    const int plane = static_cast<int>(b * a.Hkv + hk);
    int n = 0;
    for (int kt = nextTile(firstTile); kt < numKTiles; kt = nextTile(kt + 1), ++n) {
      const int st = ATTNC_STAGE(n);
      const unsigned reuse = ATTNC_PHASE(n) ^ 1; // parity of the stage's previous release
      const int j0 = kt * ATTNC_BN;
      if (n >= ATTNC_ST)
        attnc_mbar_wait(emptyK + st, reuse);
      attnc_mbar_expect(fullK + st, ATTNC_BN * ATTNC_D * 2);
#pragma unroll
      for (int dh = 0; dh < ATTNC_D / 64; ++dh)
        attnc_tma_load(ks + st * ATTNC_BN * ATTNC_D + dh * ATTNC_BN * 64, &tmK, dh * 64, j0, plane,
                       fullK + st);
      if (n >= ATTNC_ST)
        attnc_mbar_wait(emptyV + st, reuse);
      attnc_mbar_expect(fullV + st, ATTNC_BN * ATTNC_DV * 2);
#pragma unroll
      for (int dh = 0; dh < ATTNC_DV / 64; ++dh)
        attnc_tma_load(vs + st * ATTNC_BN * ATTNC_DV + dh * ATTNC_BN * 64, &tmV, dh * 64, j0,
                       plane, fullV + st);
    }
    return;
  }

  //===--------------------------------------------------------------------===//
  // Consumers
  //===--------------------------------------------------------------------===//
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(ATTNC_WS_CONSUMER_REGS));
  attnc_visited_range(tileClass, numKTiles, firstTile, lastTile);
  const int cw = warp - 4;                 // warp among the consumers
  // This warpgroup's rows of Q: every thread's copies done, visible to the
  // tensor cores (async proxy), then the warpgroup's named barrier.
  attnc_cp_async_wait_all();
  attnc_fence_proxy_async();
  attnc_consumer_sync(cw >> 2);
  ATTNC_STAMP(2);
  const long long r0 = q0 + cw * 16;       // this warp's first row
  const unsigned char *qb = reinterpret_cast<const unsigned char *>(qs) + (cw >> 2) * 64 * 128;

  float o[ATTNC_DV / 8][4];
  float m[2] = {-ATTNC_INF, -ATTNC_INF}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int dt = 0; dt < ATTNC_DV / 8; ++dt)
    o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float s[ATTNC_BN / 8][4];
  unsigned p[ATTNC_BN / 16][4];
#if ATTNC_P_SPLIT
  unsigned pRest[ATTNC_BN / 16][4]; // what rounding P to 16 bits left
#endif

#if ATTNC_WS_DESC_BASE
  // Descriptors as a base plus an offset: the address field is the low 14
  // bits of (shared address >> 4), and shared memory ends below 256 KB, so
  // an offset added to the low word never carries out of it. One add per
  // product, where converting each address took about a dozen instructions.
  const unsigned long long qDesc = attnc_desc(qb), kDesc = attnc_desc(ks);
#if ATTNC_DV == 128 && ATTNC_WS_PV_N == 128
  const unsigned long long vDesc = attnc_desc_mn(vs, ATTNC_BN * 128);
#else
  const unsigned long long vDesc = attnc_desc(vs);
#endif
#define ATTNC_Q_DESC(off) attnc_desc_plus(qDesc, (off))
#define ATTNC_K_DESC(st, off) attnc_desc_plus(kDesc, (st) * (ATTNC_BN * ATTNC_D * 2) + (off))
#define ATTNC_V_DESC(st, off) attnc_desc_plus(vDesc, (st) * (ATTNC_BN * ATTNC_DV * 2) + (off))
#else
#define ATTNC_Q_DESC(off) attnc_desc(qb + (off))
#define ATTNC_K_DESC(st, off) attnc_desc(reinterpret_cast<const unsigned char *>(ks + (st) * ATTNC_BN * ATTNC_D) + (off))
#if ATTNC_DV == 128 && ATTNC_WS_PV_N == 128
#define ATTNC_V_DESC(st, off) attnc_desc_mn(reinterpret_cast<const unsigned char *>(vs + (st) * ATTNC_BN * ATTNC_DV) + (off), ATTNC_BN * 128)
#else
#define ATTNC_V_DESC(st, off) attnc_desc(reinterpret_cast<const unsigned char *>(vs + (st) * ATTNC_BN * ATTNC_DV) + (off))
#endif
#endif
  // S = Q K^T for key stage `st`: D / 16 steps of k = 16, each 32 bytes
  // further along the swizzled 128-byte rows.
  auto issueS = [&](int st) {
#pragma unroll
    for (int kk = 0; kk < ATTNC_D / 16; ++kk) {
      unsigned long long qd = ATTNC_Q_DESC((kk >> 2) * (ATTNC_BM * 128) + (kk & 3) * 32);
      unsigned long long kd = ATTNC_K_DESC(st, (kk >> 2) * (ATTNC_BN * 128) + (kk & 3) * 32);
#if ATTNC_BN == 128
      attnc_wgmma_ss128(s, qd, kd, kk > 0);
#else
      attnc_wgmma_ss(s, qd, kd, kk > 0);
#endif
    }
    attnc_wgmma_commit();
  };
  // O += P V for value stage `st`: P from registers (the accumulator layout
  // of S is the A-fragment layout), V as an MN-major operand, one 64-wide
  // half of the value dim per instruction.
  auto issuePV = [&](int st) {
#pragma unroll
    for (int kk = 0; kk < ATTNC_BN / 16; ++kk) {
#if ATTNC_DV == 128 && ATTNC_WS_PV_N == 128
      attnc_wgmma_rs128(o, p[kk], ATTNC_V_DESC(st, kk * 16 * 128));
#if ATTNC_P_SPLIT
      attnc_wgmma_rs128(o, pRest[kk], ATTNC_V_DESC(st, kk * 16 * 128));
#endif
#else
#pragma unroll
      for (int dh = 0; dh < ATTNC_DV / 64; ++dh) {
        attnc_wgmma_rs(&o[dh * 8], p[kk], ATTNC_V_DESC(st, dh * (ATTNC_BN * 128) + kk * 16 * 128));
#if ATTNC_P_SPLIT
        attnc_wgmma_rs(&o[dh * 8], pRest[kk],
                       ATTNC_V_DESC(st, dh * (ATTNC_BN * 128) + kk * 16 * 128));
#endif
      }
#endif
    }
    attnc_wgmma_commit();
  };
  auto weights = [&](int kt, float (&corr)[2]) {
    const long long j0 = static_cast<long long>(kt) * ATTNC_BN;
    if (tileClass[kt] == ATTNC_PARTIAL)
      attnc_weights<true>(a, s, m, l, corr, b, h, r0, j0, iOffset);
    else
      attnc_weights<false>(a, s, m, l, corr, b, h, r0, j0, iOffset);
  };
  auto packP = [&]() {
#pragma unroll
    for (int kk = 0; kk < ATTNC_BN / 16; ++kk) {
      attnc_pack_p(s, kk, p[kk]);
#if ATTNC_P_SPLIT
      attnc_pack_p_rest(s, kk, p[kk], pRest[kk]);
#endif
    }
  };

  // Ping-pong: the consumers take turns to issue their products, so the
  // others run their softmax while the tensor cores serve one. The first
  // turn is consumer 0's (the last one passes it on before its first turn);
  // the last does not pass on its last turn, which leaves every barrier
  // balanced (all consumers take the same number of turns).
  const int wg = cw >> 2;
  int kt = nextTile(firstTile);
  if (kt < numKTiles) {
    float corr[2];
    if (wg == ATTNC_NC - 1)
      attnc_turn_pass(wg);
    attnc_mbar_wait(fullK, 0);
    attnc_turn_wait(wg);
    attnc_wgmma_fence();
    issueS(0);
    attnc_turn_pass(wg);
    attnc_wgmma_wait();
    ATTNC_STAMP(3);
    attnc_mbar_arrive(emptyK);
    // o is still zero: nothing to rescale. The first tile always takes the
    // masked softmax (right for a full tile too, one tile's mask the cost):
    // a third copy of the softmax rather than a fourth, for NVRTC's time.
    attnc_weights<true>(a, s, m, l, corr, b, h, r0, static_cast<long long>(kt) * ATTNC_BN,
                        iOffset);
    packP();
    int n = 0;
    for (;;) {
      int next = nextTile(kt + 1);
      if (next >= numKTiles)
        break;
      const int st = ATTNC_STAGE(n), nst = ATTNC_STAGE(n + 1);
      attnc_mbar_wait(fullK + nst, ATTNC_PHASE(n + 1));
      attnc_mbar_wait(fullV + st, ATTNC_PHASE(n));
      attnc_turn_wait(wg);
      attnc_wgmma_fence();
      issueS(nst);
      issuePV(st);
      attnc_turn_pass(wg);
      attnc_wgmma_wait_one(); // S of the next tile; P V still runs
      attnc_mbar_arrive(emptyK + nst);
      weights(next, corr);
      attnc_wgmma_wait();
      attnc_mbar_arrive(emptyV + st);
      attnc_rescale_o(o, corr);
      packP();
      kt = next;
      ++n;
    }
    ATTNC_STAMP(4);
#if ATTNC_TRACE
    traceTiles = n + 1;
#endif
    const int st = ATTNC_STAGE(n);
    attnc_mbar_wait(fullV + st, ATTNC_PHASE(n));
    attnc_turn_wait(wg);
    attnc_wgmma_fence();
    issuePV(st);
    if (wg != ATTNC_NC - 1)
      attnc_turn_pass(wg);
    attnc_wgmma_wait();
    attnc_mbar_arrive(emptyV + st);
  }

  // Epilogue: normalize, gate, store; rows with no visible key give gate(0)
  // and lse = -inf. 16-bit outputs go through this warpgroup's rows of the
  // Q tile (free once its last S product is done; Q's swizzle keeps both
  // passes free of bank conflicts) and leave as whole 16-byte pieces of
  // rows: a thread's own values are 4-byte pieces of 8 rows, which cost a
  // short CTA about a microsecond of store traffic at its end.
#define ATTNC_STAGE_O (ATTNC_OUT != 0 && ATTNC_DV <= ATTNC_D)
  const int g = lane >> 2, c = lane & 3;
#if ATTNC_STAGE_O
  unsigned char *oStage = reinterpret_cast<unsigned char *>(qs);
#endif
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    long long r = r0 + g + half * 8;
#if ATTNC_SIGMOID
    float inv = 1.0f;
#else
    float sum = l[half];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#if ATTNC_HAS_LSE
    if (c == 0 && r < a.S)
      a.lse[(b * a.Hq + h) * a.S + r] =
          sum > 0.0f ? (m[half] + __log2f(sum)) * 0.6931471805599453f : -ATTNC_INF;
#endif
#endif
    if (r >= a.S)
      continue;
#if !ATTNC_STAGE_O
    long long rowAt = ((b * a.Hq + h) * a.S + r) * ATTNC_DV;
#endif
#if ATTNC_HAS_GATE
    const AttncGateRow gateRow = attnc_gate_row(a, b, h, r + iOffset);
#endif
#if ATTNC_STAGE_O
    // Row cw * 16 + g + 8 half of the tile, in Q's layout.
    const int tr = cw * 16 + g + half * 8;
#endif
#pragma unroll
    for (int dt = 0; dt < ATTNC_DV / 8; ++dt) {
      const int d = dt * 8 + 2 * c;
      float x0 = o[dt][2 * half] * inv, x1 = o[dt][2 * half + 1] * inv;
#if ATTNC_HAS_GATE
      x0 = attnc_gate(a, gateRow, x0, b, h, r + iOffset, d);
      x1 = attnc_gate(a, gateRow, x1, b, h, r + iOffset, d + 1);
#endif
#if ATTNC_STAGE_O
      (void)d;
      *reinterpret_cast<unsigned *>(oStage + (dt >> 3) * (ATTNC_BM * 128) + tr * 128 +
                                    (((dt & 7) ^ (tr & 7)) << 4) + 4 * c) =
          ATTNC_OUT == 1 ? attnc_pack_bf16x2(x0, x1) : attnc_pack_f16x2(x0, x1);
#else
      attnc_store_out(a, rowAt + d, x0, x1);
#endif
    }
  }
#if ATTNC_STAGE_O
  attnc_consumer_sync(wg);
  {
    // 16-byte piece n of the warpgroup's 64 rows: 16 threads write a row
    // of 256 bytes (Dv = 128) in order.
    constexpr int kPieces = ATTNC_DV / 8;
    const int wt = tid & 127;
#pragma unroll
    for (int n = wt; n < 64 * kPieces; n += 128) {
      const int tr = wg * 64 + n / kPieces, piece = n % kPieces;
      const long long r = q0 + tr;
      if (r >= a.S)
        continue;
      const uint4 x = *reinterpret_cast<const uint4 *>(
          oStage + (piece >> 3) * (ATTNC_BM * 128) + tr * 128 + (((piece & 7) ^ (tr & 7)) << 4));
      *reinterpret_cast<uint4 *>(a.o + ((b * a.Hq + h) * a.S + r) * ATTNC_DV + piece * 8) = x;
    }
  }
#endif
#if ATTNC_TRACE
  ATTNC_STAMP(5);
  unsigned smid;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
  const unsigned cta = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  if (tid == 128 && cta % ATTNC_TRACE == 0)
    printf("attnc-trace cta %u sm %u qtile %lld h %lld b %lld tiles %d t0 %llu sync %llu q %llu "
           "s1 %llu loop %llu end %llu\n",
           cta, smid, qTile, h, b, traceTiles, traceAt[0], traceAt[1] - traceAt[0],
           traceAt[2] - traceAt[0],
           traceAt[3] - traceAt[0], traceAt[4] - traceAt[0], traceAt[5] - traceAt[0]);
#endif
}

//===- attn_fwd_mma.cuh - Portable fused attention forward (sm_80+) -------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The kernel template of the portable CUDA path: tensor-core mma.sync
// (m16n8k16), online softmax, double-buffered cp.async loads of K and V;
// after attn_fwd_common.cuh and attn_tile_classes.cuh.
//
// One CTA owns ATTNC_BLOCK_M query rows of one (batch, query head); each warp
// owns 16 * ATTNC_MTILES rows and keeps its scores and output accumulators in registers in
// the mma accumulator layout, so the variant code runs on (i, j) it can name
// directly. Key tiles are classified once per CTA (EMPTY, FULL, PARTIAL) by
// the interval bounds attnc derives from the mask; EMPTY tiles are never
// loaded, FULL tiles run without mask code.
//
//===----------------------------------------------------------------------===//

#if !ATTNC_WS // sm_90a with head dims 64 and 128 takes attn_fwd_ws.cuh instead
// CTAs per SM the register allocation must allow (attnc may set it).
#ifndef ATTNC_MIN_BLOCKS
#define ATTNC_MIN_BLOCKS 1
#endif
extern "C" __global__ void __launch_bounds__(ATTNC_THREADS, ATTNC_MIN_BLOCKS)
    ATTNC_KERNEL(const __grid_constant__ AttncArgs a) {
  extern __shared__ __align__(16) unsigned char attnc_smem[];
#if ATTNC_WGMMA
  // Swizzled tiles start on 1024-byte boundaries (the host adds the slack).
  unsigned char *smemBase = attnc_smem + ((1024 - (attnc_smem_addr(attnc_smem) & 1023)) & 1023);
  attnc_b16 *qs = reinterpret_cast<attnc_b16 *>(smemBase);
  attnc_b16 *ks = qs + ATTNC_BM * ATTNC_D;
  attnc_b16 *vs = ks + 2 * ATTNC_BN * ATTNC_D;
  unsigned char *tileClass = reinterpret_cast<unsigned char *>(vs + 2 * ATTNC_BN * ATTNC_DV);
#else
  attnc_b16 *qs = reinterpret_cast<attnc_b16 *>(attnc_smem);
  attnc_b16 *ks = qs + ATTNC_BM * ATTNC_QS;
  attnc_b16 *vs = ks + 2 * ATTNC_BN * ATTNC_QS;
  unsigned char *tileClass =
      reinterpret_cast<unsigned char *>(vs + 2 * ATTNC_BN * ATTNC_VS);
#endif

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  // Longest rows first: with a causal mask the last query tiles do the most
  // work, and starting them early shortens the tail of the launch.
  const long long numQTiles = (a.S + ATTNC_BM - 1) / ATTNC_BM;
  const long long qTile = numQTiles - 1 - blockIdx.x;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long hk = h / (a.Hq / a.Hkv);
  const long long q0 = qTile * ATTNC_BM;
#if ATTNC_ALIGN_END
  const long long iOffset = a.T - a.S;
#else
  const long long iOffset = 0;
#endif
  const int numKTiles = static_cast<int>((a.T + ATTNC_BN - 1) / ATTNC_BN);

  const attnc_b16 *qg = a.q + ((b * a.Hq + h) * a.S + q0) * ATTNC_D;
  const attnc_b16 *kg = a.k + (b * a.Hkv + hk) * a.T * ATTNC_D;
  const attnc_b16 *vg = a.v + (b * a.Hkv + hk) * a.T * ATTNC_DV;
  const int qRows = static_cast<int>(a.S - q0 < ATTNC_BM ? a.S - q0 : ATTNC_BM);

#if ATTNC_WGMMA
  attnc_load_tile_sw<ATTNC_BM, ATTNC_D>(qs, qg, qRows, tid);
#else
  attnc_load_tile<ATTNC_BM, ATTNC_D, ATTNC_DP, ATTNC_QS>(qs, qg, qRows, tid);
#endif
  attnc_cp_async_commit();

  // Classify every key tile for this query tile, spread over the threads,
  // or copy the classes the class kernel computed for the launch.
  attnc_fill_tile_classes(a, tileClass, b, h, qTile, numQTiles, numKTiles, q0, qRows, iOffset,
                          tid);
  __syncthreads();

  int firstTile, lastTile;
  attnc_visited_range(tileClass, numKTiles, firstTile, lastTile);
  // The next tile to visit from kt on (numKTiles: none).
  auto nextTile = [&](int kt) {
    while (kt <= lastTile && tileClass[kt] == ATTNC_EMPTY)
      ++kt;
    return kt <= lastTile ? kt : numKTiles;
  };
  auto loadKV = [&](int kt, int buf) {
    long long j0 = static_cast<long long>(kt) * ATTNC_BN;
    int rows = static_cast<int>(a.T - j0 < ATTNC_BN ? a.T - j0 : ATTNC_BN);
#if ATTNC_WGMMA
    attnc_load_tile_sw<ATTNC_BN, ATTNC_D>(ks + buf * ATTNC_BN * ATTNC_D, kg + j0 * ATTNC_D,
                                           rows, tid);
    attnc_load_tile_sw<ATTNC_BN, ATTNC_DV>(vs + buf * ATTNC_BN * ATTNC_DV, vg + j0 * ATTNC_DV,
                                            rows, tid);
#else
    attnc_load_tile<ATTNC_BN, ATTNC_D, ATTNC_DP, ATTNC_QS>(ks + buf * ATTNC_BN * ATTNC_QS,
                                                            kg + j0 * ATTNC_D, rows, tid);
    attnc_load_tile<ATTNC_BN, ATTNC_DV, ATTNC_DVP, ATTNC_VS>(vs + buf * ATTNC_BN * ATTNC_VS,
                                                              vg + j0 * ATTNC_DV, rows, tid);
#endif
  };

  float o[ATTNC_MT][ATTNC_DVP / 8][4];
  float m[ATTNC_MT][2], l[ATTNC_MT][2];
#pragma unroll
  for (int mt = 0; mt < ATTNC_MT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < ATTNC_DVP / 8; ++dt)
      o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
    m[mt][0] = m[mt][1] = -ATTNC_INF;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  int kt = nextTile(firstTile);
  if (kt < numKTiles)
    loadKV(kt, 0);
  attnc_cp_async_commit();
  int buf = 0;
  while (kt < numKTiles) {
    // Tile kt has landed in `buf`; every warp is done with the other buffer.
    attnc_cp_async_wait_all();
#if ATTNC_WGMMA
    attnc_fence_proxy_async(); // the tensor cores read what cp.async wrote
#endif
    __syncthreads();
    int next = nextTile(kt + 1);
    if (next < numKTiles)
      loadKV(next, buf ^ 1);
    attnc_cp_async_commit();

#if ATTNC_WGMMA
    const attnc_b16 *kb = ks + buf * ATTNC_BN * ATTNC_D;
    const attnc_b16 *vb = vs + buf * ATTNC_BN * ATTNC_DV;
    float s[ATTNC_MT][ATTNC_BN / 8][4];
    {
      // S = Q K^T for this warpgroup's 64 rows: D / 16 steps of k = 16, each
      // 32 bytes further along the swizzled 128-byte rows.
      const unsigned char *qb = reinterpret_cast<const unsigned char *>(qs) + (warp >> 2) * 64 * 128;
      const unsigned char *kbb = reinterpret_cast<const unsigned char *>(kb);
      attnc_wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < ATTNC_D / 16; ++kk) {
        unsigned long long qd = attnc_desc(qb + (kk >> 2) * (ATTNC_BM * 128) + (kk & 3) * 32);
        unsigned long long kd = attnc_desc(kbb + (kk >> 2) * (ATTNC_BN * 128) + (kk & 3) * 32);
#if ATTNC_BN == 128
        attnc_wgmma_ss128(s[0], qd, kd, kk > 0);
#else
        attnc_wgmma_ss(s[0], qd, kd, kk > 0);
#endif
      }
      attnc_wgmma_commit();
      attnc_wgmma_wait();
    }
#else
    const attnc_b16 *qw = qs + warp * 16 * ATTNC_MT * ATTNC_QS;
    const attnc_b16 *kb = ks + buf * ATTNC_BN * ATTNC_QS;
    const attnc_b16 *vb = vs + buf * ATTNC_BN * ATTNC_VS;
    float s[ATTNC_MT][ATTNC_BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < ATTNC_MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < ATTNC_BN / 8; ++nt)
        s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < ATTNC_DP / 16; ++kk) {
      unsigned qa[ATTNC_MT][4];
#pragma unroll
      for (int mt = 0; mt < ATTNC_MT; ++mt)
        attnc_ldmatrix_x4(qa[mt], qw + (mt * 16 + (lane & 15)) * ATTNC_QS + kk * 16 +
                                      (lane >> 4) * 8);
#pragma unroll
      for (int nt2 = 0; nt2 < ATTNC_BN / 16; ++nt2) {
        unsigned kf[4];
        int key = nt2 * 16 + (lane & 7) + ((lane >> 4) << 3);
        int col = kk * 16 + ((lane >> 3) & 1) * 8;
        attnc_ldmatrix_x4(kf, kb + key * ATTNC_QS + col);
#pragma unroll
        for (int mt = 0; mt < ATTNC_MT; ++mt) {
          attnc_mma(s[mt][2 * nt2], qa[mt], kf[0], kf[1]);
          attnc_mma(s[mt][2 * nt2 + 1], qa[mt], kf[2], kf[3]);
        }
      }
    }

#endif

    const bool partial = tileClass[kt] == ATTNC_PARTIAL;
    const long long j0 = static_cast<long long>(kt) * ATTNC_BN;
#pragma unroll
    for (int mt = 0; mt < ATTNC_MT; ++mt) {
      float corr[2];
      long long r0 = q0 + (warp * ATTNC_MT + mt) * 16;
      if (partial)
        attnc_weights<true>(a, s[mt], m[mt], l[mt], corr, b, h, r0, j0, iOffset);
      else
        attnc_weights<false>(a, s[mt], m[mt], l[mt], corr, b, h, r0, j0, iOffset);
      attnc_rescale_o(o[mt], corr);
    }

#if ATTNC_WGMMA
    {
      // O += P V: P from registers (the accumulator layout of S is the
      // A-fragment layout), V as an MN-major operand, one 64-wide half of
      // the value dim per instruction.
      const unsigned char *vbb = reinterpret_cast<const unsigned char *>(vb);
      attnc_wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < ATTNC_BN / 16; ++kk) {
        unsigned pa[4];
        attnc_pack_p(s[0], kk, pa);
#pragma unroll
        for (int dh = 0; dh < ATTNC_DV / 64; ++dh)
          attnc_wgmma_rs(&o[0][dh * 8], pa,
                         attnc_desc(vbb + dh * (ATTNC_BN * 128) + kk * 16 * 128));
#if ATTNC_P_SPLIT
        unsigned pr[4];
        attnc_pack_p_rest(s[0], kk, pa, pr);
#pragma unroll
        for (int dh = 0; dh < ATTNC_DV / 64; ++dh)
          attnc_wgmma_rs(&o[0][dh * 8], pr,
                         attnc_desc(vbb + dh * (ATTNC_BN * 128) + kk * 16 * 128));
#endif
      }
      attnc_wgmma_commit();
      attnc_wgmma_wait();
    }
#else
    // O += P V: the score accumulators of two adjacent key columns of 8 are
    // exactly the A fragment of one 16-wide k step.
#pragma unroll
    for (int kk = 0; kk < ATTNC_BN / 16; ++kk) {
      unsigned pa[ATTNC_MT][4];
#pragma unroll
      for (int mt = 0; mt < ATTNC_MT; ++mt)
        attnc_pack_p(s[mt], kk, pa[mt]);
#if ATTNC_P_SPLIT
      unsigned pr[ATTNC_MT][4];
#pragma unroll
      for (int mt = 0; mt < ATTNC_MT; ++mt)
        attnc_pack_p_rest(s[mt], kk, pa[mt], pr[mt]);
#endif
#pragma unroll
      for (int dt2 = 0; dt2 < ATTNC_DVP / 16; ++dt2) {
        unsigned vf[4];
        int key = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
        int col = dt2 * 16 + (lane >> 4) * 8;
        attnc_ldmatrix_x4_trans(vf, vb + key * ATTNC_VS + col);
#pragma unroll
        for (int mt = 0; mt < ATTNC_MT; ++mt) {
          attnc_mma(o[mt][2 * dt2], pa[mt], vf[0], vf[1]);
          attnc_mma(o[mt][2 * dt2 + 1], pa[mt], vf[2], vf[3]);
#if ATTNC_P_SPLIT
          attnc_mma(o[mt][2 * dt2], pr[mt], vf[0], vf[1]);
          attnc_mma(o[mt][2 * dt2 + 1], pr[mt], vf[2], vf[3]);
#endif
        }
      }
    }
#endif
    kt = next;
    buf ^= 1;
  }
  attnc_cp_async_wait_all();

  // Epilogue: normalize, gate, store; rows with no visible key give gate(0)
  // and lse = -inf.
  const int g = lane >> 2, c = lane & 3;
#pragma unroll
  for (int mt = 0; mt < ATTNC_MT; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      long long r = q0 + (warp * ATTNC_MT + mt) * 16 + g + half * 8;
#if ATTNC_SIGMOID
      float inv = 1.0f;
#else
      float sum = l[mt][half];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#if ATTNC_HAS_LSE
      if (c == 0 && r < a.S)
        a.lse[(b * a.Hq + h) * a.S + r] =
            sum > 0.0f ? (m[mt][half] + __log2f(sum)) * 0.6931471805599453f : -ATTNC_INF;
#endif
#endif
      if (r >= a.S)
        continue;
      long long rowAt = ((b * a.Hq + h) * a.S + r) * ATTNC_DV;
#if ATTNC_HAS_GATE
      const AttncGateRow gateRow = attnc_gate_row(a, b, h, r + iOffset);
#endif
#pragma unroll
      for (int dt = 0; dt < ATTNC_DVP / 8; ++dt) {
        int d = dt * 8 + 2 * c;
        if (d >= ATTNC_DV)
          continue;
        float x0 = o[mt][dt][2 * half] * inv, x1 = o[mt][dt][2 * half + 1] * inv;
#if ATTNC_HAS_GATE
        x0 = attnc_gate(a, gateRow, x0, b, h, r + iOffset, d);
        x1 = attnc_gate(a, gateRow, x1, b, h, r + iOffset, d + 1);
#endif
        attnc_store_out(a, rowAt + d, x0, x1);
      }
    }
  }
}
#endif // !ATTNC_WS

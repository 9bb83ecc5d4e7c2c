// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The top-k block selection of attn.topk on the GPU, appended by attnc to a
// kernel whose mask selects blocks (attn-materialize-topk). Two kernels run
// before the tile classes and the attention kernel, on the same stream:
//
//   ATTNC_TOPK_POOL   one CTA per (key block, KV head, batch): the block's
//                     mean key, into f32 scratch [B, Hkv, D, KB] (features
//                     outer, so that a warp of consecutive key blocks reads
//                     one feature of 32 blocks as one line);
//   ATTNC_TOPK_SELECT one CTA per (ATTNC_TOPK_CHUNK query blocks, query head,
//                     batch): each block's mean query, its dot with every
//                     candidate key block, and the top_k (the highest
//                     scores, ties to the lower block: the blocks that
//                     fewer than top_k beat), into the table [B, Hq, QB, KB]
//                     of int32 the mask reads. Small chunks keep several
//                     CTAs on every SM: each phase waits on memory or shared
//                     memory, not on arithmetic.
//
// The CPU computes the same in runtime/src/TopKSelect.cpp.

// ATTNC_TOPK_CHUNK (query blocks per CTA) comes from attnc, which launches
// the grid to match (CudaKernel::topkChunk).
#define ATTNC_TOPK_THREADS 256

ATTNC_DEV float attnc_topk_load(const attnc_b16 *p, long long n) {
#if ATTNC_F16
  return attnc_f16_to_f32(p[n]);
#else
  return attnc_bf16_to_f32(p[n]);
#endif
}

extern "C" __global__ void __launch_bounds__(128)
    ATTNC_TOPK_POOL(const __grid_constant__ AttncArgs a, float *pooled) {
  const long long kb = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const long long KB = (a.T + ATTNC_TOPK_BK - 1) / ATTNC_TOPK_BK;
  const long long jLo = kb * ATTNC_TOPK_BK;
  const long long jHi = jLo + ATTNC_TOPK_BK < a.T ? jLo + ATTNC_TOPK_BK : a.T;
  const attnc_b16 *k = a.k + ((b * a.Hkv + hk) * a.T) * ATTNC_D;
  for (int d = threadIdx.x; d < ATTNC_D; d += 128) {
    float sum = 0.f;
#pragma unroll 8
    for (long long j = jLo; j < jHi; ++j)
      sum += attnc_topk_load(k, j * ATTNC_D + d);
    pooled[((b * a.Hkv + hk) * ATTNC_D + d) * KB + kb] = sum / static_cast<float>(jHi - jLo);
  }
}

extern "C" __global__ void __launch_bounds__(ATTNC_TOPK_THREADS)
    ATTNC_TOPK_SELECT(const __grid_constant__ AttncArgs a, const float *pooled) {
  extern __shared__ float attnc_topk_smem[];
  const long long h = blockIdx.y, b = blockIdx.z, qb0 = blockIdx.x * (long long)ATTNC_TOPK_CHUNK;
  const long long QB = a.ATTNC_TOPK_TABLE_d2, KB = a.ATTNC_TOPK_TABLE_d3;
  const long long hk = h / (a.Hq / a.Hkv);
  const long long offset = ATTNC_ALIGN_END ? a.T - a.S : 0;
  const int nq = static_cast<int>(QB - qb0 < ATTNC_TOPK_CHUNK ? QB - qb0 : ATTNC_TOPK_CHUNK);
  float *pq = attnc_topk_smem;               // [CHUNK][D]
  float *score = pq + ATTNC_TOPK_CHUNK * ATTNC_D; // [CHUNK][KB]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = ATTNC_TOPK_THREADS / 32;

  // Mean query of each block of the chunk (rows at positions r + offset):
  // a thread per (block, feature pair), 4-byte loads, 16 rows in flight.
  // Every phase of this kernel waits on latency, so each keeps as many
  // independent loads going as it can.
  const attnc_b16 *q = a.q + ((b * a.Hq + h) * a.S) * ATTNC_D;
  const bool pairs = ATTNC_D % 2 == 0 && (reinterpret_cast<unsigned long long>(a.q) & 3) == 0;
  const int perBlock = pairs ? ATTNC_D / 2 : ATTNC_D;
  for (int n = threadIdx.x; n < nq * perBlock; n += ATTNC_TOPK_THREADS) {
    const long long qb = qb0 + n / perBlock;
    const int d = pairs ? 2 * (n % perBlock) : n % perBlock;
    long long rLo = qb * ATTNC_TOPK_BQ - offset, rHi = rLo + ATTNC_TOPK_BQ;
    rLo = rLo < 0 ? 0 : rLo;
    rHi = rHi < a.S ? rHi : a.S;
    float sum0 = 0.f, sum1 = 0.f;
    if (pairs) {
#pragma unroll 16
      for (long long r = rLo; r < rHi; ++r) {
        const unsigned w = *reinterpret_cast<const unsigned *>(q + r * ATTNC_D + d);
#if ATTNC_F16
        sum0 += attnc_f16_to_f32(static_cast<attnc_b16>(w & 0xffffu));
        sum1 += attnc_f16_to_f32(static_cast<attnc_b16>(w >> 16));
#else
        sum0 += __uint_as_float(w << 16);
        sum1 += __uint_as_float(w & 0xffff0000u);
#endif
      }
    } else {
#pragma unroll 16
      for (long long r = rLo; r < rHi; ++r)
        sum0 += attnc_topk_load(q, r * ATTNC_D + d);
    }
    // Divided, not multiplied by 1 / n: the CPU's selection (TopKSelect.cpp)
    // rounds the same way, so near ties go the same way on both.
    const float rows = static_cast<float>(rHi - rLo);
    const int at = static_cast<int>(qb - qb0) * ATTNC_D + d;
    pq[at] = rHi > rLo ? sum0 / rows : 0.f;
    if (pairs)
      pq[at + 1] = rHi > rLo ? sum1 / rows : 0.f;
  }
  __syncthreads();

  // Candidates of the chunk's last block bound every block's.
  long long kbEnd = KB;
#if ATTNC_TOPK_CAUSAL
  {
    long long last = ((qb0 + nq - 1) * ATTNC_TOPK_BQ + ATTNC_TOPK_BQ - 1) / ATTNC_TOPK_BK + 1;
    kbEnd = last < KB ? last : KB;
  }
#endif
  // Scores: a thread per key block, its mean key read in runs of 32
  // features (all of a run's loads in flight together; a warp's load of one
  // feature is one line of the transposed scratch), every query block's mean
  // read from shared memory at the same address by the whole warp.
  const float *pkBase = pooled + (b * a.Hkv + hk) * ATTNC_D * KB;
  constexpr int kRun = 32;
  for (long long kb = threadIdx.x; kb < kbEnd; kb += ATTNC_TOPK_THREADS) {
    float dot[ATTNC_TOPK_CHUNK];
#pragma unroll
    for (int qi = 0; qi < ATTNC_TOPK_CHUNK; ++qi)
      dot[qi] = 0.f;
    const float *key = pkBase + kb;
    for (int d0 = 0; d0 < ATTNC_D; d0 += kRun) {
      float kv[kRun];
#pragma unroll
      for (int e = 0; e < kRun; ++e)
        kv[e] = d0 + e < ATTNC_D ? key[(d0 + e) * KB] : 0.f;
#pragma unroll
      for (int qi = 0; qi < ATTNC_TOPK_CHUNK; ++qi) {
        if (qi >= nq)
          break;
#pragma unroll
        for (int e = 0; e < kRun; ++e)
          if (d0 + e < ATTNC_D)
            dot[qi] += pq[qi * ATTNC_D + d0 + e] * kv[e];
      }
    }
#pragma unroll
    for (int qi = 0; qi < ATTNC_TOPK_CHUNK; ++qi)
      if (qi < nq)
        score[qi * KB + kb] = dot[qi];
  }
  __syncthreads();

  // Top-k: a warp per query block takes the best candidate top_k times (the
  // highest score, ties to the lower block), marking each one taken by
  // overwriting its score with NaN, which no later round picks. Then every
  // candidate marked is chosen. (A score that was NaN already counts as
  // chosen, as in a rank count, where nothing beats it.)
  for (int qi = warp; qi < nq; qi += warps) {
    const long long qb = qb0 + qi;
    long long candidates = KB;
#if ATTNC_TOPK_CAUSAL
    {
      long long last = (qb * ATTNC_TOPK_BQ + ATTNC_TOPK_BQ - 1) / ATTNC_TOPK_BK + 1;
      candidates = last < KB ? last : KB;
    }
#endif
    float *s = score + qi * KB;
    for (int round = 0; round < ATTNC_TOPK_K; ++round) {
      float best = 0.f;
      long long bestAt = -1;
      for (long long kb = lane; kb < candidates; kb += 32) {
        const float v = s[kb];
        if (v == v && (bestAt < 0 || v > best))
          best = v, bestAt = kb; // kb rises, so an equal score keeps the lower block
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const long long oAt = __shfl_xor_sync(0xffffffffu, bestAt, o);
        const bool take = oAt >= 0 && (bestAt < 0 || ov > best || (ov == best && oAt < bestAt));
        best = take ? ov : best;
        bestAt = take ? oAt : bestAt;
      }
      if (bestAt < 0)
        break; // fewer candidates than top_k: all are taken
      __syncwarp(); // every lane's reads of this round before the mark
      if (lane == 0)
        s[bestAt] = __int_as_float(0x7fc00000);
      __syncwarp();
    }
    int *row = const_cast<int *>(a.ATTNC_TOPK_TABLE) + ((b * a.Hq + h) * QB + qb) * KB;
    for (long long kb = lane; kb < KB; kb += 32)
      row[kb] = kb < candidates && s[kb] != s[kb];
  }
}

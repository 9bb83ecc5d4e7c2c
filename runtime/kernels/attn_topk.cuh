// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The top-k block selection of attn.topk on the GPU, appended by attnc to a
// kernel whose mask selects blocks (attn-materialize-topk). Two kernels run
// before the tile classes and the attention kernel, on the same stream:
//
//   ATTNC_TOPK_POOL   one CTA per (key block, KV head, batch): the block's
//                     mean key, into f32 scratch [B, Hkv, KB, D];
//   ATTNC_TOPK_SELECT one CTA per (ATTNC_TOPK_CHUNK query blocks, query head,
//                     batch): each block's mean query, its dot with every
//                     candidate key block, and the top_k by rank (fewer than
//                     top_k better, ties to the lower block), into the table
//                     [B, Hq, QB, KB] of int32 the mask reads. Small chunks
//                     keep several CTAs on every SM: each phase waits on
//                     memory or shared memory, not on arithmetic.
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
    pooled[((b * a.Hkv + hk) * KB + kb) * ATTNC_D + d] = sum / static_cast<float>(jHi - jLo);
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

  // Mean query of each block of the chunk (rows at positions r + offset).
  const attnc_b16 *q = a.q + ((b * a.Hq + h) * a.S) * ATTNC_D;
  for (int n = threadIdx.x; n < nq * ATTNC_D; n += ATTNC_TOPK_THREADS) {
    const long long qb = qb0 + n / ATTNC_D;
    const int d = n % ATTNC_D;
    long long rLo = qb * ATTNC_TOPK_BQ - offset, rHi = rLo + ATTNC_TOPK_BQ;
    rLo = rLo < 0 ? 0 : rLo;
    rHi = rHi < a.S ? rHi : a.S;
    float sum = 0.f;
#pragma unroll 8
    for (long long r = rLo; r < rHi; ++r)
      sum += attnc_topk_load(q, r * ATTNC_D + d);
    pq[n] = rHi > rLo ? sum / static_cast<float>(rHi - rLo) : 0.f;
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
  // Scores: one warp per key block, lanes over the features.
  const float *pkBase = pooled + ((b * a.Hkv + hk) * KB) * ATTNC_D;
  for (long long kb = warp; kb < kbEnd; kb += warps) {
    float key[(ATTNC_D + 31) / 32];
#pragma unroll
    for (int m = 0; m < (ATTNC_D + 31) / 32; ++m) {
      int d = lane + 32 * m;
      key[m] = d < ATTNC_D ? pkBase[kb * ATTNC_D + d] : 0.f;
    }
    for (int qi = 0; qi < nq; ++qi) {
      float dot = 0.f;
#pragma unroll
      for (int m = 0; m < (ATTNC_D + 31) / 32; ++m) {
        int d = lane + 32 * m;
        if (d < ATTNC_D)
          dot += pq[qi * ATTNC_D + d] * key[m];
      }
#pragma unroll
      for (int s = 16; s > 0; s >>= 1)
        dot += __shfl_xor_sync(0xffffffffu, dot, s);
      if (lane == 0)
        score[qi * KB + kb] = dot;
    }
  }
  __syncthreads();

  // Top-k by rank: per query block, every thread ranks its key blocks.
  for (int qi = 0; qi < nq; ++qi) {
    const long long qb = qb0 + qi;
    long long candidates = KB;
#if ATTNC_TOPK_CAUSAL
    {
      long long last = (qb * ATTNC_TOPK_BQ + ATTNC_TOPK_BQ - 1) / ATTNC_TOPK_BK + 1;
      candidates = last < KB ? last : KB;
    }
#endif
    int *row = const_cast<int *>(a.ATTNC_TOPK_TABLE) + ((b * a.Hq + h) * QB + qb) * KB;
    const float *s = score + qi * KB;
    for (long long kb = threadIdx.x; kb < KB; kb += ATTNC_TOPK_THREADS) {
      int chosen = 0;
      if (kb < candidates) {
        const float mine = s[kb];
        long long better = 0;
        for (long long o = 0; o < candidates && better < ATTNC_TOPK_K; ++o)
          better += s[o] > mine || (s[o] == mine && o < kb);
        chosen = better < ATTNC_TOPK_K;
      }
      row[kb] = chosen;
    }
  }
}

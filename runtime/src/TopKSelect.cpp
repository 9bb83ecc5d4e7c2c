//===- TopKSelect.cpp - Top-k key blocks per query block ------------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/TopKSelect.h"
#include "attnc/runtime/ThreadPool.h"

#include <algorithm>
#include <vector>

using namespace attnc;

int64_t attnc::topKQueryBlocks(const TopKParams &p, int64_t S, int64_t T) {
  int64_t last = p.alignEnd ? T : S; // one past the last query position
  return (last + p.blockQ - 1) / p.blockQ;
}

int64_t attnc::topKKeyBlocks(const TopKParams &p, int64_t T) {
  return (T + p.blockK - 1) / p.blockK;
}

namespace {
/// Element `n` of a contiguous tensor as f32.
float at(const TensorView &t, int64_t n) {
  switch (t.dtype) {
  case DType::bf16: return bf16ToFloat(static_cast<const uint16_t *>(t.data)[n]);
  case DType::f16: return f16ToFloat(static_cast<const uint16_t *>(t.data)[n]);
  default: return static_cast<const float *>(t.data)[n];
  }
}
} // namespace

void attnc::selectTopKBlocks(const TensorView &q, const TensorView &k, const TopKParams &p,
                             int32_t *table, unsigned threads) {
  int64_t B = q.shape[0], Hq = q.shape[1], S = q.shape[2], D = q.shape[3];
  int64_t Hkv = k.shape[1], T = k.shape[2];
  int64_t QB = topKQueryBlocks(p, S, T), KB = topKKeyBlocks(p, T);
  int64_t offset = p.alignEnd ? T - S : 0, group = Hq / Hkv;
  // Mean key of every block, once per KV head.
  std::vector<float> pk(static_cast<size_t>(B * Hkv * KB * D), 0.0f);
  ThreadPool::global().parallelFor(B * Hkv, threads, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh)
      for (int64_t kb = 0; kb < KB; ++kb) {
        float *out = &pk[static_cast<size_t>((bh * KB + kb) * D)];
        int64_t jLo = kb * p.blockK, jHi = std::min(T, jLo + p.blockK);
        for (int64_t j = jLo; j < jHi; ++j)
          for (int64_t d = 0; d < D; ++d)
            out[d] += at(k, (bh * T + j) * D + d);
        for (int64_t d = 0; d < D; ++d)
          out[d] /= static_cast<float>(jHi - jLo);
      }
  });
  ThreadPool::global().parallelFor(B * Hq, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> pq(static_cast<size_t>(D)), score(static_cast<size_t>(KB));
    for (int64_t bh = begin; bh < end; ++bh) {
      int64_t b = bh / Hq, h = bh % Hq, bhk = b * Hkv + h / group;
      for (int64_t qb = 0; qb < QB; ++qb) {
        int32_t *row = table + (bh * QB + qb) * KB;
        std::fill(row, row + KB, 0);
        int64_t rLo = std::max<int64_t>(qb * p.blockQ - offset, 0);
        int64_t rHi = std::min<int64_t>((qb + 1) * p.blockQ - offset, S);
        if (rHi <= rLo)
          continue; // no query rows in this block: nothing reads it
        std::fill(pq.begin(), pq.end(), 0.0f);
        for (int64_t r = rLo; r < rHi; ++r)
          for (int64_t d = 0; d < D; ++d)
            pq[d] += at(q, (bh * S + r) * D + d);
        for (float &x : pq)
          x /= static_cast<float>(rHi - rLo);
        int64_t candidates = KB;
        if (p.causal)
          candidates = std::min(KB, (qb * p.blockQ + p.blockQ - 1) / p.blockK + 1);
        for (int64_t kb = 0; kb < candidates; ++kb) {
          const float *key = &pk[static_cast<size_t>((bhk * KB + kb) * D)];
          float dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += pq[d] * key[d];
          score[kb] = dot;
        }
        // A block is chosen when fewer than top_k beat it (ties: lower block).
        for (int64_t kb = 0; kb < candidates; ++kb) {
          int64_t better = 0;
          for (int64_t o = 0; o < candidates && better < p.topK; ++o)
            better += score[o] > score[kb] || (score[o] == score[kb] && o < kb);
          row[kb] = better < p.topK;
        }
      }
    }
  });
}

//===- TopKSelect.h - Top-k key blocks per query block ----------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The selection attn.topk describes (MoBA, SeerAttention), computed on the
// CPU in f32: each query block's mean query against each key block's mean
// key; the top_k best key blocks per query block are marked 1 in a
// [B, Hq, QB, KB] table of int32. The compiled kernel reads the table as a
// block mask (attn-materialize-topk). The CUDA kernels compute the same
// selection on the GPU (runtime/kernels/attn_topk.cuh).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_TOPKSELECT_H
#define ATTNC_RUNTIME_TOPKSELECT_H

#include "attnc/runtime/Tensor.h"

#include <cstdint>

namespace attnc {

struct TopKParams {
  int64_t topK = 1, blockQ = 64, blockK = 64;
  bool causal = false;   // candidates: key blocks starting before the query block ends
  bool alignEnd = false; // queries are the last S of T positions
};

/// Query blocks of the table for S queries against T keys: the blocks of
/// positions [T - S, T) for alignEnd, [0, S) otherwise, counted from 0.
int64_t topKQueryBlocks(const TopKParams &p, int64_t S, int64_t T);
int64_t topKKeyBlocks(const TopKParams &p, int64_t T);

/// Fills `table` ([B, Hq, topKQueryBlocks, topKKeyBlocks], row-major) from
/// q [B, Hq, S, D] and k [B, Hkv, T, D] (f32, bf16 or f16, contiguous) on up
/// to `threads` threads of the global pool (0: all).
void selectTopKBlocks(const TensorView &q, const TensorView &k, const TopKParams &p,
                      int32_t *table, unsigned threads);

} // namespace attnc

#endif // ATTNC_RUNTIME_TOPKSELECT_H

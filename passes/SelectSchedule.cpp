//===- SelectSchedule.cpp - Choose tile sizes per target --------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Every later pass (sparsity analysis, lowering) works on tiles, so the tile
// shape is fixed once here, from the target and the static shapes.
//
//===----------------------------------------------------------------------===//

#include "dialects/attn/AttnOps.h"
#include "passes/Passes.h"

namespace attnc {
#define GEN_PASS_DEF_ATTNSELECTSCHEDULEPASS
#include "passes/Passes.h.inc"
} // namespace attnc

#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace attnc::attn;

namespace {
struct Tiles {
  int64_t blockQ, blockK;
};

Tiles chooseTiles(StringRef target, int64_t headDim, bool amxTiles) {
  bool staticDim = !ShapedType::isDynamic(headDim);
  if (!staticDim)
    headDim = 128;
  // The portable CUDA kernel: four warps of 32 query rows; past D = 128 the
  // accumulators fit only 16 rows per warp and half the keys per tile.
  if (target == "cuda")
    return headDim <= 128 ? Tiles{128, 64} : Tiles{64, 32};
  Tiles tiles = headDim <= 128 ? Tiles{64, 64} : Tiles{32, 32};
  // AMX: twice the keys per tile halves the per-row softmax work and the
  // accumulator tiles' loads and stores per key; twice the rows halve the
  // K and V bytes each item streams per flop (docs/cpu-backend.md).
  if (amxTiles && staticDim && headDim % 32 == 0 && headDim <= 128)
    tiles = Tiles{128, 128};
  // $ATTNC_CPU_TILES=BQ,BK: a tuning knob for the benchmarks (the chosen
  // tiles are in the IR the JIT's cache key hashes).
  if (const char *env = std::getenv("ATTNC_CPU_TILES")) {
    long bq = 0, bk = 0;
    if (std::sscanf(env, "%ld,%ld", &bq, &bk) == 2 && bq > 0 && bk > 0 && bq <= 1024 &&
        bk <= 1024)
      tiles = Tiles{bq, bk};
  }
  return tiles;
}

struct AttnSelectSchedulePass
    : attnc::impl::AttnSelectSchedulePassBase<AttnSelectSchedulePass> {
  using Base::Base;

  void runOnOperation() override {
    if (target != "cpu" && target != "cuda") {
      getOperation().emitError() << "attn-select-schedule: unknown target '"
                                 << target << "'; expected cpu or cuda";
      return signalPassFailure();
    }
    getOperation().walk([&](AttentionOp op) {
      if (op.getSchedule())
        return;
      auto bf16 = [](Value x) { return cast<ShapedType>(x.getType()).getElementType().isBF16(); };
      bool amxTiles = amx && target == "cpu" && op.getKernel() == KernelKind::softmax &&
                      !op.isPaged() && bf16(op.getQuery()) && bf16(op.getKey()) &&
                      bf16(op.getValue());
      Tiles tiles = chooseTiles(target, op.getQuery().getType().getDimSize(3), amxTiles);
      int64_t queryLen = op.getQuery().getType().getDimSize(2);
      // Short queries (decode) take a smaller query tile; the CUDA kernel
      // has tiles of 16 to 64 rows or 128.
      int64_t fit = std::max<int64_t>(16, (queryLen + 15) / 16 * 16);
      if (!ShapedType::isDynamic(queryLen) && (target != "cuda" || fit <= 64))
        tiles.blockQ = std::min(tiles.blockQ, fit);
      op.setScheduleAttr(
          ScheduleAttr::get(op.getContext(), tiles.blockQ, tiles.blockK));
    });
  }
};
} // namespace

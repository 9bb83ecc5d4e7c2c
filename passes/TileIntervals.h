//===- TileIntervals.h - Bound a mask over a tile of (i, j) -----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Emits code that evaluates a mask region in interval arithmetic over a box
// of query and key positions, giving two bits: the mask may be true
// somewhere in the box, and it may be false somewhere. A tile that cannot be
// true is EMPTY and skipped; one that cannot be false is FULL and runs
// without the mask. Bounds are sound: anything the analysis cannot follow
// (reads of tensors, floats, unsigned compares, division by a variable)
// becomes "may be true and may be false".
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_TILEINTERVALS_H
#define ATTNC_PASSES_TILEINTERVALS_H

#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/Value.h"

#include <functional>

namespace mlir {
class Region;
} // namespace mlir

namespace attnc {

/// The index box the mask is bounded over; every bound is an `index` value.
struct TileBox {
  mlir::Value b, h;          // exact
  mlir::Value iLo, iHi;      // inclusive
  mlir::Value jLo, jHi;      // inclusive
};

struct TileClass {
  mlir::Value mayKeep; // i1: some (i, j) in the box is visible
  mlir::Value mayDrop; // i1: some (i, j) in the box is masked
};

/// Emits the interval evaluation of `mask` (a mask region of
/// attn.attention) over `box` at `b`. `sizeOf(kind)` gives the value of an
/// attn.size of that kind (as an int: batch, q_heads, ...).
TileClass classifyTile(mlir::ImplicitLocOpBuilder &b, mlir::Region &mask,
                       const TileBox &box,
                       const std::function<mlir::Value(int)> &sizeOf);

/// What one scan of a list row finds (see attn.listed): `anyIn`, whether
/// one of the row's first min(count, L) entries lies in [lo, hi]; `hitLo`,
/// whether `lo` itself is among the first min(sureCount, L) entries
/// (sureCount <= count). Emitted as one scf.for over the row.
struct ListScan {
  mlir::Value anyIn, hitLo; // i1
};
ListScan scanList(mlir::ImplicitLocOpBuilder &b, mlir::Value list, mlir::ValueRange prefix,
                  mlir::Value count, mlir::Value sureCount, mlir::Value lo, mlir::Value hi);

} // namespace attnc

#endif // ATTNC_PASSES_TILEINTERVALS_H

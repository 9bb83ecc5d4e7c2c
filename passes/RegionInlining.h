//===- RegionInlining.h - Inline attn regions, scalar or over lanes -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Clones the body of an attn.attention region (score, mask, gate) at a
// builder, with its block arguments bound to values: attn.read becomes a
// load, attn.size the problem size, attn.listed a scan of the list. The CPU
// lowering evaluates regions either for one (i, j) at a time, or over a
// vector of keys: ops that do not depend on the lanes' values stay scalar,
// the others take vector types, and reads that vary only in their innermost
// index become gathers.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_REGIONINLINING_H
#define ATTNC_PASSES_REGIONINLINING_H

#include "dialects/attn/AttnDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/DenseSet.h"

#include <functional>

namespace mlir {
class IRMapping;
} // namespace mlir

namespace attnc {

/// `index` clamped to [0, max(size of dim `dim` of `memref` - 1, 0)]. Region
/// reads go through it: a region may compute any index (the reference
/// reports one outside the tensor), and the kernel must not read outside
/// the tensor's memory for it.
mlir::Value clampToDim(mlir::ImplicitLocOpBuilder &b, mlir::Value memref, unsigned dim,
                       mlir::Value index);

/// The flagged arguments of `region` (one flag per argument) and every
/// value of its block computed from one of them, directly or inside a
/// nested op: what must be evaluated where those arguments vary.
llvm::DenseSet<mlir::Value> valuesDependingOn(mlir::Region &region, llvm::ArrayRef<bool> flagged);

class RegionInliner {
public:
  /// `sizeOf` gives the value of attn.size of a kind at the builder.
  RegionInliner(mlir::ImplicitLocOpBuilder &b, int64_t width,
                std::function<mlir::Value(attn::SizeKind)> sizeOf)
      : b(b), width(width), sizeOf(std::move(sizeOf)) {}

  /// The region's result with its arguments bound to scalars `args`.
  mlir::Value inlineScalar(mlir::Region &region, mlir::ValueRange args);

  /// The ops of `region` that depend on none of the arguments flagged in
  /// `varying` (through their operands or values a nested op reads),
  /// cloned at the builder with the other arguments bound to `args`; the
  /// flagged entries of `args` are ignored. `map` carries the results to
  /// inlineRest, which clones the remaining ops where they vary (the gate's
  /// per-row part once per row, outside the loop over features).
  void inlineInvariant(mlir::Region &region, mlir::ValueRange args,
                       llvm::ArrayRef<bool> varying, mlir::IRMapping &map);
  /// The region's result: the ops inlineInvariant left, with every argument
  /// bound to `args` and the invariant results taken from `map` (a copy).
  mlir::Value inlineRest(mlir::Region &region, mlir::ValueRange args, mlir::IRMapping map);

  /// Whether inlineLanes can evaluate `region` with the arguments flagged in
  /// `varying` taking one value per lane: every op that reads a varying
  /// value is elementwise (arith, math), divides by a lane-invariant divisor
  /// (lanes past a tile must not divide by zero), or is an attn.read that
  /// varies only in its innermost index of a non-bf16 tensor with unit
  /// innermost stride.
  static bool canInlineLanes(mlir::Region &region, llvm::ArrayRef<bool> varying);

  /// As inlineScalar, over `width` lanes at once: arguments that are vectors
  /// vary per lane, the others are shared. Ops on shared values stay scalar;
  /// the others get vector types, and varying reads become gathers limited
  /// to `lanes` (an i1 vector: the lanes that hold real keys). The result is
  /// a vector. `firstLane[k]`, where given, says that args[k] holds
  /// consecutive values from that scalar up (a tile's key indices): a read
  /// indexed by it (plus or minus a shared value) loads the lanes as one
  /// contiguous vector where they all lie inside the tensor, and gathers
  /// only where they do not.
  mlir::Value inlineLanes(mlir::Region &region, mlir::ValueRange args, mlir::Value lanes,
                          mlir::ArrayRef<mlir::Value> firstLane = {});

private:
  /// One op of a region, at the builder, its operands looked up in `map`.
  void cloneScalar(mlir::Operation &inner, mlir::IRMapping &map);

  mlir::ImplicitLocOpBuilder &b;
  int64_t width;
  std::function<mlir::Value(attn::SizeKind)> sizeOf;
};

} // namespace attnc

#endif // ATTNC_PASSES_REGIONINLINING_H

//===- Passes.h - attnc passes ----------------------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_PASSES_H
#define ATTNC_PASSES_PASSES_H

#include "dialects/attn/AttnDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::amx {
class AMXDialect;
} // namespace mlir::amx
namespace mlir::scf {
class SCFDialect;
} // namespace mlir::scf
namespace mlir::vector {
class VectorDialect;
} // namespace mlir::vector
namespace mlir::memref {
class MemRefDialect;
} // namespace mlir::memref

namespace attnc {
namespace attn {
class AttentionOp;
} // namespace attn

/// How convert-attn-to-cpu splits the work: an item is `headsPerItem`
/// query heads (the whole GQA group of a KV head for paged decode, so that
/// its pages are read and dequantized once) by `queriesPerItem` queries.
/// The runtime runs B * (Hq / headsPerItem) * ceil(S / queriesPerItem) items.
struct CpuItemShape {
  int64_t headsPerItem = 1, queriesPerItem = 1;
};
CpuItemShape cpuItemShape(attn::AttentionOp op, int64_t blockQ);

#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"
} // namespace attnc

#endif // ATTNC_PASSES_PASSES_H

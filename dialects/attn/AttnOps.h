//===- AttnOps.h - attn operations ------------------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_DIALECTS_ATTN_ATTNOPS_H
#define ATTNC_DIALECTS_ATTN_ATTNOPS_H

#include "dialects/attn/AttnDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "dialects/attn/AttnOps.h.inc"

namespace attnc::attn {

/// The role of a region of attn.attention, for diagnostics and builders.
enum class VariantRegion { Score, Mask, Gate };

/// The region's name as it is spelled in the assembly ("score", ...).
llvm::StringRef regionName(VariantRegion kind);

/// Value the region yields, or null when the region is absent.
mlir::Value yieldedValue(mlir::Region &region);

} // namespace attnc::attn

#endif // ATTNC_DIALECTS_ATTN_ATTNOPS_H

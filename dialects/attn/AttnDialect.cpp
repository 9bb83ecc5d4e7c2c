//===- AttnDialect.cpp - The attn dialect -----------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "dialects/attn/AttnDialect.h"
#include "dialects/attn/AttnOps.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Interfaces/FoldInterfaces.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace attnc::attn;

#include "dialects/attn/AttnDialect.cpp.inc"
#include "dialects/attn/AttnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/attn/AttnAttrs.cpp.inc"

namespace {
/// Keeps constants folded inside a variant region in that region, so that
/// each region stays a self-contained function of its arguments and extras.
struct AttnFoldInterface : DialectFoldInterface {
  using DialectFoldInterface::DialectFoldInterface;
  bool shouldMaterializeInto(Region *region) const final {
    return isa<AttentionOp>(region->getParentOp());
  }
};
} // namespace

void AttnDialect::initialize() {
  addInterfaces<AttnFoldInterface>();
  addOperations<
#define GET_OP_LIST
#include "dialects/attn/AttnOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/attn/AttnAttrs.cpp.inc"
      >();
}

LogicalResult
ScheduleAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                     int64_t blockQ, int64_t blockK) {
  if (blockQ <= 0 || blockK <= 0)
    return emitError() << "expects positive tile sizes, got block_q = "
                       << blockQ << " and block_k = " << blockK;
  return success();
}

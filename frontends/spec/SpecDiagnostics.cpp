//===- SpecDiagnostics.cpp - Error reporting for the spec frontend --------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/SpecDiagnostics.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace attnc::spec;

SpecDiagnostics::SpecDiagnostics(llvm::SourceMgr &sm, unsigned bufferId,
                                 MLIRContext *ctx)
    : sm(sm), bufferId(bufferId), ctx(ctx) {}

Location SpecDiagnostics::getLoc(llvm::SMLoc loc) const {
  const llvm::MemoryBuffer *buf = sm.getMemoryBuffer(bufferId);
  StringRef name = buf->getBufferIdentifier();
  if (!loc.isValid())
    return FileLineColLoc::get(ctx, name, 1, 1);
  auto [line, col] = sm.getLineAndColumn(loc, bufferId);
  return FileLineColLoc::get(ctx, name, line, col);
}

bool SpecDiagnostics::admit(llvm::SMLoc loc) {
  if (numErrors > kMaxErrors)
    return false;
  if (numErrors == kMaxErrors) {
    ++numErrors;
    mlir::emitError(getLoc(loc))
        << "too many errors (" << kMaxErrors << "); stopping here";
    return false;
  }
  ++numErrors;
  return true;
}

void SpecDiagnostics::error(llvm::SMLoc loc, const llvm::Twine &msg) {
  if (admit(loc))
    mlir::emitError(getLoc(loc), msg);
}

void SpecDiagnostics::error(llvm::SMLoc loc, const llvm::Twine &msg,
                            llvm::SMLoc noteLoc, const llvm::Twine &note) {
  if (!admit(loc))
    return;
  InFlightDiagnostic diag = mlir::emitError(getLoc(loc), msg);
  diag.attachNote(getLoc(noteLoc.isValid() ? noteLoc : loc)) << note;
}

void SpecDiagnostics::errorNoLoc(const llvm::Twine &msg) {
  if (numErrors >= kMaxErrors)
    return;
  ++numErrors;
  mlir::emitError(UnknownLoc::get(ctx), msg);
}

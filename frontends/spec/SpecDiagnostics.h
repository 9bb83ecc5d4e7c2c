//===- SpecDiagnostics.h - Error reporting for specs ------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Turns source positions of a spec buffer into MLIR FileLineColLocs and emits
// errors through the MLIR diagnostic engine, counting them so that the
// frontend stops after a fixed number instead of flooding the user.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_SPECDIAGNOSTICS_H
#define ATTNC_FRONTENDS_SPEC_SPECDIAGNOSTICS_H

#include "mlir/IR/Location.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SMLoc.h"

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace attnc::spec {

/// Errors after which the frontend gives up.
inline constexpr unsigned kMaxErrors = 20;

class SpecDiagnostics {
public:
  SpecDiagnostics(llvm::SourceMgr &sm, unsigned bufferId,
                  mlir::MLIRContext *ctx);

  mlir::MLIRContext *getContext() const { return ctx; }

  /// The FileLineColLoc of `loc`, which must point into the spec buffer.
  mlir::Location getLoc(llvm::SMLoc loc) const;

  /// Emits an error at `loc`. An invalid `noteLoc` puts the note (when there
  /// is one) at the error itself.
  void error(llvm::SMLoc loc, const llvm::Twine &msg);
  void error(llvm::SMLoc loc, const llvm::Twine &msg, llvm::SMLoc noteLoc,
             const llvm::Twine &note);
  /// Emits an error that belongs to no place in the source (command-line
  /// options such as -D).
  void errorNoLoc(const llvm::Twine &msg);

  unsigned getNumErrors() const { return numErrors; }
  bool hadError() const { return numErrors != 0; }
  /// True once an error beyond kMaxErrors was attempted: the frontend said
  /// "too many errors" and drops everything after.
  bool stopped() const { return numErrors > kMaxErrors; }

private:
  /// Counts one error; false when it must be dropped.
  bool admit(llvm::SMLoc loc);

  llvm::SourceMgr &sm;
  unsigned bufferId;
  mlir::MLIRContext *ctx;
  unsigned numErrors = 0;
};

} // namespace attnc::spec

#endif // ATTNC_FRONTENDS_SPEC_SPECDIAGNOSTICS_H

//===- SpecEmitter.h - The IR builder of the spec frontend ------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Internal to the frontend: the class that builds one spec's func.func.
// SpecToAttn.cpp builds the function, the op and the regions;
// EmitExpr.cpp lowers the expressions inside the regions.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_SPECEMITTER_H
#define ATTNC_FRONTENDS_SPEC_SPECEMITTER_H

#include "dialects/attn/AttnOps.h"
#include "frontends/spec/SpecDiagnostics.h"
#include "frontends/spec/SpecToAttn.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"

#include <optional>

namespace attnc::spec {

/// A value of an expression with its spec-level kind.
struct Typed {
  mlir::Value value;
  ScalarKind kind;
};

/// A name visible in every region of the spec.
struct Global {
  enum class Kind { Const, Param, Tensor } kind;
  llvm::SMLoc defLoc;
  unsigned argIndex = 0;                  // Param, Tensor
  const ResolvedTensor *tensor = nullptr; // Tensor
  const ResolvedParam *param = nullptr;   // Param
  ConstValue constValue;                  // Const
};

/// A name local to one region: a region parameter or a let.
struct Local {
  Typed typed;
  llvm::SMLoc defLoc;
};

/// Builds the func.func of one checked spec. Errors in region expressions
/// are reported and make run() fail; building goes on with the next let or
/// region so that one run reports several mistakes.
class SpecEmitter {
public:
  SpecEmitter(const CheckedSpec &spec, SpecDiagnostics &diag,
              mlir::OpBuilder &b)
      : spec(spec), diag(diag), b(b), ctx(b.getContext()) {}

  mlir::LogicalResult run();

private:
  mlir::Location loc(llvm::SMLoc l) const { return diag.getLoc(l); }
  void error(llvm::SMLoc l, const llvm::Twine &msg) {
    diag.error(l, msg);
    ok = false;
  }
  void error(llvm::SMLoc l, const llvm::Twine &msg, llvm::SMLoc noteLoc,
             const llvm::Twine &note) {
    diag.error(l, msg, noteLoc, note);
    ok = false;
  }

  mlir::func::FuncOp buildFunc();
  void emitRegion(const RegionDecl *decl, mlir::Region &region,
                  attn::VariantRegion kind);
  /// Declares a region parameter or let; false after a redefinition error.
  bool declareLocal(const Ident &id, Typed typed);
  void reportUnknownName(const Expr &e);

  mlir::FailureOr<Typed> emit(const Expr &e);
  mlir::FailureOr<Typed> emitName(const Expr &e);
  mlir::FailureOr<Typed> emitRead(const Expr &e);
  mlir::FailureOr<Typed> emitUnary(const Expr &e);
  mlir::FailureOr<Typed> emitBinary(const Expr &e);
  mlir::FailureOr<Typed> emitCall(const Expr &e);
  /// `listed(list[p...], count, x)`: attn.listed.
  mlir::FailureOr<Typed> emitListed(const Expr &e);
  /// `topk(k, block_q, block_k[, causal])` in a mask: attn.topk.
  mlir::FailureOr<Typed> emitTopK(const Expr &e);
  mlir::FailureOr<Typed> emitConst(ConstValue v, llvm::SMLoc at);
  /// `v` converted to `kind` (int to float, or unchanged).
  mlir::Value promote(Typed v, ScalarKind kind, mlir::Location l);
  /// True if every leaf of `e` is a literal or a const (memoized, so that
  /// folding stays linear in the size of the expression).
  bool onlyConstLeaves(const Expr &e);
  /// The value of `e` if it is a constant expression (no diagnostics).
  std::optional<ConstValue> tryConstant(const Expr &e);
  /// True if `e` is a constant expression equal to zero.
  bool isConstantZero(const Expr &e);
  /// True if `e` is a constant int expression greater than zero.
  bool isConstantPositive(const Expr &e);

  const CheckedSpec &spec;
  SpecDiagnostics &diag;
  mlir::OpBuilder &b;
  mlir::MLIRContext *ctx;
  bool ok = true;

  mlir::Block *entry = nullptr;
  /// The block of the region being emitted, and its kind.
  mlir::Block *regionBlock = nullptr;
  attn::VariantRegion regionKind = attn::VariantRegion::Score;
  llvm::StringMap<Global> globals;
  llvm::StringMap<Local> locals;
  /// Lets of the current region whose value had an error.
  llvm::StringSet<> poisoned;
  /// Index casts of int params, per region.
  llvm::StringMap<mlir::Value> paramCasts;
  /// Values named by a region parameter or a let; never erased.
  llvm::DenseSet<mlir::Value> namedValues;
  /// Memo of onlyConstLeaves.
  llvm::DenseMap<const Expr *, bool> constLeaves;
  /// Function arguments used in some region, in first-use order.
  llvm::SetVector<unsigned> usedArgs;
};

} // namespace attnc::spec

#endif // ATTNC_FRONTENDS_SPEC_SPECEMITTER_H

//===- Semantics.h - Types, builtins and constants of specs -----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The typing rules of spec expressions, shared by the compile-time
// evaluator of `const`/`scale` expressions and by the IR builder, so that
// both accept and reject exactly the same programs.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_SEMANTICS_H
#define ATTNC_FRONTENDS_SPEC_SEMANTICS_H

#include "frontends/spec/AST.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"

#include <optional>

namespace attnc::spec {

class SpecDiagnostics;

/// The three value kinds of expressions: int is 64-bit signed (`index` in
/// the IR), float is f32 in the IR and double at compile time, bool is i1.
enum class ScalarKind { Int, Float, Bool };

llvm::StringRef kindName(ScalarKind kind);

/// `v` printed for a diagnostic (%g).
std::string formatDouble(double v);

/// A compile-time value.
struct ConstValue {
  ScalarKind kind = ScalarKind::Int;
  int64_t i = 0;
  double f = 0;
  bool b = false;

  static ConstValue ofInt(int64_t v) { return {ScalarKind::Int, v, 0, false}; }
  static ConstValue ofFloat(double v) {
    return {ScalarKind::Float, 0, v, false};
  }
  static ConstValue ofBool(bool v) { return {ScalarKind::Bool, 0, 0, v}; }
  /// The value as a double; int and float only.
  double asDouble() const { return kind == ScalarKind::Int ? double(i) : f; }
  bool isZero() const {
    return (kind == ScalarKind::Int && i == 0) ||
           (kind == ScalarKind::Float && f == 0);
  }
};

enum class Builtin {
  Min,
  Max,
  Abs,
  Exp,
  Log,
  Tanh,
  Sigmoid,
  Sqrt,
  Rsqrt,
  Floor,
  Ceil,
  Float,
  Int,
  Select,
};

std::optional<Builtin> lookupBuiltin(llvm::StringRef name);
/// The names of all builtins, for suggestions.
llvm::ArrayRef<llvm::StringRef> builtinNames();

/// The candidate closest to `name` by edit distance, when it is close enough
/// to be a plausible typo.
std::optional<llvm::StringRef>
closestName(llvm::StringRef name, llvm::ArrayRef<llvm::StringRef> candidates);

/// How an operation computes: operands are promoted to `operand` (int to
/// float), the result has kind `result`.
struct Typing {
  ScalarKind operand;
  ScalarKind result;
};

/// The typing of a unary or binary operator or of a builtin call, or failure
/// after an error at `loc` (none when `diag` is null).
mlir::FailureOr<Typing> typeUnary(Tok op, ScalarKind x, llvm::SMLoc loc,
                                  SpecDiagnostics *diag);
mlir::FailureOr<Typing> typeBinary(Tok op, ScalarKind lhs, ScalarKind rhs,
                                   llvm::SMLoc loc, SpecDiagnostics *diag);
/// For select (and `?:`), args are (condition, then, else) and `operand`
/// is the kind of the two branches.
mlir::FailureOr<Typing> typeCall(Builtin fn, llvm::StringRef name,
                                 llvm::ArrayRef<ScalarKind> args,
                                 llvm::SMLoc loc, SpecDiagnostics *diag);

/// Evaluates expressions over literals and consts at compile time, with
/// overflow, division-by-zero and range checks.
class ConstEvaluator {
public:
  /// `consts` maps the consts in scope to their values; `describeName`
  /// explains why a non-const name cannot be used (or returns "" when the
  /// name is unknown).
  ConstEvaluator(SpecDiagnostics &diag,
                 const llvm::StringMap<ConstValue> &consts,
                 llvm::function_ref<std::string(llvm::StringRef)> describeName);

  /// The value of `e`; failure after an error (silent when not `diagnose`).
  mlir::FailureOr<ConstValue> evaluate(const Expr &e, bool diagnose);

private:
  mlir::FailureOr<ConstValue> eval(const Expr &e);
  mlir::FailureOr<ConstValue> evalCall(const Expr &e);
  mlir::FailureOr<ConstValue> fail(llvm::SMLoc loc, const llvm::Twine &msg);

  SpecDiagnostics &diag;
  const llvm::StringMap<ConstValue> &consts;
  llvm::function_ref<std::string(llvm::StringRef)> describeName;
  bool diagnose = true;
};

} // namespace attnc::spec

#endif // ATTNC_FRONTENDS_SPEC_SEMANTICS_H

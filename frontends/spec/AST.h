//===- AST.h - Syntax tree of the attention spec language -------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The parser's output: plain structs that keep every source position a
// later diagnostic or IR location needs. Names point into the source buffer,
// which outlives the tree.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_AST_H
#define ATTNC_FRONTENDS_SPEC_AST_H

#include "frontends/spec/Lexer.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace attnc::spec {

/// A name and where it was written.
struct Ident {
  llvm::StringRef name;
  llvm::SMLoc loc;
};

/// One expression node. `operands` holds, by kind: Unary 1, Binary 2,
/// Ternary 3 (condition, then, else), Call the arguments, Index the indices.
struct Expr {
  enum class Kind {
    Int,
    Float,
    Bool,
    Name,
    Unary,
    Binary,
    Ternary,
    Call,
    Index
  };

  Kind kind;
  llvm::SMLoc loc; // the operator, the name or the literal
  int64_t intValue = 0;
  double floatValue = 0;
  bool boolValue = false;
  llvm::StringRef name; // Name, Call (callee), Index (tensor)
  Tok op = Tok::Eof;    // Unary and Binary
  std::vector<std::unique_ptr<Expr>> operands;
  /// Height of the tree rooted here; bounded by the parser.
  unsigned height = 1;
  /// Written inside parentheses (so `(a < b) == c` is not a chain).
  bool parenthesized = false;

  Expr(Kind kind, llvm::SMLoc loc) : kind(kind), loc(loc) {}
};

using ExprPtr = std::unique_ptr<Expr>;

/// One dimension of a tensor type: a literal size or a symbol.
struct DimDecl {
  llvm::StringRef symbol; // empty for a literal
  int64_t size = 0;       // the literal
  llvm::SMLoc loc;
  bool isSymbol() const { return !symbol.empty(); }
};

/// `name: dtype[dims]` in the inputs or outputs of a spec.
struct TensorDecl {
  Ident name;
  Ident dtype;
  std::vector<DimDecl> dims;
};

/// `param name: type [= default]`.
struct ParamDecl {
  Ident name;
  Ident type;
  bool hasDefault = false;
  bool defaultIsFloat = false;
  int64_t intDefault = 0;
  double floatDefault = 0;
  llvm::SMLoc defaultLoc;
};

/// `const name = expr`.
struct ConstDecl {
  Ident name;
  ExprPtr value;
};

/// `name = expr` for scale, kernel and align.
struct SettingDecl {
  Ident name;
  ExprPtr value;
};

/// `let name = expr` inside a region block.
struct LetDecl {
  Ident name;
  ExprPtr value;
};

/// `kind(params) = expr` or `kind(params) { lets; return expr }`.
struct RegionDecl {
  Ident kind;
  std::vector<Ident> params;
  std::vector<LetDecl> lets;
  ExprPtr result;
};

/// One `attention NAME(...) -> (...) { ... }`.
struct SpecDecl {
  Ident name;
  std::vector<TensorDecl> inputs;
  std::vector<TensorDecl> outputs;
  llvm::SMLoc outputsLoc; // the '(' of the outputs
  std::vector<ParamDecl> params;
  std::vector<ConstDecl> consts;
  std::vector<SettingDecl> settings;
  std::vector<RegionDecl> regions;
  llvm::SMLoc endLoc; // the closing '}'
};

struct SpecFile {
  std::vector<SpecDecl> specs;
};

} // namespace attnc::spec

#endif // ATTNC_FRONTENDS_SPEC_AST_H

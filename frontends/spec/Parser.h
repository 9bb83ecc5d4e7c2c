//===- Parser.h - Parser of the attention spec language ---------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A recursive-descent parser from tokens to the AST of AST.h. It checks
// syntax only; names, types and shapes are checked when the IR is built.
// After an error in a statement it skips to the end of the line and goes
// on, so that one run reports several mistakes.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_PARSER_H
#define ATTNC_FRONTENDS_SPEC_PARSER_H

#include "frontends/spec/AST.h"
#include "frontends/spec/Lexer.h"
#include "mlir/Support/LLVM.h"

namespace attnc::spec {

/// Deepest expression nesting the parser accepts.
inline constexpr unsigned kMaxExprDepth = 200;

class Parser {
public:
  Parser(llvm::StringRef buffer, SpecDiagnostics &diag);

  /// Parses the whole buffer into `file`; fails if any error was reported.
  mlir::LogicalResult parseFile(SpecFile &file);

private:
  // Tokens.
  void consume();
  bool consumeIf(Tok kind);
  void skipNewlines();
  /// Consumes a token of `kind` or reports "expected <what>".
  mlir::LogicalResult expect(Tok kind, llvm::StringRef what);
  /// Like expect for a closing bracket, with a note at the opening one.
  mlir::LogicalResult expectClosing(Tok kind, llvm::SMLoc openLoc);
  mlir::LogicalResult expectIdent(Ident &out, llvm::StringRef what);
  /// Reports "expected <what>, got <current token>" unless the lexer already
  /// reported the current token.
  void errorExpected(llvm::StringRef what);
  /// Requires the end of a statement: a newline, '}' or the end of the file.
  mlir::LogicalResult expectEndOfStatement();
  /// Skips to the end of the current statement after an error.
  void skipStatement();

  // Declarations.
  mlir::LogicalResult parseSpec(SpecDecl &spec);
  mlir::LogicalResult parseTensorList(std::vector<TensorDecl> &out,
                                      llvm::SMLoc &openLoc);
  mlir::LogicalResult parseTensor(TensorDecl &out);
  mlir::LogicalResult parseBody(SpecDecl &spec);
  mlir::LogicalResult parseBodyItem(SpecDecl &spec);
  mlir::LogicalResult parseParam(ParamDecl &out);
  mlir::LogicalResult parseRegion(Ident kind, RegionDecl &out);
  mlir::LogicalResult parseRegionBlock(RegionDecl &out);
  /// Parses a literal integer token into `out` (in [0, 2^63) unless
  /// `negated`, then in [0, 2^63]).
  mlir::LogicalResult parseIntToken(int64_t &out, bool negated);

  // Expressions. `depth` counts the enclosing expression levels.
  ExprPtr parseExpr(unsigned depth);
  ExprPtr parseTernary(unsigned depth);
  ExprPtr parseBinary(unsigned minPrec, unsigned depth);
  ExprPtr parseUnary(unsigned depth);
  ExprPtr parsePrimary(unsigned depth);
  mlir::LogicalResult parseExprList(Tok closer, llvm::SMLoc openLoc,
                                    unsigned depth, std::vector<ExprPtr> &out);
  /// Builds a node over `operands`; null (after an error) if the tree gets
  /// deeper than kMaxExprDepth.
  ExprPtr makeNode(Expr::Kind kind, llvm::SMLoc loc,
                   std::vector<ExprPtr> operands);
  /// Reports the nesting limit once per expression; always returns null.
  ExprPtr tooDeep(llvm::SMLoc loc);

  Lexer lexer;
  SpecDiagnostics &diag;
  Token tok;
  /// Set when the body of the last spec was parsed up to its '}'.
  bool bodyClosed = false;
};

} // namespace attnc::spec

#endif // ATTNC_FRONTENDS_SPEC_PARSER_H

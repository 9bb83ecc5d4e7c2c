//===- Lexer.h - Tokens of the attention spec language ----------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Splits a spec buffer into tokens. Newlines are tokens because they end
// statements, except inside `(...)` and `[...]`, where the lexer drops them
// so that argument lists may span lines.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_LEXER_H
#define ATTNC_FRONTENDS_SPEC_LEXER_H

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SMLoc.h"

namespace attnc::spec {

class SpecDiagnostics;

/// Longest identifier the lexer accepts.
inline constexpr size_t kMaxIdentifierLength = 256;

enum class Tok {
  Eof,
  Error, // the lexer already reported it
  Newline,
  Ident,
  Int,
  Float,
  // Keywords.
  KwAttention,
  KwParam,
  KwConst,
  KwLet,
  KwReturn,
  KwTrue,
  KwFalse,
  // Punctuation.
  LParen,
  RParen,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Colon,
  Arrow,
  Assign,
  Question,
  // Operators.
  Plus,
  Minus,
  Star,
  Slash,
  Percent,
  Bang,
  AmpAmp,
  PipePipe,
  EqEq,
  NotEq,
  Less,
  LessEq,
  Greater,
  GreaterEq,
};

/// How a token kind is spelled in diagnostics ("')'", "end of line").
llvm::StringRef describeToken(Tok kind);

struct Token {
  Tok kind = Tok::Eof;
  llvm::StringRef text;

  llvm::SMLoc getLoc() const {
    return llvm::SMLoc::getFromPointer(text.data());
  }
  bool is(Tok k) const { return kind == k; }
};

class Lexer {
public:
  Lexer(llvm::StringRef buffer, SpecDiagnostics &diag);

  /// Reports NUL bytes, control characters and invalid UTF-8 anywhere in
  /// `buffer`; returns false if there was any.
  static bool checkEncoding(llvm::StringRef buffer, SpecDiagnostics &diag);

  Token lex();

private:
  Token make(Tok kind, const char *start) const;
  Token error(const char *at, const llvm::Twine &msg);
  Token lexIdentifier(const char *start);
  Token lexNumber(const char *start);
  void skipSpaceAndComments();

  llvm::StringRef buffer;
  const char *cur;
  SpecDiagnostics &diag;
  /// Open `(` and `[` not yet closed; newlines inside them are dropped.
  unsigned bracketDepth = 0;
};

} // namespace attnc::spec

#endif // ATTNC_FRONTENDS_SPEC_LEXER_H

//===- Lexer.cpp - Tokens of the attention spec language ------------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/Lexer.h"
#include "frontends/spec/SpecDiagnostics.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

using namespace attnc::spec;
using llvm::SMLoc;
using llvm::StringRef;

StringRef attnc::spec::describeToken(Tok kind) {
  switch (kind) {
  case Tok::Eof:
    return "end of file";
  case Tok::Error:
    return "invalid token";
  case Tok::Newline:
    return "end of line";
  case Tok::Ident:
    return "identifier";
  case Tok::Int:
    return "integer literal";
  case Tok::Float:
    return "float literal";
  case Tok::KwAttention:
    return "'attention'";
  case Tok::KwParam:
    return "'param'";
  case Tok::KwConst:
    return "'const'";
  case Tok::KwLet:
    return "'let'";
  case Tok::KwReturn:
    return "'return'";
  case Tok::KwTrue:
    return "'true'";
  case Tok::KwFalse:
    return "'false'";
  case Tok::LParen:
    return "'('";
  case Tok::RParen:
    return "')'";
  case Tok::LBracket:
    return "'['";
  case Tok::RBracket:
    return "']'";
  case Tok::LBrace:
    return "'{'";
  case Tok::RBrace:
    return "'}'";
  case Tok::Comma:
    return "','";
  case Tok::Colon:
    return "':'";
  case Tok::Arrow:
    return "'->'";
  case Tok::Assign:
    return "'='";
  case Tok::Question:
    return "'?'";
  case Tok::Plus:
    return "'+'";
  case Tok::Minus:
    return "'-'";
  case Tok::Star:
    return "'*'";
  case Tok::Slash:
    return "'/'";
  case Tok::Percent:
    return "'%'";
  case Tok::Bang:
    return "'!'";
  case Tok::AmpAmp:
    return "'&&'";
  case Tok::PipePipe:
    return "'||'";
  case Tok::EqEq:
    return "'=='";
  case Tok::NotEq:
    return "'!='";
  case Tok::Less:
    return "'<'";
  case Tok::LessEq:
    return "'<='";
  case Tok::Greater:
    return "'>'";
  case Tok::GreaterEq:
    return "'>='";
  }
  llvm_unreachable("every Tok enumerator is handled above");
}

Lexer::Lexer(StringRef buffer, SpecDiagnostics &diag)
    : buffer(buffer), cur(buffer.begin()), diag(diag) {}

bool Lexer::checkEncoding(StringRef buffer, SpecDiagnostics &diag) {
  bool ok = true;
  const auto *p = reinterpret_cast<const llvm::UTF8 *>(buffer.begin());
  const auto *end = reinterpret_cast<const llvm::UTF8 *>(buffer.end());
  while (p < end && !diag.stopped()) {
    SMLoc loc = SMLoc::getFromPointer(reinterpret_cast<const char *>(p));
    unsigned char c = *p;
    if (c < 0x80) {
      if (c == 0) {
        diag.error(loc, "NUL byte in the spec; it must be plain UTF-8 text");
        ok = false;
      } else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
                 c == 0x7f) {
        std::string hex;
        llvm::raw_string_ostream(hex) << llvm::format_hex(c, 4);
        diag.error(loc, "control character " + hex +
                            " in the spec; only tab, newline and carriage "
                            "return are allowed");
        ok = false;
      }
      ++p;
      continue;
    }
    unsigned n = llvm::getNumBytesForUTF8(c);
    if (n > static_cast<unsigned>(end - p) ||
        !llvm::isLegalUTF8Sequence(p, p + n)) {
      diag.error(loc, "invalid UTF-8 byte sequence in the spec");
      ok = false;
      ++p;
      continue;
    }
    p += n;
  }
  return ok;
}

Token Lexer::make(Tok kind, const char *start) const {
  return Token{kind, StringRef(start, cur - start)};
}

Token Lexer::error(const char *at, const llvm::Twine &msg) {
  diag.error(SMLoc::getFromPointer(at), msg);
  return Token{Tok::Error, StringRef(at, cur > at ? cur - at : 0)};
}

void Lexer::skipSpaceAndComments() {
  while (cur != buffer.end()) {
    char c = *cur;
    if (c == ' ' || c == '\t' || c == '\r' || (c == '\n' && bracketDepth > 0)) {
      ++cur;
    } else if (c == '#') {
      while (cur != buffer.end() && *cur != '\n')
        ++cur;
    } else {
      return;
    }
  }
}

static bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool isDigit(char c) { return c >= '0' && c <= '9'; }
static bool isIdentChar(char c) { return isIdentStart(c) || isDigit(c); }

Token Lexer::lexIdentifier(const char *start) {
  while (cur != buffer.end() && isIdentChar(*cur))
    ++cur;
  size_t len = cur - start;
  if (len > kMaxIdentifierLength)
    return error(start, "identifier is " + llvm::Twine(len) +
                            " characters long; the limit is " +
                            llvm::Twine(kMaxIdentifierLength));
  StringRef text(start, len);
  Tok kind = llvm::StringSwitch<Tok>(text)
                 .Case("attention", Tok::KwAttention)
                 .Case("param", Tok::KwParam)
                 .Case("const", Tok::KwConst)
                 .Case("let", Tok::KwLet)
                 .Case("return", Tok::KwReturn)
                 .Case("true", Tok::KwTrue)
                 .Case("false", Tok::KwFalse)
                 .Default(Tok::Ident);
  return make(kind, start);
}

Token Lexer::lexNumber(const char *start) {
  auto digits = [&] {
    while (cur != buffer.end() && isDigit(*cur))
      ++cur;
  };
  digits();
  bool isFloat = false;
  if (cur != buffer.end() && *cur == '.') {
    isFloat = true;
    ++cur;
    if (cur == buffer.end() || !isDigit(*cur))
      return error(cur, "expected a digit after '.' in a float literal");
    digits();
  }
  if (cur != buffer.end() && (*cur == 'e' || *cur == 'E')) {
    isFloat = true;
    ++cur;
    if (cur != buffer.end() && (*cur == '+' || *cur == '-'))
      ++cur;
    if (cur == buffer.end() || !isDigit(*cur))
      return error(cur, "expected a digit in the exponent of a float literal");
    digits();
  }
  if (cur != buffer.end() && (isIdentChar(*cur) || *cur == '.')) {
    const char *bad = cur;
    while (cur != buffer.end() && (isIdentChar(*cur) || *cur == '.'))
      ++cur;
    return error(bad, "invalid suffix '" + StringRef(bad, cur - bad) +
                          "' on a numeric literal");
  }
  return make(isFloat ? Tok::Float : Tok::Int, start);
}

Token Lexer::lex() {
  skipSpaceAndComments();
  const char *start = cur;
  if (cur == buffer.end())
    return make(Tok::Eof, start);

  char c = *cur++;
  auto next = [&](char want) {
    if (cur != buffer.end() && *cur == want) {
      ++cur;
      return true;
    }
    return false;
  };

  if (isIdentStart(c))
    return lexIdentifier(start);
  if (isDigit(c))
    return lexNumber(start);

  switch (c) {
  case '\n':
    return make(Tok::Newline, start);
  case '(':
    ++bracketDepth;
    return make(Tok::LParen, start);
  case '[':
    ++bracketDepth;
    return make(Tok::LBracket, start);
  case ')':
    if (bracketDepth)
      --bracketDepth;
    return make(Tok::RParen, start);
  case ']':
    if (bracketDepth)
      --bracketDepth;
    return make(Tok::RBracket, start);
  case '{':
    // Braces never sit inside brackets; an unclosed '(' must not swallow
    // the newlines of the block that follows.
    bracketDepth = 0;
    return make(Tok::LBrace, start);
  case '}':
    bracketDepth = 0;
    return make(Tok::RBrace, start);
  case ',':
    return make(Tok::Comma, start);
  case ':':
    return make(Tok::Colon, start);
  case '?':
    return make(Tok::Question, start);
  case '+':
    return make(Tok::Plus, start);
  case '-':
    return make(next('>') ? Tok::Arrow : Tok::Minus, start);
  case '*':
    return make(Tok::Star, start);
  case '/':
    return make(Tok::Slash, start);
  case '%':
    return make(Tok::Percent, start);
  case '!':
    return make(next('=') ? Tok::NotEq : Tok::Bang, start);
  case '=':
    return make(next('=') ? Tok::EqEq : Tok::Assign, start);
  case '<':
    return make(next('=') ? Tok::LessEq : Tok::Less, start);
  case '>':
    return make(next('=') ? Tok::GreaterEq : Tok::Greater, start);
  case '&':
    if (next('&'))
      return make(Tok::AmpAmp, start);
    return error(start, "unexpected character '&'; did you mean '&&'?");
  case '|':
    if (next('|'))
      return make(Tok::PipePipe, start);
    return error(start, "unexpected character '|'; did you mean '||'?");
  default:
    break;
  }

  // Skip the rest of a multi-byte character so the error names it whole.
  unsigned len = 1;
  if (static_cast<unsigned char>(c) >= 0x80) {
    len = llvm::getNumBytesForUTF8(static_cast<unsigned char>(c));
    if (len > static_cast<size_t>(buffer.end() - start))
      len = 1;
    cur = start + len;
  }
  if (static_cast<unsigned char>(c) >= 0x20 &&
      static_cast<unsigned char>(c) != 0x7f)
    return error(start, "unexpected character '" + StringRef(start, len) + "'");
  std::string hex;
  llvm::raw_string_ostream(hex)
      << llvm::format_hex(static_cast<unsigned char>(c), 4);
  return error(start, "unexpected byte " + hex);
}

//===- Parser.cpp - Parser of the attention spec language -----------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/Parser.h"
#include "frontends/spec/SpecDiagnostics.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace attnc::spec;
using llvm::SMLoc;
using llvm::StringRef;

Parser::Parser(StringRef buffer, SpecDiagnostics &diag)
    : lexer(buffer, diag), diag(diag) {
  consume();
}

//===----------------------------------------------------------------------===//
// Tokens
//===----------------------------------------------------------------------===//

void Parser::consume() { tok = lexer.lex(); }

bool Parser::consumeIf(Tok kind) {
  if (!tok.is(kind))
    return false;
  consume();
  return true;
}

void Parser::skipNewlines() {
  while (tok.is(Tok::Newline))
    consume();
}

void Parser::errorExpected(StringRef what) {
  if (tok.is(Tok::Error))
    return;
  std::string got;
  if (tok.is(Tok::Ident) || tok.is(Tok::Int) || tok.is(Tok::Float))
    got = (describeToken(tok.kind) + " '" + tok.text + "'").str();
  else
    got = describeToken(tok.kind).str();
  diag.error(tok.getLoc(), "expected " + what + ", got " + got);
}

LogicalResult Parser::expect(Tok kind, StringRef what) {
  if (consumeIf(kind))
    return success();
  errorExpected(what);
  return failure();
}

LogicalResult Parser::expectClosing(Tok kind, SMLoc openLoc) {
  if (consumeIf(kind))
    return success();
  if (tok.is(Tok::Error))
    return failure();
  StringRef open = kind == Tok::RParen     ? "'('"
                   : kind == Tok::RBracket ? "'['"
                                           : "'{'";
  std::string got = tok.is(Tok::Ident) ? ("identifier '" + tok.text + "'").str()
                                       : describeToken(tok.kind).str();
  diag.error(tok.getLoc(), "expected " + describeToken(kind) + ", got " + got,
             openLoc, "to match this " + open);
  return failure();
}

LogicalResult Parser::expectIdent(Ident &out, StringRef what) {
  if (!tok.is(Tok::Ident)) {
    errorExpected(what);
    return failure();
  }
  out = {tok.text, tok.getLoc()};
  consume();
  return success();
}

LogicalResult Parser::expectEndOfStatement() {
  if (tok.is(Tok::Newline) || tok.is(Tok::RBrace) || tok.is(Tok::Eof))
    return success();
  errorExpected("end of line after the statement");
  return failure();
}

void Parser::skipStatement() {
  unsigned depth = 0;
  while (!tok.is(Tok::Eof)) {
    if (tok.is(Tok::Newline) && depth == 0)
      return;
    if (tok.is(Tok::RBrace)) {
      if (depth == 0)
        return;
      --depth;
    } else if (tok.is(Tok::LBrace)) {
      ++depth;
    }
    consume();
  }
}

LogicalResult Parser::parseIntToken(int64_t &out, bool negated) {
  uint64_t value;
  uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) +
                   (negated ? 1 : 0);
  if (tok.text.getAsInteger(10, value) || value > limit) {
    diag.error(tok.getLoc(), "integer literal " + tok.text +
                                 " does not fit in a signed 64-bit integer");
    return failure();
  }
  out = negated ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
  consume();
  return success();
}

/// Binding strength of a binary operator; 0 for other tokens.
static unsigned precedence(Tok kind) {
  switch (kind) {
  case Tok::PipePipe:
    return 1;
  case Tok::AmpAmp:
    return 2;
  case Tok::EqEq:
  case Tok::NotEq:
  case Tok::Less:
  case Tok::LessEq:
  case Tok::Greater:
  case Tok::GreaterEq:
    return 3;
  case Tok::Plus:
  case Tok::Minus:
    return 4;
  case Tok::Star:
  case Tok::Slash:
  case Tok::Percent:
    return 5;
  default:
    return 0;
  }
}

/// Reports a statement that starts with an operator: the user meant to
/// continue the expression of the previous line.
static bool startsWithOperator(const Token &tok, SpecDiagnostics &diag) {
  if (precedence(tok.kind) == 0 && !tok.is(Tok::Question))
    return false;
  diag.error(tok.getLoc(),
             "a statement cannot start with " + describeToken(tok.kind) +
                 "; to continue an expression on the next line, end the "
                 "line with the operator or wrap the expression in "
                 "parentheses");
  return true;
}

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

LogicalResult Parser::parseFile(SpecFile &file) {
  skipNewlines();
  if (tok.is(Tok::Eof)) {
    diag.error(tok.getLoc(), "the spec file is empty; expected "
                             "'attention NAME(q: ..., k: ..., v: ...) -> "
                             "(o: ...) { ... }'");
    return failure();
  }
  while (!tok.is(Tok::Eof) && !diag.stopped()) {
    if (!tok.is(Tok::KwAttention)) {
      errorExpected("'attention'");
      return failure();
    }
    file.specs.emplace_back();
    bodyClosed = false;
    // After errors inside a body that was closed properly, the next spec
    // can still be parsed; anything else leaves the parser lost.
    if (failed(parseSpec(file.specs.back())) && !bodyClosed)
      return failure();
    skipNewlines();
  }
  return failure(diag.hadError());
}

LogicalResult Parser::parseSpec(SpecDecl &spec) {
  consume(); // 'attention'
  SMLoc inputsLoc;
  if (failed(expectIdent(spec.name, "the name of the attention spec")) ||
      failed(parseTensorList(spec.inputs, inputsLoc)))
    return failure();
  skipNewlines();
  if (failed(expect(Tok::Arrow, "'->' before the outputs")))
    return failure();
  skipNewlines();
  if (failed(parseTensorList(spec.outputs, spec.outputsLoc)))
    return failure();
  skipNewlines();
  if (!tok.is(Tok::LBrace)) {
    errorExpected("'{' to open the body of the spec");
    return failure();
  }
  return parseBody(spec);
}

LogicalResult Parser::parseTensorList(std::vector<TensorDecl> &out,
                                      SMLoc &openLoc) {
  openLoc = tok.getLoc();
  if (failed(expect(Tok::LParen, "'('")))
    return failure();
  do {
    out.emplace_back();
    if (failed(parseTensor(out.back())))
      return failure();
  } while (consumeIf(Tok::Comma));
  return expectClosing(Tok::RParen, openLoc);
}

LogicalResult Parser::parseTensor(TensorDecl &out) {
  if (failed(expectIdent(out.name, "a tensor name")) ||
      failed(expect(Tok::Colon, "':' after the tensor name")) ||
      failed(expectIdent(out.dtype, "an element type (f32, bf16, f16, i32 "
                                    "or i64)")))
    return failure();
  SMLoc openLoc = tok.getLoc();
  if (failed(expect(Tok::LBracket, "'[' to open the dimensions")))
    return failure();
  do {
    DimDecl dim;
    dim.loc = tok.getLoc();
    if (tok.is(Tok::Ident)) {
      dim.symbol = tok.text;
      consume();
    } else if (tok.is(Tok::Int)) {
      if (failed(parseIntToken(dim.size, /*negated=*/false)))
        return failure();
    } else {
      errorExpected("a dimension (an integer or a name)");
      return failure();
    }
    out.dims.push_back(dim);
  } while (consumeIf(Tok::Comma));
  return expectClosing(Tok::RBracket, openLoc);
}

LogicalResult Parser::parseBody(SpecDecl &spec) {
  SMLoc openLoc = tok.getLoc();
  consume(); // '{'
  bool ok = true;
  while (true) {
    skipNewlines();
    if (diag.stopped())
      return failure();
    if (tok.is(Tok::RBrace))
      break;
    if (tok.is(Tok::Eof)) {
      diag.error(tok.getLoc(),
                 "unexpected end of file; expected '}' to close the body of "
                 "spec '" +
                     spec.name.name + "'",
                 openLoc, "the body opens here");
      return failure();
    }
    if (failed(parseBodyItem(spec)) || failed(expectEndOfStatement())) {
      ok = false;
      skipStatement();
    }
  }
  spec.endLoc = tok.getLoc();
  consume(); // '}'
  if (!tok.is(Tok::Newline) && !tok.is(Tok::Eof)) {
    errorExpected("end of line after the '}' of the spec");
    return failure();
  }
  bodyClosed = true;
  return success(ok);
}

LogicalResult Parser::parseBodyItem(SpecDecl &spec) {
  if (tok.is(Tok::KwParam)) {
    spec.params.emplace_back();
    return parseParam(spec.params.back());
  }
  if (tok.is(Tok::KwConst)) {
    consume();
    ConstDecl decl;
    if (failed(expectIdent(decl.name, "the name of the const")) ||
        failed(expect(Tok::Assign, "'=' after the const name")))
      return failure();
    skipNewlines();
    decl.value = parseExpr(0);
    if (!decl.value)
      return failure();
    spec.consts.push_back(std::move(decl));
    return success();
  }
  if (!tok.is(Tok::Ident)) {
    if (!startsWithOperator(tok, diag))
      errorExpected("a param, const, setting or region definition");
    return failure();
  }
  Ident name{tok.text, tok.getLoc()};
  consume();
  if (tok.is(Tok::LParen)) {
    spec.regions.emplace_back();
    return parseRegion(name, spec.regions.back());
  }
  if (consumeIf(Tok::Assign)) {
    skipNewlines();
    SettingDecl decl{name, parseExpr(0)};
    if (!decl.value)
      return failure();
    spec.settings.push_back(std::move(decl));
    return success();
  }
  errorExpected(
      ("'=' (a setting) or '(' (a region) after '" + name.name + "'").str());
  return failure();
}

LogicalResult Parser::parseParam(ParamDecl &out) {
  consume(); // 'param'
  if (failed(expectIdent(out.name, "the name of the param")) ||
      failed(expect(Tok::Colon, "':' after the param name")) ||
      failed(expectIdent(out.type, "the type of the param (i32, i64 or f32)")))
    return failure();
  if (!consumeIf(Tok::Assign))
    return success();
  out.hasDefault = true;
  out.defaultLoc = tok.getLoc();
  bool negated = consumeIf(Tok::Minus);
  if (tok.is(Tok::Int))
    return parseIntToken(out.intDefault, negated);
  if (tok.is(Tok::Float)) {
    double value;
    if (tok.text.getAsDouble(value) || !std::isfinite(value)) {
      diag.error(tok.getLoc(),
                 "float literal " + tok.text + " is out of range");
      return failure();
    }
    out.defaultIsFloat = true;
    out.floatDefault = negated ? -value : value;
    consume();
    return success();
  }
  errorExpected("a literal number as the default value");
  return failure();
}

LogicalResult Parser::parseRegion(Ident kind, RegionDecl &out) {
  out.kind = kind;
  SMLoc openLoc = tok.getLoc();
  consume(); // '('
  do {
    out.params.emplace_back();
    if (failed(expectIdent(out.params.back(), "a region parameter name")))
      return failure();
  } while (consumeIf(Tok::Comma));
  if (failed(expectClosing(Tok::RParen, openLoc)))
    return failure();
  if (tok.is(Tok::LBrace))
    return parseRegionBlock(out);
  if (failed(expect(Tok::Assign, "'=' or '{' after the region parameters")))
    return failure();
  skipNewlines();
  out.result = parseExpr(0);
  return success(out.result != nullptr);
}

LogicalResult Parser::parseRegionBlock(RegionDecl &out) {
  SMLoc openLoc = tok.getLoc();
  consume(); // '{'
  bool ok = true;
  while (true) {
    skipNewlines();
    if (diag.stopped())
      return failure();
    if (tok.is(Tok::Eof)) {
      diag.error(tok.getLoc(),
                 "unexpected end of file; expected '}' to close the " +
                     out.kind.name + " block",
                 openLoc, "the block opens here");
      return failure();
    }
    if (tok.is(Tok::RBrace)) {
      diag.error(tok.getLoc(),
                 "expected 'return <expression>' before the end of the " +
                     out.kind.name + " block");
      consume();
      return failure();
    }
    if (tok.is(Tok::KwReturn)) {
      consume();
      out.result = parseExpr(0);
      if (!out.result)
        return failure();
      skipNewlines();
      if (!tok.is(Tok::RBrace)) {
        errorExpected("'}' after the return statement");
        return failure();
      }
      consume();
      return success(ok);
    }
    if (!tok.is(Tok::KwLet)) {
      if (!startsWithOperator(tok, diag))
        errorExpected("'let' or 'return'");
      ok = false;
      skipStatement();
      continue;
    }
    consume();
    LetDecl let;
    if (succeeded(expectIdent(let.name, "the name of the let")) &&
        succeeded(expect(Tok::Assign, "'=' after the let name"))) {
      skipNewlines();
      let.value = parseExpr(0);
    }
    if (!let.value || failed(expectEndOfStatement())) {
      ok = false;
      skipStatement();
      continue;
    }
    out.lets.push_back(std::move(let));
  }
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

ExprPtr Parser::tooDeep(SMLoc loc) {
  diag.error(loc, "expression is nested too deeply; the limit is " +
                      llvm::Twine(kMaxExprDepth) + " levels");
  return nullptr;
}

ExprPtr Parser::makeNode(Expr::Kind kind, SMLoc loc,
                         std::vector<ExprPtr> operands) {
  auto node = std::make_unique<Expr>(kind, loc);
  for (const ExprPtr &operand : operands)
    node->height = std::max(node->height, operand->height + 1);
  node->operands = std::move(operands);
  if (node->height > kMaxExprDepth)
    return tooDeep(loc);
  return node;
}

ExprPtr Parser::parseExpr(unsigned depth) {
  // Check before recursing: the parser's own stack is what the limit guards.
  if (depth > kMaxExprDepth)
    return tooDeep(tok.getLoc());
  return parseTernary(depth);
}

ExprPtr Parser::parseTernary(unsigned depth) {
  ExprPtr cond = parseBinary(1, depth);
  if (!cond || !tok.is(Tok::Question))
    return cond;
  SMLoc loc = tok.getLoc();
  consume();
  skipNewlines();
  ExprPtr lhs = parseExpr(depth + 1);
  if (!lhs)
    return nullptr;
  skipNewlines();
  if (failed(expect(Tok::Colon, "':' in the conditional expression")))
    return nullptr;
  skipNewlines();
  ExprPtr rhs = parseExpr(depth + 1);
  if (!rhs)
    return nullptr;
  std::vector<ExprPtr> ops;
  ops.push_back(std::move(cond));
  ops.push_back(std::move(lhs));
  ops.push_back(std::move(rhs));
  return makeNode(Expr::Kind::Ternary, loc, std::move(ops));
}

ExprPtr Parser::parseBinary(unsigned minPrec, unsigned depth) {
  ExprPtr lhs = parseUnary(depth);
  while (lhs) {
    unsigned prec = precedence(tok.kind);
    if (prec == 0 || prec < minPrec)
      break;
    Token opTok = tok;
    consume();
    skipNewlines();
    ExprPtr rhs = parseBinary(prec + 1, depth);
    if (!rhs)
      return nullptr;
    if (prec == 3 && ((lhs->kind == Expr::Kind::Binary &&
                       precedence(lhs->op) == 3 && !lhs->parenthesized) ||
                      precedence(tok.kind) == 3)) {
      diag.error(opTok.getLoc(), "comparisons cannot be chained; combine "
                                 "them with '&&' or add parentheses");
      return nullptr;
    }
    std::vector<ExprPtr> ops;
    ops.push_back(std::move(lhs));
    ops.push_back(std::move(rhs));
    lhs = makeNode(Expr::Kind::Binary, opTok.getLoc(), std::move(ops));
    if (lhs)
      lhs->op = opTok.kind;
  }
  return lhs;
}

ExprPtr Parser::parseUnary(unsigned depth) {
  if (!tok.is(Tok::Minus) && !tok.is(Tok::Bang))
    return parsePrimary(depth);
  Token opTok = tok;
  if (depth + 1 > kMaxExprDepth)
    return tooDeep(opTok.getLoc());
  consume();
  ExprPtr operand = parseUnary(depth + 1);
  if (!operand)
    return nullptr;
  std::vector<ExprPtr> ops;
  ops.push_back(std::move(operand));
  ExprPtr node = makeNode(Expr::Kind::Unary, opTok.getLoc(), std::move(ops));
  if (node)
    node->op = opTok.kind;
  return node;
}

LogicalResult Parser::parseExprList(Tok closer, SMLoc openLoc, unsigned depth,
                                    std::vector<ExprPtr> &out) {
  if (consumeIf(closer))
    return success();
  do {
    ExprPtr e = parseExpr(depth + 1);
    if (!e)
      return failure();
    out.push_back(std::move(e));
  } while (consumeIf(Tok::Comma));
  return expectClosing(closer, openLoc);
}

ExprPtr Parser::parsePrimary(unsigned depth) {
  SMLoc loc = tok.getLoc();
  switch (tok.kind) {
  case Tok::Int: {
    auto e = std::make_unique<Expr>(Expr::Kind::Int, loc);
    if (failed(parseIntToken(e->intValue, /*negated=*/false)))
      return nullptr;
    return e;
  }
  case Tok::Float: {
    auto e = std::make_unique<Expr>(Expr::Kind::Float, loc);
    if (tok.text.getAsDouble(e->floatValue) || !std::isfinite(e->floatValue)) {
      diag.error(loc, "float literal " + tok.text + " is out of range");
      return nullptr;
    }
    consume();
    return e;
  }
  case Tok::KwTrue:
  case Tok::KwFalse: {
    auto e = std::make_unique<Expr>(Expr::Kind::Bool, loc);
    e->boolValue = tok.is(Tok::KwTrue);
    consume();
    return e;
  }
  case Tok::Ident: {
    StringRef name = tok.text;
    consume();
    if (!tok.is(Tok::LParen) && !tok.is(Tok::LBracket)) {
      auto e = std::make_unique<Expr>(Expr::Kind::Name, loc);
      e->name = name;
      return e;
    }
    bool isCall = tok.is(Tok::LParen);
    SMLoc openLoc = tok.getLoc();
    consume();
    std::vector<ExprPtr> args;
    if (failed(parseExprList(isCall ? Tok::RParen : Tok::RBracket, openLoc,
                             depth, args)))
      return nullptr;
    ExprPtr e = makeNode(isCall ? Expr::Kind::Call : Expr::Kind::Index, loc,
                         std::move(args));
    if (e)
      e->name = name;
    return e;
  }
  case Tok::LParen: {
    consume();
    ExprPtr inner = parseExpr(depth + 1);
    if (!inner || failed(expectClosing(Tok::RParen, loc)))
      return nullptr;
    inner->parenthesized = true;
    return inner;
  }
  default:
    errorExpected("an expression");
    return nullptr;
  }
}

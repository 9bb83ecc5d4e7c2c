//===- EmitExpr.cpp - Lower spec expressions to arith/math/attn -----------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Region expressions become ops at the builder's insertion point: ints on
// `index`, floats on f32, bools on i1. Type errors, unknown names and
// constant zero divisors are reported here, at the offending token.
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/SpecEmitter.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>

using namespace mlir;
using namespace attnc;
using namespace attnc::spec;
using llvm::SMLoc;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

Value SpecEmitter::promote(Typed v, ScalarKind kind, Location l) {
  if (v.kind != ScalarKind::Int || kind != ScalarKind::Float)
    return v.value;
  // A constant int becomes a float constant rather than a cast chain; the
  // index constant goes away unless a let names it or it has other uses.
  if (auto c = v.value.getDefiningOp<arith::ConstantIndexOp>()) {
    auto f = static_cast<float>(c.value());
    Value result = arith::ConstantOp::create(b, l, b.getF32FloatAttr(f));
    if (c->use_empty() && !namedValues.contains(v.value))
      c->erase();
    return result;
  }
  Value i64 = arith::IndexCastOp::create(b, l, b.getI64Type(), v.value);
  return arith::SIToFPOp::create(b, l, b.getF32Type(), i64);
}

FailureOr<Typed> SpecEmitter::emitConst(ConstValue v, SMLoc at) {
  Location l = loc(at);
  switch (v.kind) {
  case ScalarKind::Int:
    return Typed{arith::ConstantIndexOp::create(b, l, v.i), ScalarKind::Int};
  case ScalarKind::Bool:
    return Typed{arith::ConstantOp::create(b, l, b.getBoolAttr(v.b)),
                 ScalarKind::Bool};
  case ScalarKind::Float: {
    float f = static_cast<float>(v.f);
    if (std::isinf(f)) {
      error(at, "the value " + formatDouble(v.f) + " does not fit in f32");
      return failure();
    }
    return Typed{arith::ConstantOp::create(b, l, b.getF32FloatAttr(f)),
                 ScalarKind::Float};
  }
  }
  llvm_unreachable("ScalarKind has three enumerators");
}

std::optional<ConstValue> SpecEmitter::tryConstant(const Expr &e) {
  // Region-local names shadow nothing (redefinitions are errors), so a name
  // that is a local is never a const.
  if (e.kind == Expr::Kind::Name && locals.count(e.name))
    return std::nullopt;
  ConstEvaluator eval(diag, spec.consts,
                      [](StringRef) { return std::string(); });
  FailureOr<ConstValue> v = eval.evaluate(e, /*diagnose=*/false);
  if (failed(v))
    return std::nullopt;
  return *v;
}

bool SpecEmitter::onlyConstLeaves(const Expr &e) {
  auto it = constLeaves.find(&e);
  if (it != constLeaves.end())
    return it->second;
  bool result;
  switch (e.kind) {
  case Expr::Kind::Int:
  case Expr::Kind::Float:
  case Expr::Kind::Bool:
    result = true;
    break;
  case Expr::Kind::Name:
    result = !locals.count(e.name) && spec.consts.count(e.name);
    break;
  case Expr::Kind::Index:
    result = false;
    break;
  default:
    result = llvm::all_of(e.operands, [&](const ExprPtr &operand) {
      return onlyConstLeaves(*operand);
    });
    break;
  }
  constLeaves[&e] = result;
  return result;
}

bool SpecEmitter::isConstantZero(const Expr &e) {
  std::optional<ConstValue> v = tryConstant(e);
  return v && v->isZero();
}

bool SpecEmitter::isConstantPositive(const Expr &e) {
  std::optional<ConstValue> v = tryConstant(e);
  return v && v->kind == ScalarKind::Int && v->i > 0;
}

FailureOr<Typed> SpecEmitter::emit(const Expr &e) {
  // Fold constant subtrees (`2 * r`, `-maxDist`) to one arith.constant. When
  // folding fails (division by zero, overflow), the ops are emitted instead
  // and report the error with its proper message.
  if ((e.kind == Expr::Kind::Unary || e.kind == Expr::Kind::Binary ||
       e.kind == Expr::Kind::Ternary || e.kind == Expr::Kind::Call) &&
      onlyConstLeaves(e))
    if (std::optional<ConstValue> v = tryConstant(e))
      return emitConst(*v, e.loc);
  switch (e.kind) {
  case Expr::Kind::Int:
    return emitConst(ConstValue::ofInt(e.intValue), e.loc);
  case Expr::Kind::Float:
    return emitConst(ConstValue::ofFloat(e.floatValue), e.loc);
  case Expr::Kind::Bool:
    return emitConst(ConstValue::ofBool(e.boolValue), e.loc);
  case Expr::Kind::Name:
    return emitName(e);
  case Expr::Kind::Index:
    return emitRead(e);
  case Expr::Kind::Unary:
    return emitUnary(e);
  case Expr::Kind::Binary:
    return emitBinary(e);
  case Expr::Kind::Ternary:
  case Expr::Kind::Call:
    return emitCall(e);
  }
  llvm_unreachable("every Expr kind is handled above");
}

void SpecEmitter::reportUnknownName(const Expr &e) {
  StringRef n = e.name;
  if (n == "q" || n == "k" || n == "v" || n == "o" || n == "lse") {
    error(e.loc, "'" + n +
                     "' cannot be used in expressions; the score region "
                     "receives s = scale * dot(q, k) and the gate region "
                     "receives the output element x");
    return;
  }
  if (spec.dimSymbols.count(n)) {
    error(e.loc, "unknown name '" + n + "'", spec.dimSymbols.lookup(n),
          "'" + n +
              "' is a dimension; dimensions are not values in "
              "expressions");
    return;
  }
  SmallVector<StringRef> names;
  for (const auto &l : locals)
    names.push_back(l.getKey());
  for (const auto &g : globals)
    names.push_back(g.getKey());
  llvm::sort(names); // deterministic choice among equally close names
  if (std::optional<StringRef> guess = closestName(n, names)) {
    auto l = locals.find(*guess);
    SMLoc at = l != locals.end() ? l->second.defLoc
                                 : globals.find(*guess)->second.defLoc;
    error(e.loc, "unknown name '" + n + "'", at,
          "did you mean '" + *guess + "'?");
    return;
  }
  error(e.loc, "unknown name '" + n + "'");
}

/// "1 index", "4 indices".
static std::string plural(size_t n) {
  return std::to_string(n) + (n == 1 ? " index" : " indices");
}

FailureOr<Typed> SpecEmitter::emitName(const Expr &e) {
  auto l = locals.find(e.name);
  if (l != locals.end())
    return l->second.typed;
  auto g = globals.find(e.name);
  if (g == globals.end()) {
    if (poisoned.contains(e.name)) {
      ok = false;
      return failure(); // the let's own error was reported
    }
    reportUnknownName(e);
    return failure();
  }
  const Global &sym = g->second;
  switch (sym.kind) {
  case Global::Kind::Const:
    return emitConst(sym.constValue, e.loc);
  case Global::Kind::Tensor:
    error(e.loc, "'" + e.name + "' is a tensor; read one element with " +
                     e.name + "[...] (" + plural(sym.tensor->shape.size()) +
                     ")");
    return failure();
  case Global::Kind::Param: {
    usedArgs.insert(sym.argIndex);
    Value arg = entry->getArgument(sym.argIndex);
    if (sym.param->kind == ScalarKind::Float)
      return Typed{arg, ScalarKind::Float};
    Value &cast = paramCasts[e.name];
    if (!cast)
      cast = arith::IndexCastOp::create(b, loc(e.loc), b.getIndexType(), arg);
    return Typed{cast, ScalarKind::Int};
  }
  }
  llvm_unreachable("Global has three kinds");
}

FailureOr<Typed> SpecEmitter::emitRead(const Expr &e) {
  auto g = globals.find(e.name);
  if (g == globals.end() || g->second.kind != Global::Kind::Tensor) {
    if (locals.count(e.name) || g != globals.end())
      error(e.loc, "'" + e.name + "' is not a tensor and cannot be indexed");
    else if (poisoned.contains(e.name))
      ok = false;
    else
      reportUnknownName(e);
    return failure();
  }
  const ResolvedTensor &t = *g->second.tensor;
  size_t rank = t.shape.size();
  if (e.operands.size() != rank) {
    error(e.loc, "tensor '" + e.name + "' has rank " + llvm::Twine(rank) +
                     " and needs " + plural(rank) + ", got " +
                     llvm::Twine(e.operands.size()));
    return failure();
  }
  SmallVector<Value> indices;
  for (const ExprPtr &idx : e.operands) {
    FailureOr<Typed> v = emit(*idx);
    if (failed(v))
      return failure();
    if (v->kind != ScalarKind::Int) {
      error(idx->loc, "a tensor index must be an int, got " +
                          kindName(v->kind) + "; use int(x) to convert");
      return failure();
    }
    indices.push_back(v->value);
  }
  usedArgs.insert(g->second.argIndex);
  Location l = loc(e.loc);
  Value tensor = entry->getArgument(g->second.argIndex);
  Value elt = attn::ReadOp::create(b, l, t.elementType, tensor, indices);
  if (isa<IntegerType>(t.elementType))
    return Typed{arith::IndexCastOp::create(b, l, b.getIndexType(), elt),
                 ScalarKind::Int};
  if (!t.elementType.isF32())
    elt = arith::ExtFOp::create(b, l, b.getF32Type(), elt);
  return Typed{elt, ScalarKind::Float};
}

FailureOr<Typed> SpecEmitter::emitUnary(const Expr &e) {
  FailureOr<Typed> x = emit(*e.operands[0]);
  if (failed(x))
    return failure();
  if (failed(typeUnary(e.op, x->kind, e.loc, &diag))) {
    ok = false;
    return failure();
  }
  Location l = loc(e.loc);
  if (e.op == Tok::Bang) {
    Value one = arith::ConstantOp::create(b, l, b.getBoolAttr(true));
    return Typed{arith::XOrIOp::create(b, l, x->value, one), ScalarKind::Bool};
  }
  if (x->kind == ScalarKind::Float)
    return Typed{arith::NegFOp::create(b, l, x->value), ScalarKind::Float};
  Value zero = arith::ConstantIndexOp::create(b, l, 0);
  return Typed{arith::SubIOp::create(b, l, zero, x->value), ScalarKind::Int};
}

/// The arith predicates of a comparison token.
static arith::CmpIPredicate intPredicate(Tok op) {
  switch (op) {
  case Tok::Less:
    return arith::CmpIPredicate::slt;
  case Tok::LessEq:
    return arith::CmpIPredicate::sle;
  case Tok::Greater:
    return arith::CmpIPredicate::sgt;
  case Tok::GreaterEq:
    return arith::CmpIPredicate::sge;
  case Tok::EqEq:
    return arith::CmpIPredicate::eq;
  default:
    return arith::CmpIPredicate::ne;
  }
}

static arith::CmpFPredicate floatPredicate(Tok op) {
  switch (op) {
  case Tok::Less:
    return arith::CmpFPredicate::OLT;
  case Tok::LessEq:
    return arith::CmpFPredicate::OLE;
  case Tok::Greater:
    return arith::CmpFPredicate::OGT;
  case Tok::GreaterEq:
    return arith::CmpFPredicate::OGE;
  case Tok::EqEq:
    return arith::CmpFPredicate::OEQ;
  default:
    return arith::CmpFPredicate::UNE; // NaN != x holds
  }
}

FailureOr<Typed> SpecEmitter::emitBinary(const Expr &e) {
  FailureOr<Typed> lhs = emit(*e.operands[0]);
  if (failed(lhs))
    return failure();
  FailureOr<Typed> rhs = emit(*e.operands[1]);
  if (failed(rhs))
    return failure();
  FailureOr<Typing> t = typeBinary(e.op, lhs->kind, rhs->kind, e.loc, &diag);
  if (failed(t)) {
    ok = false;
    return failure();
  }
  if ((e.op == Tok::Slash || e.op == Tok::Percent) &&
      isConstantZero(*e.operands[1])) {
    error(e.loc, "division by zero");
    return failure();
  }
  Location l = loc(e.loc);
  Value a = promote(*lhs, t->operand, l), c = promote(*rhs, t->operand, l);
  bool isFloat = t->operand == ScalarKind::Float;
  auto result = [&](Value v) { return Typed{v, t->result}; };
  switch (e.op) {
  case Tok::Plus:
    return result(isFloat ? arith::AddFOp::create(b, l, a, c).getResult()
                          : arith::AddIOp::create(b, l, a, c).getResult());
  case Tok::Minus:
    return result(isFloat ? arith::SubFOp::create(b, l, a, c).getResult()
                          : arith::SubIOp::create(b, l, a, c).getResult());
  case Tok::Star:
    return result(isFloat ? arith::MulFOp::create(b, l, a, c).getResult()
                          : arith::MulIOp::create(b, l, a, c).getResult());
  case Tok::Slash:
    return result(isFloat
                      ? arith::DivFOp::create(b, l, a, c).getResult()
                      : arith::FloorDivSIOp::create(b, l, a, c).getResult());
  case Tok::Percent: {
    // Floor modulo: the remainder takes the divisor's sign.
    Value rem = arith::RemSIOp::create(b, l, a, c);
    Value zero = arith::ConstantIndexOp::create(b, l, 0);
    if (isConstantPositive(*e.operands[1])) {
      // The common case (i % 32): only a negative remainder needs fixing.
      Value remNeg =
          arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, rem, zero);
      Value adjusted = arith::AddIOp::create(b, l, rem, c);
      return result(arith::SelectOp::create(b, l, remNeg, adjusted, rem));
    }
    Value nonZero =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, rem, zero);
    Value remNeg =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, rem, zero);
    Value divNeg =
        arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, c, zero);
    Value signsDiffer = arith::XOrIOp::create(b, l, remNeg, divNeg);
    Value fix = arith::AndIOp::create(b, l, nonZero, signsDiffer);
    Value adjusted = arith::AddIOp::create(b, l, rem, c);
    return result(arith::SelectOp::create(b, l, fix, adjusted, rem));
  }
  case Tok::AmpAmp:
    return result(arith::AndIOp::create(b, l, a, c));
  case Tok::PipePipe:
    return result(arith::OrIOp::create(b, l, a, c));
  default:
    if (isFloat)
      return result(arith::CmpFOp::create(b, l, floatPredicate(e.op), a, c));
    return result(arith::CmpIOp::create(b, l, intPredicate(e.op), a, c));
  }
}

FailureOr<Typed> SpecEmitter::emitListed(const Expr &e) {
  static constexpr const char *usage =
      "'listed' takes a list row, a count and a value: listed(list[p...], count, x)";
  if (e.operands.size() != 3) {
    error(e.loc, std::string(usage) + ", got " + llvm::Twine(e.operands.size()).str() +
                     " argument" + (e.operands.size() == 1 ? "" : "s"));
    return failure();
  }
  const Expr &row = *e.operands[0];
  auto g = row.kind == Expr::Kind::Index ? globals.find(row.name) : globals.end();
  if (g == globals.end() || g->second.kind != Global::Kind::Tensor) {
    error(row.loc, std::string(usage) + "; the first argument must index a tensor");
    return failure();
  }
  const ResolvedTensor &t = *g->second.tensor;
  size_t rank = t.shape.size();
  if (!isa<IntegerType>(t.elementType)) {
    error(row.loc, "the list '" + row.name + "' must hold integers");
    return failure();
  }
  if (row.operands.size() + 1 != rank) {
    error(row.loc, "the list '" + row.name + "' has rank " + llvm::Twine(rank) +
                       "; name one row of it with " + plural(rank - 1) + ", got " +
                       llvm::Twine(row.operands.size()));
    return failure();
  }
  auto intOperand = [&](const Expr &x, const char *what) -> FailureOr<Value> {
    FailureOr<Typed> v = emit(x);
    if (failed(v))
      return failure();
    if (v->kind != ScalarKind::Int) {
      error(x.loc, std::string(what) + " must be an int, got " + kindName(v->kind));
      return failure();
    }
    return v->value;
  };
  SmallVector<Value> prefix;
  for (const ExprPtr &idx : row.operands) {
    FailureOr<Value> v = intOperand(*idx, "a list index");
    if (failed(v))
      return failure();
    prefix.push_back(*v);
  }
  FailureOr<Value> count = intOperand(*e.operands[1], "the count of 'listed'");
  if (failed(count))
    return failure();
  FailureOr<Value> x = intOperand(*e.operands[2], "the value 'listed' looks for");
  if (failed(x))
    return failure();
  usedArgs.insert(g->second.argIndex);
  Value list = entry->getArgument(g->second.argIndex);
  return Typed{attn::ListedOp::create(b, loc(e.loc), b.getI1Type(), *x, list, prefix, *count),
               ScalarKind::Bool};
}

FailureOr<Typed> SpecEmitter::emitTopK(const Expr &e) {
  static constexpr const char *usage =
      "'topk' takes the number of key blocks and the two block sizes, and optionally "
      "'true' for causal candidates: topk(k, block_q, block_k[, causal])";
  if (regionKind != attn::VariantRegion::Mask) {
    error(e.loc, "'topk' selects key blocks and may only appear in the mask");
    return failure();
  }
  if (e.operands.size() != 3 && e.operands.size() != 4) {
    error(e.loc, std::string(usage) + ", got " + llvm::Twine(e.operands.size()).str() +
                     " argument" + (e.operands.size() == 1 ? "" : "s"));
    return failure();
  }
  int64_t values[3];
  static constexpr const char *what[3] = {"the number of blocks", "block_q", "block_k"};
  for (int n = 0; n < 3; ++n) {
    std::optional<ConstValue> v = tryConstant(*e.operands[n]);
    if (!v || v->kind != ScalarKind::Int || v->i <= 0 || v->i > (int64_t{1} << 30)) {
      error(e.operands[n]->loc, std::string(what[n]) + " of 'topk' must be a positive int "
                                "constant");
      return failure();
    }
    values[n] = v->i;
  }
  bool causal = false;
  if (e.operands.size() == 4) {
    std::optional<ConstValue> v = tryConstant(*e.operands[3]);
    if (!v || v->kind != ScalarKind::Bool) {
      error(e.operands[3]->loc, "the causal flag of 'topk' must be a bool constant");
      return failure();
    }
    causal = v->b;
  }
  Location l = loc(e.loc);
  auto op = attn::TopKOp::create(b, l, b.getI1Type(), regionBlock->getArgument(0),
                                 regionBlock->getArgument(1), regionBlock->getArgument(2),
                                 regionBlock->getArgument(3), values[0], values[1], values[2],
                                 causal);
  return Typed{op.getResult(), ScalarKind::Bool};
}

FailureOr<Typed> SpecEmitter::emitCall(const Expr &e) {
  if (e.kind == Expr::Kind::Call && e.name == "listed")
    return emitListed(e);
  if (e.kind == Expr::Kind::Call && e.name == "topk")
    return emitTopK(e);
  Builtin fn = Builtin::Select;
  StringRef name = "?:";
  if (e.kind == Expr::Kind::Call) {
    std::optional<Builtin> found = lookupBuiltin(e.name);
    if (!found) {
      if (std::optional<StringRef> guess = closestName(e.name, builtinNames()))
        error(e.loc, "unknown function '" + e.name + "'", e.loc,
              "did you mean '" + *guess + "'?");
      else
        error(e.loc, "unknown function '" + e.name + "'");
      return failure();
    }
    fn = *found;
    name = e.name;
  }
  SmallVector<Typed> args;
  SmallVector<ScalarKind> kinds;
  for (const ExprPtr &arg : e.operands) {
    FailureOr<Typed> v = emit(*arg);
    if (failed(v))
      return failure();
    args.push_back(*v);
    kinds.push_back(v->kind);
  }
  FailureOr<Typing> t = typeCall(fn, name, kinds, e.loc, &diag);
  if (failed(t)) {
    ok = false;
    return failure();
  }
  Location l = loc(e.loc);
  auto result = [&](Value v) { return Typed{v, t->result}; };
  bool isFloat = t->operand == ScalarKind::Float;
  Value x = promote(args[0], t->operand, l);
  switch (fn) {
  case Builtin::Min:
  case Builtin::Max: {
    Value y = promote(args[1], t->operand, l);
    if (fn == Builtin::Min)
      return result(isFloat ? arith::MinimumFOp::create(b, l, x, y).getResult()
                            : arith::MinSIOp::create(b, l, x, y).getResult());
    return result(isFloat ? arith::MaximumFOp::create(b, l, x, y).getResult()
                          : arith::MaxSIOp::create(b, l, x, y).getResult());
  }
  case Builtin::Abs: {
    if (isFloat)
      return result(math::AbsFOp::create(b, l, x));
    // math.absi does not take index; |x| = max(x, -x).
    Value zero = arith::ConstantIndexOp::create(b, l, 0);
    Value neg = arith::SubIOp::create(b, l, zero, x);
    return result(arith::MaxSIOp::create(b, l, x, neg));
  }
  case Builtin::Exp:
    return result(math::ExpOp::create(b, l, x));
  case Builtin::Log:
    return result(math::LogOp::create(b, l, x));
  case Builtin::Tanh:
    return result(math::TanhOp::create(b, l, x));
  case Builtin::Sqrt:
    return result(math::SqrtOp::create(b, l, x));
  case Builtin::Rsqrt:
    return result(math::RsqrtOp::create(b, l, x));
  case Builtin::Floor:
    return result(math::FloorOp::create(b, l, x));
  case Builtin::Ceil:
    return result(math::CeilOp::create(b, l, x));
  case Builtin::Sigmoid: {
    // 1 / (1 + exp(-x)); the math dialect has no sigmoid op.
    Value one = arith::ConstantOp::create(b, l, b.getF32FloatAttr(1.0f));
    Value e0 = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, x));
    Value den = arith::AddFOp::create(b, l, one, e0);
    return result(arith::DivFOp::create(b, l, one, den));
  }
  case Builtin::Float:
    if (args[0].kind == ScalarKind::Bool)
      return result(arith::UIToFPOp::create(b, l, b.getF32Type(), x));
    return result(promote(args[0], ScalarKind::Float, l));
  case Builtin::Int:
    if (args[0].kind == ScalarKind::Bool)
      return result(arith::IndexCastUIOp::create(b, l, b.getIndexType(), x));
    if (args[0].kind == ScalarKind::Int)
      return result(x);
    return result(arith::IndexCastOp::create(
        b, l, b.getIndexType(),
        arith::FPToSIOp::create(b, l, b.getI64Type(), x)));
  case Builtin::Select: {
    Value then = promote(args[1], t->operand, l);
    Value other = promote(args[2], t->operand, l);
    return result(arith::SelectOp::create(b, l, args[0].value, then, other));
  }
  }
  llvm_unreachable("every Builtin is handled above");
}

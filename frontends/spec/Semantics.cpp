//===- Semantics.cpp - Types, builtins and constants of specs -------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/Semantics.h"
#include "frontends/spec/SpecDiagnostics.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <cstdio>
#include <limits>

using namespace mlir;
using namespace attnc::spec;
using llvm::SMLoc;
using llvm::StringRef;

StringRef attnc::spec::kindName(ScalarKind kind) {
  switch (kind) {
  case ScalarKind::Int:
    return "int";
  case ScalarKind::Float:
    return "float";
  case ScalarKind::Bool:
    return "bool";
  }
  llvm_unreachable("ScalarKind has three enumerators");
}

std::string attnc::spec::formatDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

static const StringRef kBuiltinNames[] = {
    "min",  "max",   "abs",   "exp",  "log",   "tanh", "sigmoid",
    "sqrt", "rsqrt", "floor", "ceil", "float", "int",  "select", "listed", "topk"};

std::optional<Builtin> attnc::spec::lookupBuiltin(StringRef name) {
  return llvm::StringSwitch<std::optional<Builtin>>(name)
      .Case("min", Builtin::Min)
      .Case("max", Builtin::Max)
      .Case("abs", Builtin::Abs)
      .Case("exp", Builtin::Exp)
      .Case("log", Builtin::Log)
      .Case("tanh", Builtin::Tanh)
      .Case("sigmoid", Builtin::Sigmoid)
      .Case("sqrt", Builtin::Sqrt)
      .Case("rsqrt", Builtin::Rsqrt)
      .Case("floor", Builtin::Floor)
      .Case("ceil", Builtin::Ceil)
      .Case("float", Builtin::Float)
      .Case("int", Builtin::Int)
      .Case("select", Builtin::Select)
      .Default(std::nullopt);
}

ArrayRef<StringRef> attnc::spec::builtinNames() { return kBuiltinNames; }

std::optional<StringRef>
attnc::spec::closestName(StringRef name, ArrayRef<StringRef> candidates) {
  // One edit per three characters; never a full rewrite of a short name.
  unsigned limit = (name.size() + 2) / 3;
  std::optional<StringRef> best;
  unsigned bestDist = limit + 1;
  for (StringRef cand : candidates) {
    if (cand == name)
      continue;
    unsigned dist = name.edit_distance(cand, /*AllowReplacements=*/true,
                                       /*MaxEditDistance=*/limit);
    if (dist < bestDist && dist < std::max<size_t>(name.size(), 1)) {
      best = cand;
      bestDist = dist;
    }
  }
  return best;
}

//===----------------------------------------------------------------------===//
// Typing rules
//===----------------------------------------------------------------------===//

static bool isNumber(ScalarKind k) { return k != ScalarKind::Bool; }

static ScalarKind promote(ScalarKind a, ScalarKind b) {
  return a == ScalarKind::Float || b == ScalarKind::Float ? ScalarKind::Float
                                                          : ScalarKind::Int;
}

static LogicalResult typeError(SpecDiagnostics *diag, SMLoc loc,
                               const llvm::Twine &msg) {
  if (diag)
    diag->error(loc, msg);
  return failure();
}

FailureOr<Typing> attnc::spec::typeUnary(Tok op, ScalarKind x, SMLoc loc,
                                         SpecDiagnostics *diag) {
  if (op == Tok::Minus) {
    if (isNumber(x))
      return Typing{x, x};
    return typeError(diag, loc,
                     "unary '-' needs an int or float operand, "
                     "got bool; use '!' to negate a bool");
  }
  if (x == ScalarKind::Bool)
    return Typing{x, x};
  return typeError(diag, loc,
                   "'!' needs a bool operand, got " + kindName(x) +
                       "; compare it with 0 first");
}

FailureOr<Typing> attnc::spec::typeBinary(Tok op, ScalarKind lhs,
                                          ScalarKind rhs, SMLoc loc,
                                          SpecDiagnostics *diag) {
  auto got = [&]() -> std::string {
    return (kindName(lhs) + " and " + kindName(rhs)).str();
  };
  switch (op) {
  case Tok::Plus:
  case Tok::Minus:
  case Tok::Star:
  case Tok::Slash: {
    if (isNumber(lhs) && isNumber(rhs)) {
      ScalarKind k = promote(lhs, rhs);
      return Typing{k, k};
    }
    return typeError(diag, loc,
                     "operator " + describeToken(op) +
                         " needs int or float operands, got " + got());
  }
  case Tok::Percent:
    if (lhs == ScalarKind::Int && rhs == ScalarKind::Int)
      return Typing{ScalarKind::Int, ScalarKind::Int};
    return typeError(diag, loc,
                     "operator '%' needs int operands, got " + got());
  case Tok::Less:
  case Tok::LessEq:
  case Tok::Greater:
  case Tok::GreaterEq:
  case Tok::EqEq:
  case Tok::NotEq:
    if (isNumber(lhs) && isNumber(rhs))
      return Typing{promote(lhs, rhs), ScalarKind::Bool};
    if (lhs == ScalarKind::Bool && rhs == ScalarKind::Bool &&
        (op == Tok::EqEq || op == Tok::NotEq))
      return Typing{ScalarKind::Bool, ScalarKind::Bool};
    return typeError(diag, loc,
                     "cannot compare " + got() + " with " + describeToken(op));
  case Tok::AmpAmp:
  case Tok::PipePipe:
    if (lhs == ScalarKind::Bool && rhs == ScalarKind::Bool)
      return Typing{ScalarKind::Bool, ScalarKind::Bool};
    return typeError(diag, loc,
                     "operator " + describeToken(op) +
                         " needs bool operands, got " + got());
  default:
    llvm_unreachable("the parser builds Binary nodes from binary operators");
  }
}

/// Arguments each builtin takes.
static unsigned arity(Builtin fn) {
  switch (fn) {
  case Builtin::Min:
  case Builtin::Max:
    return 2;
  case Builtin::Select:
    return 3;
  default:
    return 1;
  }
}

FailureOr<Typing> attnc::spec::typeCall(Builtin fn, StringRef name,
                                        ArrayRef<ScalarKind> args, SMLoc loc,
                                        SpecDiagnostics *diag) {
  unsigned n = arity(fn);
  if (args.size() != n)
    return typeError(diag, loc,
                     "'" + name + "' takes " + llvm::Twine(n) + " argument" +
                         (n == 1 ? "" : "s") + ", got " +
                         llvm::Twine(args.size()));
  switch (fn) {
  case Builtin::Min:
  case Builtin::Max:
    if (isNumber(args[0]) && isNumber(args[1])) {
      ScalarKind k = promote(args[0], args[1]);
      return Typing{k, k};
    }
    return typeError(diag, loc,
                     "'" + name + "' needs int or float arguments, got " +
                         kindName(args[0]) + " and " + kindName(args[1]));
  case Builtin::Abs:
    if (isNumber(args[0]))
      return Typing{args[0], args[0]};
    return typeError(diag, loc,
                     "'abs' needs an int or float argument, got bool");
  case Builtin::Exp:
  case Builtin::Log:
  case Builtin::Tanh:
  case Builtin::Sigmoid:
  case Builtin::Sqrt:
  case Builtin::Rsqrt:
  case Builtin::Floor:
  case Builtin::Ceil:
    if (isNumber(args[0]))
      return Typing{ScalarKind::Float, ScalarKind::Float};
    return typeError(diag, loc,
                     "'" + name +
                         "' needs an int or float argument, got "
                         "bool; use float(x) to convert it");
  case Builtin::Float:
    return Typing{args[0], ScalarKind::Float};
  case Builtin::Int:
    return Typing{args[0], ScalarKind::Int};
  case Builtin::Select: {
    if (args[0] != ScalarKind::Bool)
      return typeError(diag, loc,
                       "the condition of '" + name + "' must be a bool, got " +
                           kindName(args[0]));
    if (args[1] == args[2])
      return Typing{args[1], args[1]};
    if (isNumber(args[1]) && isNumber(args[2])) {
      ScalarKind k = promote(args[1], args[2]);
      return Typing{k, k};
    }
    return typeError(diag, loc,
                     "the two branches of '" + name +
                         "' have different types, " + kindName(args[1]) +
                         " and " + kindName(args[2]));
  }
  }
  llvm_unreachable("every Builtin is handled above");
}

//===----------------------------------------------------------------------===//
// ConstEvaluator
//===----------------------------------------------------------------------===//

ConstEvaluator::ConstEvaluator(
    SpecDiagnostics &diag, const llvm::StringMap<ConstValue> &consts,
    llvm::function_ref<std::string(StringRef)> describeName)
    : diag(diag), consts(consts), describeName(describeName) {}

FailureOr<ConstValue> ConstEvaluator::evaluate(const Expr &e, bool diag) {
  diagnose = diag;
  return eval(e);
}

FailureOr<ConstValue> ConstEvaluator::fail(SMLoc loc, const llvm::Twine &msg) {
  if (diagnose)
    diag.error(loc, msg);
  return failure();
}

/// `v` converted to kind `k` (int to float, or unchanged).
static ConstValue convert(ConstValue v, ScalarKind k) {
  if (v.kind == ScalarKind::Int && k == ScalarKind::Float)
    return ConstValue::ofFloat(static_cast<double>(v.i));
  return v;
}

FailureOr<ConstValue> ConstEvaluator::eval(const Expr &e) {
  SpecDiagnostics *d = diagnose ? &diag : nullptr;
  auto finite = [&](double v) -> FailureOr<ConstValue> {
    if (!std::isfinite(v))
      return fail(e.loc, "this constant expression evaluates to " +
                             llvm::Twine(std::isnan(v) ? "NaN" : "infinity") +
                             "; constants must be finite");
    return ConstValue::ofFloat(v);
  };
  auto intOverflow = [&]() {
    return fail(e.loc, "integer overflow in a constant expression");
  };

  switch (e.kind) {
  case Expr::Kind::Int:
    return ConstValue::ofInt(e.intValue);
  case Expr::Kind::Float:
    return ConstValue::ofFloat(e.floatValue);
  case Expr::Kind::Bool:
    return ConstValue::ofBool(e.boolValue);
  case Expr::Kind::Name: {
    auto it = consts.find(e.name);
    if (it != consts.end())
      return it->second;
    std::string why = describeName(e.name);
    if (why.empty())
      return fail(e.loc, "unknown name '" + e.name + "'");
    return fail(e.loc, "'" + e.name + "' is " + why +
                           ", not a compile-time constant; only literals and "
                           "earlier consts may appear here");
  }
  case Expr::Kind::Index:
    return fail(e.loc, "tensor reads are not compile-time constants");
  case Expr::Kind::Unary: {
    FailureOr<ConstValue> x = eval(*e.operands[0]);
    if (failed(x) || failed(typeUnary(e.op, x->kind, e.loc, d)))
      return failure();
    if (e.op == Tok::Bang)
      return ConstValue::ofBool(!x->b);
    if (x->kind == ScalarKind::Float)
      return ConstValue::ofFloat(-x->f);
    if (x->i == std::numeric_limits<int64_t>::min())
      return intOverflow();
    return ConstValue::ofInt(-x->i);
  }
  case Expr::Kind::Binary: {
    FailureOr<ConstValue> l = eval(*e.operands[0]);
    if (failed(l))
      return failure();
    FailureOr<ConstValue> r = eval(*e.operands[1]);
    if (failed(r))
      return failure();
    FailureOr<Typing> t = typeBinary(e.op, l->kind, r->kind, e.loc, d);
    if (failed(t))
      return failure();
    ConstValue a = convert(*l, t->operand), b = convert(*r, t->operand);
    if ((e.op == Tok::Slash || e.op == Tok::Percent) && b.isZero())
      return fail(e.loc, "division by zero");
    bool isInt = t->operand == ScalarKind::Int;
    int64_t ir = 0;
    switch (e.op) {
    case Tok::Plus:
      if (!isInt)
        return finite(a.f + b.f);
      if (llvm::AddOverflow(a.i, b.i, ir))
        return intOverflow();
      return ConstValue::ofInt(ir);
    case Tok::Minus:
      if (!isInt)
        return finite(a.f - b.f);
      if (llvm::SubOverflow(a.i, b.i, ir))
        return intOverflow();
      return ConstValue::ofInt(ir);
    case Tok::Star:
      if (!isInt)
        return finite(a.f * b.f);
      if (llvm::MulOverflow(a.i, b.i, ir))
        return intOverflow();
      return ConstValue::ofInt(ir);
    case Tok::Slash: {
      if (!isInt)
        return finite(a.f / b.f);
      if (a.i == std::numeric_limits<int64_t>::min() && b.i == -1)
        return intOverflow();
      int64_t q = a.i / b.i;
      if (a.i % b.i != 0 && ((a.i < 0) != (b.i < 0)))
        --q; // floor, not truncation
      return ConstValue::ofInt(q);
    }
    case Tok::Percent: {
      if (b.i == -1)
        return ConstValue::ofInt(0);
      int64_t m = a.i % b.i;
      if (m != 0 && ((m < 0) != (b.i < 0)))
        m += b.i; // the result takes the divisor's sign
      return ConstValue::ofInt(m);
    }
    case Tok::Less:
      return ConstValue::ofBool(isInt ? a.i < b.i : a.f < b.f);
    case Tok::LessEq:
      return ConstValue::ofBool(isInt ? a.i <= b.i : a.f <= b.f);
    case Tok::Greater:
      return ConstValue::ofBool(isInt ? a.i > b.i : a.f > b.f);
    case Tok::GreaterEq:
      return ConstValue::ofBool(isInt ? a.i >= b.i : a.f >= b.f);
    case Tok::EqEq:
    case Tok::NotEq: {
      bool eq = t->operand == ScalarKind::Bool ? a.b == b.b
                : isInt                        ? a.i == b.i
                                               : a.f == b.f;
      return ConstValue::ofBool(e.op == Tok::EqEq ? eq : !eq);
    }
    case Tok::AmpAmp:
      return ConstValue::ofBool(a.b && b.b);
    case Tok::PipePipe:
      return ConstValue::ofBool(a.b || b.b);
    default:
      llvm_unreachable("typeBinary accepts binary operators only");
    }
  }
  case Expr::Kind::Ternary:
  case Expr::Kind::Call:
    return evalCall(e);
  }
  llvm_unreachable("every Expr kind is handled above");
}

FailureOr<ConstValue> ConstEvaluator::evalCall(const Expr &e) {
  SpecDiagnostics *d = diagnose ? &diag : nullptr;
  Builtin fn = Builtin::Select;
  StringRef name = "?:";
  if (e.kind == Expr::Kind::Call) {
    if (e.name == "listed")
      return fail(e.loc, "'listed' searches a tensor and is not a compile-time constant");
    if (e.name == "topk")
      return fail(e.loc, "'topk' selects blocks from q and k and is not a compile-time "
                         "constant");
    std::optional<Builtin> found = lookupBuiltin(e.name);
    if (!found)
      return fail(e.loc, "unknown function '" + e.name + "'");
    fn = *found;
    name = e.name;
  }
  // Every argument is evaluated (and type-checked), like in the kernel.
  SmallVector<ConstValue> args;
  SmallVector<ScalarKind> kinds;
  for (const ExprPtr &arg : e.operands) {
    FailureOr<ConstValue> v = eval(*arg);
    if (failed(v))
      return failure();
    args.push_back(*v);
    kinds.push_back(v->kind);
  }
  FailureOr<Typing> t = typeCall(fn, name, kinds, e.loc, d);
  if (failed(t))
    return failure();
  auto finite = [&](double v) -> FailureOr<ConstValue> {
    if (!std::isfinite(v))
      return fail(e.loc, "'" + name + "' of this constant is " +
                             (std::isnan(v) ? "NaN" : "infinite") +
                             "; constants must be finite");
    return ConstValue::ofFloat(v);
  };
  ConstValue x = convert(args[0], t->operand);
  switch (fn) {
  case Builtin::Min:
  case Builtin::Max: {
    ConstValue y = convert(args[1], t->operand);
    bool takeX = t->operand == ScalarKind::Int ? (x.i < y.i) : (x.f < y.f);
    if (fn == Builtin::Max)
      takeX = !takeX;
    return takeX ? x : y;
  }
  case Builtin::Abs:
    if (x.kind == ScalarKind::Float)
      return ConstValue::ofFloat(std::fabs(x.f));
    if (x.i == std::numeric_limits<int64_t>::min())
      return fail(e.loc, "integer overflow in a constant expression");
    return ConstValue::ofInt(x.i < 0 ? -x.i : x.i);
  case Builtin::Exp:
    return finite(std::exp(x.f));
  case Builtin::Log:
    return finite(std::log(x.f));
  case Builtin::Tanh:
    return finite(std::tanh(x.f));
  case Builtin::Sigmoid:
    return finite(1.0 / (1.0 + std::exp(-x.f)));
  case Builtin::Sqrt:
    return finite(std::sqrt(x.f));
  case Builtin::Rsqrt:
    return finite(1.0 / std::sqrt(x.f));
  case Builtin::Floor:
    return finite(std::floor(x.f));
  case Builtin::Ceil:
    return finite(std::ceil(x.f));
  case Builtin::Float:
    if (x.kind == ScalarKind::Bool)
      return ConstValue::ofFloat(x.b ? 1.0 : 0.0);
    return ConstValue::ofFloat(x.asDouble());
  case Builtin::Int: {
    if (x.kind == ScalarKind::Bool)
      return ConstValue::ofInt(x.b ? 1 : 0);
    if (x.kind == ScalarKind::Int)
      return x;
    // Truncation toward zero; 2^63 itself is out of range.
    if (!(x.f > -9223372036854775808.0 - 1 && x.f < 9223372036854775808.0))
      return fail(e.loc, "int() of this constant is out of the 64-bit range");
    return ConstValue::ofInt(static_cast<int64_t>(x.f));
  }
  case Builtin::Select: {
    ConstValue a = convert(args[1], t->operand),
               b = convert(args[2], t->operand);
    return args[0].b ? a : b;
  }
  }
  llvm_unreachable("every Builtin is handled above");
}

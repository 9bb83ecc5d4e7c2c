//===- TileIntervals.cpp - Bound a mask over a tile of (i, j) ---*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "passes/TileIntervals.h"
#include "passes/RegionInlining.h"
#include "dialects/attn/AttnOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <limits>

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

namespace {
/// An abstract value. Integers carry [lo, hi] (index values); booleans
/// carry (mayTrue, mayFalse) (i1 values). `known` is false when the analysis
/// lost track: then the value may be anything.
struct Abs {
  bool known = false;
  bool isBool = false;
  Value lo, hi;       // integers
  Value mayT, mayF;   // booleans
  std::optional<int64_t> constant; // an integer known at compile time
  bool point = false; // lo and hi are the same value by construction
};

class Evaluator {
public:
  Evaluator(ImplicitLocOpBuilder &b, const std::function<Value(int)> &sizeOf)
      : b(b), sizeOf(sizeOf) {}

  Abs intRange(Value lo, Value hi) {
    Abs a;
    a.known = true;
    a.lo = lo;
    a.hi = hi;
    return a;
  }
  Abs exact(Value v) {
    Abs a = intRange(v, v);
    a.point = true;
    return a;
  }
  Abs boolean(Value t, Value f) {
    Abs a;
    a.known = a.isBool = true;
    a.mayT = t;
    a.mayF = f;
    return a;
  }
  Value i1(bool v) { return arith::ConstantIntOp::create(b, v ? 1 : 0, 1); }
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Abs unknownBool() { return boolean(i1(true), i1(true)); }

  Value minV(Value x, Value y) { return arith::MinSIOp::create(b, x, y); }
  Value maxV(Value x, Value y) { return arith::MaxSIOp::create(b, x, y); }
  Value andV(Value x, Value y) { return arith::AndIOp::create(b, x, y); }
  Value orV(Value x, Value y) { return arith::OrIOp::create(b, x, y); }
  Value notV(Value x) { return arith::XOrIOp::create(b, x, i1(true)); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
  }
  Value le(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::sle, x, y);
  }
  Value eq(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, x, y);
  }

  /// A value from above the region: a constant or a scalar parameter.
  Abs fromAbove(Value v) {
    Attribute attr;
    if (matchPattern(v, m_Constant(&attr))) {
      if (auto i = dyn_cast<IntegerAttr>(attr)) {
        if (i.getType().isInteger(1))
          return boolean(i1(!i.getValue().isZero()), i1(i.getValue().isZero()));
        Abs a = exact(index(i.getValue().getSExtValue()));
        a.constant = i.getValue().getSExtValue();
        return a;
      }
      return {};
    }
    if (isa<IndexType>(v.getType()))
      return exact(v);
    if (auto it = dyn_cast<IntegerType>(v.getType()); it && it.getWidth() > 1)
      return exact(arith::IndexCastOp::create(b, b.getIndexType(), v));
    return {};
  }

  Abs get(Value v) {
    auto it = values.find(v);
    if (it != values.end())
      return it->second;
    Abs a = fromAbove(v);
    values[v] = a;
    return a;
  }

  /// Interval of x * c for a compile-time c.
  Abs scale(const Abs &x, int64_t c) {
    Value cv = index(c);
    Value p = arith::MulIOp::create(b, x.lo, cv), q = arith::MulIOp::create(b, x.hi, cv);
    return c >= 0 ? intRange(p, q) : intRange(q, p);
  }

  Abs compare(arith::CmpIPredicate pred, const Abs &x, const Abs &y) {
    using P = arith::CmpIPredicate;
    switch (pred) {
    case P::slt: return boolean(lt(x.lo, y.hi), notV(lt(x.hi, y.lo)));
    case P::sle: return boolean(le(x.lo, y.hi), notV(le(x.hi, y.lo)));
    case P::sgt: return compare(P::slt, y, x);
    case P::sge: return compare(P::sle, y, x);
    case P::eq: {
      Value overlap = andV(le(x.lo, y.hi), le(y.lo, x.hi));
      Value single = andV(andV(eq(x.lo, x.hi), eq(y.lo, y.hi)), eq(x.lo, y.lo));
      return boolean(overlap, notV(single));
    }
    case P::ne: {
      Abs e = compare(P::eq, x, y);
      return boolean(e.mayF, e.mayT);
    }
    default:
      return unknownBool();
    }
  }

  Abs evaluate(Operation &op);
  Abs evaluateOp(Operation &op);
  Abs readRange(ReadOp read);
  Abs listedRange(ListedOp listed);

  ImplicitLocOpBuilder &b;
  const std::function<Value(int)> &sizeOf;
  llvm::DenseMap<Value, Abs> values;
};
} // namespace

Abs Evaluator::evaluate(Operation &op) {
  Abs result = evaluateOp(op);
  // Integer ops map exact inputs to exact outputs.
  if (result.known && !result.isBool && !op.getOperands().empty() &&
      llvm::all_of(op.getOperands(), [&](Value v) { return get(v).point; }))
    result.point = true;
  return result;
}

Abs Evaluator::readRange(ReadOp read) {
  // Bounds of an integer tensor over the box: a min/max scan over the
  // indices that vary (e.g. doc[b, i] over the tile's rows; blocks[b, h,
  // i / 128, j / 64] over the one or few blocks a tile touches); a tile of
  // sorted document ids, or inside one block of a block mask, then comes out
  // EMPTY or FULL. More than two varying indices, or float elements, are
  // unknown.
  auto type = cast<MemRefType>(read.getSource().getType());
  if (!isa<IntegerType>(type.getElementType()))
    return {};
  SmallVector<Abs> idx;
  SmallVector<int> varying;
  for (auto [d, v] : llvm::enumerate(read.getIndices())) {
    idx.push_back(get(v));
    if (!idx.back().known)
      return {};
    if (!idx.back().point)
      varying.push_back(static_cast<int>(d));
  }
  if (varying.size() > 2)
    return {};
  auto load = [&](ArrayRef<Value> at) -> Value {
    Value x = memref::LoadOp::create(b, read.getSource(), at);
    return arith::IndexCastOp::create(b, b.getIndexType(), x);
  };
  // Indices are clamped to the tensor, as the kernel's reads are
  // (clampToDim): a fixed index reads there, and a varying one runs over its
  // clamped range, never empty.
  SmallVector<Value> at;
  for (auto [d, a] : llvm::enumerate(idx))
    at.push_back(clampToDim(b, read.getSource(), d, a.lo));
  if (varying.empty())
    return exact(load(at));
  SmallVector<Value> lo, end;
  for (int d : varying) {
    lo.push_back(clampToDim(b, read.getSource(), d, idx[d].lo));
    Value hi = clampToDim(b, read.getSource(), d, idx[d].hi);
    end.push_back(arith::AddIOp::create(b, hi, index(1)));
  }
  Value big = index(std::numeric_limits<int64_t>::max());
  Value small = index(std::numeric_limits<int64_t>::min());
  auto scan = scf::ForOp::create(
      b, lo[0], end[0], index(1), ValueRange{big, small},
      [&](OpBuilder &, Location, Value k0, ValueRange mm) {
        at[varying[0]] = k0;
        if (varying.size() == 1) {
          Value x = load(at);
          scf::YieldOp::create(b, ValueRange{minV(mm[0], x), maxV(mm[1], x)});
          return;
        }
        auto inner = scf::ForOp::create(
            b, lo[1], end[1], index(1), ValueRange{mm[0], mm[1]},
            [&](OpBuilder &, Location, Value k1, ValueRange mm2) {
              at[varying[1]] = k1;
              Value x = load(at);
              scf::YieldOp::create(b, ValueRange{minV(mm2[0], x), maxV(mm2[1], x)});
            });
        scf::YieldOp::create(b, inner.getResults());
      });
  return intRange(scan.getResult(0), scan.getResult(1));
}

Abs Evaluator::listedRange(ListedOp listed) {
  // One scan of the row per tile: no entry in the tile's value range makes
  // it EMPTY; a value that is one point and surely listed makes it FULL. A
  // range of several values is never FULL (entries may repeat). When the
  // row differs across the tile (its indices are not one point at run time)
  // nothing is claimed.
  SmallVector<Value> prefix;
  Value oneRow = i1(true);
  for (Value p : listed.getPrefix()) {
    Abs a = get(p);
    if (!a.known)
      return unknownBool();
    prefix.push_back(a.lo);
    if (!a.point)
      oneRow = andV(oneRow, eq(a.lo, a.hi));
  }
  Abs x = get(listed.getValue()), n = get(listed.getCount());
  if (!x.known || !n.known)
    return unknownBool();
  ListScan scan = scanList(b, listed.getList(), prefix, n.hi, n.lo, x.lo, x.hi);
  Value sure = x.point ? scan.hitLo : andV(eq(x.lo, x.hi), scan.hitLo);
  return boolean(orV(scan.anyIn, notV(oneRow)), notV(andV(oneRow, sure)));
}

Abs Evaluator::evaluateOp(Operation &op) {
  auto operand = [&](unsigned n) { return get(op.getOperand(n)); };
  bool allKnown = llvm::all_of(op.getOperands(), [&](Value v) { return get(v).known; });
  Type type = op.getNumResults() ? op.getResult(0).getType() : Type();
  bool isBoolResult = type && type.isInteger(1);
  if (!allKnown && !isa<arith::ConstantOp, SizeOp, ReadOp, ListedOp>(op))
    return isBoolResult ? unknownBool() : Abs();

  return llvm::TypeSwitch<Operation *, Abs>(&op)
      .Case([&](arith::ConstantOp) { return fromAbove(op.getResult(0)); })
      .Case([&](SizeOp s) {
        return exact(sizeOf(static_cast<int>(s.getKind())));
      })
      .Case([&](ReadOp r) { return readRange(r); })
      .Case([&](ListedOp l) { return listedRange(l); })
      .Case<arith::IndexCastOp, arith::ExtSIOp, arith::TruncIOp>(
          [&](Operation *) { return operand(0); })
      .Case([&](arith::AddIOp) {
        Abs x = operand(0), y = operand(1);
        if (x.isBool)
          return isBoolResult ? unknownBool() : Abs();
        return intRange(arith::AddIOp::create(b, x.lo, y.lo),
                        arith::AddIOp::create(b, x.hi, y.hi));
      })
      .Case([&](arith::SubIOp) {
        Abs x = operand(0), y = operand(1);
        return intRange(arith::SubIOp::create(b, x.lo, y.hi),
                        arith::SubIOp::create(b, x.hi, y.lo));
      })
      .Case([&](arith::MulIOp) {
        Abs x = operand(0), y = operand(1);
        if (y.constant)
          return scale(x, *y.constant);
        if (x.constant)
          return scale(y, *x.constant);
        Value p1 = arith::MulIOp::create(b, x.lo, y.lo), p2 = arith::MulIOp::create(b, x.lo, y.hi);
        Value p3 = arith::MulIOp::create(b, x.hi, y.lo), p4 = arith::MulIOp::create(b, x.hi, y.hi);
        return intRange(minV(minV(p1, p2), minV(p3, p4)), maxV(maxV(p1, p2), maxV(p3, p4)));
      })
      .Case<arith::FloorDivSIOp, arith::DivSIOp>([&](Operation *) {
        Abs x = operand(0), y = operand(1);
        if (!y.constant || *y.constant <= 0)
          return Abs();
        Value c = index(*y.constant);
        // Both are monotone in the dividend for a positive divisor.
        if (isa<arith::FloorDivSIOp>(op))
          return intRange(arith::FloorDivSIOp::create(b, x.lo, c),
                          arith::FloorDivSIOp::create(b, x.hi, c));
        return intRange(arith::DivSIOp::create(b, x.lo, c),
                        arith::DivSIOp::create(b, x.hi, c));
      })
      .Case([&](arith::RemSIOp) {
        Abs x = operand(0), y = operand(1);
        if (!y.constant || *y.constant <= 0)
          return Abs();
        int64_t cst = *y.constant;
        Value c = index(cst), zero = index(0);
        // Exact when the box is non-negative and within one period; else
        // the full range of remainders for the dividend's sign.
        Value nonNeg = le(zero, x.lo);
        Value samePeriod = andV(nonNeg, eq(arith::DivSIOp::create(b, x.lo, c),
                                           arith::DivSIOp::create(b, x.hi, c)));
        Value lo = arith::SelectOp::create(
            b, samePeriod, arith::RemSIOp::create(b, x.lo, c),
            arith::SelectOp::create(b, nonNeg, zero, index(-(cst - 1))));
        Value hi = arith::SelectOp::create(
            b, samePeriod, arith::RemSIOp::create(b, x.hi, c),
            arith::SelectOp::create(b, le(x.hi, zero), zero, index(cst - 1)));
        return intRange(lo, hi);
      })
      .Case([&](arith::MinSIOp) {
        Abs x = operand(0), y = operand(1);
        return intRange(minV(x.lo, y.lo), minV(x.hi, y.hi));
      })
      .Case([&](arith::MaxSIOp) {
        Abs x = operand(0), y = operand(1);
        return intRange(maxV(x.lo, y.lo), maxV(x.hi, y.hi));
      })
      .Case([&](math::AbsIOp) {
        Abs x = operand(0);
        Value zero = index(0);
        Value negHi = arith::SubIOp::create(b, zero, x.hi);
        Value negLo = arith::SubIOp::create(b, zero, x.lo);
        Value straddles = andV(lt(x.lo, zero), lt(zero, x.hi));
        Value lo = arith::SelectOp::create(
            b, straddles, zero, minV(maxV(x.lo, negHi), maxV(x.hi, negLo)));
        return intRange(lo, maxV(negLo, x.hi));
      })
      .Case([&](arith::CmpIOp c) {
        return compare(c.getPredicate(), operand(0), operand(1));
      })
      .Case([&](arith::AndIOp) {
        Abs x = operand(0), y = operand(1);
        if (!x.isBool)
          return Abs();
        return boolean(andV(x.mayT, y.mayT), orV(x.mayF, y.mayF));
      })
      .Case([&](arith::OrIOp) {
        Abs x = operand(0), y = operand(1);
        if (!x.isBool)
          return Abs();
        return boolean(orV(x.mayT, y.mayT), andV(x.mayF, y.mayF));
      })
      .Case([&](arith::XOrIOp) {
        Abs x = operand(0), y = operand(1);
        if (!x.isBool)
          return Abs();
        return boolean(orV(andV(x.mayT, y.mayF), andV(x.mayF, y.mayT)),
                       orV(andV(x.mayT, y.mayT), andV(x.mayF, y.mayF)));
      })
      .Case([&](arith::SelectOp) {
        Abs c = operand(0), x = operand(1), y = operand(2);
        if (x.isBool)
          return boolean(orV(andV(c.mayT, x.mayT), andV(c.mayF, y.mayT)),
                         orV(andV(c.mayT, x.mayF), andV(c.mayF, y.mayF)));
        // Only the branches the condition allows contribute.
        Value onlyX = andV(c.mayT, notV(c.mayF));
        Value onlyY = andV(c.mayF, notV(c.mayT));
        Value lo = arith::SelectOp::create(
            b, onlyX, x.lo, arith::SelectOp::create(b, onlyY, y.lo, minV(x.lo, y.lo)));
        Value hi = arith::SelectOp::create(
            b, onlyX, x.hi, arith::SelectOp::create(b, onlyY, y.hi, maxV(x.hi, y.hi)));
        return intRange(lo, hi);
      })
      .Default([&](Operation *) { return isBoolResult ? unknownBool() : Abs(); });
}

TileClass attnc::classifyTile(ImplicitLocOpBuilder &b, Region &mask,
                              const TileBox &box,
                              const std::function<Value(int)> &sizeOf) {
  Evaluator eval(b, sizeOf);
  Block &block = mask.front();
  eval.values[block.getArgument(0)] = eval.exact(box.b);
  eval.values[block.getArgument(1)] = eval.exact(box.h);
  eval.values[block.getArgument(2)] = eval.intRange(box.iLo, box.iHi);
  eval.values[block.getArgument(3)] = eval.intRange(box.jLo, box.jHi);
  for (Operation &op : block.without_terminator())
    if (op.getNumResults() == 1)
      eval.values[op.getResult(0)] = eval.evaluate(op);
  Abs result = eval.get(yieldedValue(mask));
  if (!result.known || !result.isBool)
    return {eval.i1(true), eval.i1(true)};
  return {result.mayT, result.mayF};
}

ListScan attnc::scanList(ImplicitLocOpBuilder &b, Value list, ValueRange prefix, Value count,
                         Value sureCount, Value lo, Value hi) {
  auto type = cast<MemRefType>(list.getType());
  Value zero = arith::ConstantIndexOp::create(b, 0);
  Value one = arith::ConstantIndexOp::create(b, 1);
  Value len = memref::DimOp::create(b, list, type.getRank() - 1);
  auto clampToRow = [&](Value n) {
    return arith::MinSIOp::create(b, arith::MaxSIOp::create(b, n, zero), len);
  };
  Value n = clampToRow(count), sure = clampToRow(sureCount);
  Value no = arith::ConstantIntOp::create(b, 0, 1);
  using P = arith::CmpIPredicate;
  auto loop = scf::ForOp::create(
      b, zero, n, one, ValueRange{no, no},
      [&](OpBuilder &, Location, Value t, ValueRange found) {
        SmallVector<Value> at(prefix.begin(), prefix.end());
        at.push_back(t);
        Value e = arith::IndexCastOp::create(b, b.getIndexType(),
                                             memref::LoadOp::create(b, list, at));
        Value in = arith::AndIOp::create(b, arith::CmpIOp::create(b, P::sle, lo, e),
                                         arith::CmpIOp::create(b, P::sle, e, hi));
        Value hit = arith::AndIOp::create(b, arith::CmpIOp::create(b, P::eq, e, lo),
                                          arith::CmpIOp::create(b, P::slt, t, sure));
        scf::YieldOp::create(b, ValueRange{arith::OrIOp::create(b, found[0], in),
                                           arith::OrIOp::create(b, found[1], hit)});
      });
  return {loop.getResult(0), loop.getResult(1)};
}

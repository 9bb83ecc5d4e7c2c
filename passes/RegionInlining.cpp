//===- RegionInlining.cpp - Inline attn regions, scalar or over lanes -----===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "passes/RegionInlining.h"
#include "dialects/attn/AttnOps.h"
#include "passes/TileIntervals.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

Value attnc::clampToDim(ImplicitLocOpBuilder &b, Value memref, unsigned dim, Value index) {
  Value zero = arith::ConstantIndexOp::create(b, 0);
  Value size = memref::DimOp::create(b, memref, dim);
  Value hi = arith::MaxSIOp::create(b, arith::SubIOp::create(b, size, arith::ConstantIndexOp::create(b, 1)), zero);
  return arith::MinSIOp::create(b, arith::MaxSIOp::create(b, index, zero), hi);
}

void RegionInliner::cloneScalar(Operation &inner, IRMapping &map) {
  if (auto read = dyn_cast<ReadOp>(inner)) {
    SmallVector<Value> indices;
    for (auto [d, i] : llvm::enumerate(read.getIndices()))
      indices.push_back(clampToDim(b, read.getSource(), d, map.lookup(i)));
    map.map(read.getResult(),
            memref::LoadOp::create(b, read.getSource(), indices).getResult());
    return;
  }
  if (auto listed = dyn_cast<ListedOp>(inner)) {
    SmallVector<Value> prefix;
    for (Value p : listed.getPrefix())
      prefix.push_back(map.lookupOrDefault(p));
    Value x = map.lookupOrDefault(listed.getValue());
    Value n = map.lookupOrDefault(listed.getCount());
    map.map(listed.getResult(), attnc::scanList(b, listed.getList(), prefix, n, n, x, x).anyIn);
    return;
  }
  if (auto size = dyn_cast<SizeOp>(inner)) {
    map.map(size.getResult(), sizeOf(size.getKind()));
    return;
  }
  b.clone(inner, map);
}

Value RegionInliner::inlineScalar(Region &region, ValueRange args) {
  IRMapping map;
  map.map(region.getArguments(), args);
  for (Operation &inner : region.front().without_terminator())
    cloneScalar(inner, map);
  return map.lookupOrDefault(yieldedValue(region));
}

llvm::DenseSet<Value> attnc::valuesDependingOn(Region &region, ArrayRef<bool> flagged) {
  llvm::DenseSet<Value> dependent;
  for (auto [arg, f] : llvm::zip(region.getArguments(), flagged))
    if (f)
      dependent.insert(arg);
  for (Operation &inner : region.front().without_terminator()) {
    bool depends = false;
    inner.walk([&](Operation *nested) {
      for (Value v : nested->getOperands())
        depends |= dependent.contains(v);
    });
    if (depends)
      dependent.insert(inner.result_begin(), inner.result_end());
  }
  return dependent;
}

void RegionInliner::inlineInvariant(Region &region, ValueRange args, ArrayRef<bool> varying,
                                    IRMapping &map) {
  for (auto [arg, given, v] : llvm::zip(region.getArguments(), args, varying))
    if (!v)
      map.map(arg, given);
  llvm::DenseSet<Value> dependent = valuesDependingOn(region, varying);
  for (Operation &inner : region.front().without_terminator())
    if (inner.getNumResults() != 0 && !dependent.contains(inner.getResult(0)))
      cloneScalar(inner, map);
}

Value RegionInliner::inlineRest(Region &region, ValueRange args, IRMapping map) {
  for (auto [arg, given] : llvm::zip(region.getArguments(), args))
    if (!map.contains(arg))
      map.map(arg, given);
  for (Operation &inner : region.front().without_terminator())
    if (inner.getNumResults() == 0 || !map.contains(inner.getResult(0)))
      cloneScalar(inner, map);
  return map.lookupOrDefault(yieldedValue(region));
}

bool RegionInliner::canInlineLanes(Region &region, ArrayRef<bool> varying) {
  llvm::DenseSet<Value> perLane;
  for (auto [arg, v] : llvm::zip(region.getArguments(), varying))
    if (v)
      perLane.insert(arg);
  for (Operation &inner : region.front().without_terminator()) {
    bool anyVarying = llvm::any_of(inner.getOperands(),
                                   [&](Value v) { return perLane.contains(v); });
    if (!anyVarying)
      continue;
    if (auto read = dyn_cast<ReadOp>(inner)) {
      auto mem = cast<MemRefType>(read.getSource().getType());
      ValueRange indices = read.getIndices();
      for (Value i : indices.drop_back())
        if (perLane.contains(i))
          return false;
      if (mem.getElementType().isBF16() || !mem.isLastDimUnitStride())
        return false;
    } else if (isa<arith::DivSIOp, arith::DivUIOp, arith::RemSIOp, arith::RemUIOp,
                   arith::FloorDivSIOp, arith::CeilDivSIOp, arith::CeilDivUIOp>(inner)) {
      // Lanes past the tile run too: a divisor that varies could be 0 there.
      if (perLane.contains(inner.getOperand(1)))
        return false;
    } else if (!inner.hasTrait<OpTrait::Elementwise>() || inner.getNumRegions() != 0) {
      return false;
    }
    for (Value r : inner.getResults())
      perLane.insert(r);
  }
  return true;
}

Value RegionInliner::inlineLanes(Region &region, ValueRange args, Value lanes,
                                 ArrayRef<Value> firstLane) {
  IRMapping map;
  map.map(region.getArguments(), args);
  auto isLane = [](Value v) { return isa<VectorType>(v.getType()); };
  auto toLanes = [&](Value v) -> Value {
    if (isLane(v))
      return v;
    return vector::BroadcastOp::create(b, VectorType::get({width}, v.getType()), v);
  };
  // Region values whose lanes hold consecutive indices: their first lane's.
  llvm::DenseMap<Value, Value> consecutiveFrom;
  for (auto [arg, first] : llvm::zip(region.getArguments(), firstLane))
    if (first)
      consecutiveFrom[arg] = first;
  for (Operation &inner : region.front().without_terminator()) {
    bool anyLane = llvm::any_of(inner.getOperands(), [&](Value v) {
      return isLane(map.lookupOrDefault(v));
    });
    if (!anyLane) { // shared by every lane: the scalar form
      cloneScalar(inner, map);
      continue;
    }
    if (auto read = dyn_cast<ReadOp>(inner)) {
      // Varies in the innermost index only (canInlineLanes).
      // Every index clamped to the tensor, as in cloneScalar.
      SmallVector<Value> base;
      unsigned last = read.getIndices().size() - 1;
      for (auto [d, i] : llvm::enumerate(read.getIndices().drop_back()))
        base.push_back(clampToDim(b, read.getSource(), d, map.lookupOrDefault(i)));
      base.push_back(arith::ConstantIndexOp::create(b, 0));
      Type elt = read.getResult().getType();
      auto vt = VectorType::get({width}, elt);
      Value passThru = vector::BroadcastOp::create(
          b, vt, arith::ConstantOp::create(b, b.getZeroAttr(elt)).getResult());
      auto gather = [&]() -> Value {
        Value offsets = toLanes(map.lookupOrDefault(read.getIndices().back()));
        Value zero = arith::ConstantIndexOp::create(b, 0);
        Value hi = clampToDim(b, read.getSource(), last,
                              arith::ConstantIndexOp::create(b, INT64_MAX));
        offsets = arith::MinSIOp::create(b, arith::MaxSIOp::create(b, offsets, toLanes(zero)),
                                         toLanes(hi));
        return vector::GatherOp::create(b, vt, read.getSource(), base, offsets, lanes,
                                        passThru)
            .getResult();
      };
      auto from = consecutiveFrom.find(read.getIndices().back());
      if (from == consecutiveFrom.end()) {
        map.map(read.getResult(), gather());
        continue;
      }
      // Consecutive indices (a key's document id, a padding flag): no
      // index of the lanes needs clamping when the first is at least 0 and
      // the last inside the dim, and then one contiguous load serves them
      // (two 8-lane gathers per vector had been most of a document
      // mask's cost per row).
      Value lo = from->second;
      Value size = memref::DimOp::create(b, read.getSource(), last);
      Value inside = arith::AndIOp::create(
          b,
          arith::CmpIOp::create(b, arith::CmpIPredicate::sge, lo,
                                arith::ConstantIndexOp::create(b, 0)),
          // lo <= size - width, which cannot overflow (size >= 0); lo +
          // width could, for a huge shared offset read from a tensor.
          arith::CmpIOp::create(
              b, arith::CmpIPredicate::sle, lo,
              arith::SubIOp::create(b, size, arith::ConstantIndexOp::create(b, width))));
      auto choice = scf::IfOp::create(b, TypeRange{vt}, inside, /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&choice.getThenRegion().front());
        SmallVector<Value> at(base);
        at.back() = lo;
        scf::YieldOp::create(
            b, vector::MaskedLoadOp::create(b, vt, read.getSource(), at, lanes, passThru)
                   .getResult());
        b.setInsertionPointToStart(&choice.getElseRegion().front());
        scf::YieldOp::create(b, gather());
      }
      map.map(read.getResult(), choice.getResult(0));
      continue;
    }
    // Two integers widened to index for a comparison (the spec language's
    // ints are indices) compare alike in their own type: index_cast
    // sign-extends, which keeps every predicate's answer. Over 16 lanes the
    // i64 compare is two instructions and two widenings more.
    if (auto cmp = dyn_cast<arith::CmpIOp>(inner)) {
      auto lhs = cmp.getLhs().getDefiningOp<arith::IndexCastOp>();
      auto rhs = cmp.getRhs().getDefiningOp<arith::IndexCastOp>();
      if (lhs && rhs && cmp.getLhs().getType().isIndex() &&
          isa<IntegerType>(lhs.getIn().getType()) &&
          lhs.getIn().getType().getIntOrFloatBitWidth() <= 64 &&
          lhs.getIn().getType() == rhs.getIn().getType() &&
          lhs->getParentRegion() == &region && rhs->getParentRegion() == &region) {
        Value x = toLanes(map.lookupOrDefault(lhs.getIn()));
        Value y = toLanes(map.lookupOrDefault(rhs.getIn()));
        map.map(cmp.getResult(),
                arith::CmpIOp::create(b, cmp.getPredicate(), x, y).getResult());
        continue;
      }
    }
    // A shared value added to or taken from consecutive indices keeps them
    // consecutive.
    if (isa<arith::AddIOp, arith::SubIOp>(inner)) {
      Value x = inner.getOperand(0), y = inner.getOperand(1);
      auto fx = consecutiveFrom.find(x);
      bool yShared = !isLane(map.lookupOrDefault(y));
      if (fx != consecutiveFrom.end() && yShared) {
        Value first =
            isa<arith::AddIOp>(inner)
                ? arith::AddIOp::create(b, fx->second, map.lookupOrDefault(y)).getResult()
                : arith::SubIOp::create(b, fx->second, map.lookupOrDefault(y)).getResult();
        consecutiveFrom[inner.getResult(0)] = first;
      } else if (auto fy = consecutiveFrom.find(y);
                 isa<arith::AddIOp>(inner) && fy != consecutiveFrom.end() &&
                 !isLane(map.lookupOrDefault(x))) {
        consecutiveFrom[inner.getResult(0)] =
            arith::AddIOp::create(b, map.lookupOrDefault(x), fy->second);
      }
    }
    OperationState state(inner.getLoc(), inner.getName());
    state.addAttributes(inner.getAttrs());
    for (Value v : inner.getOperands())
      state.addOperands(toLanes(map.lookupOrDefault(v)));
    for (Type t : inner.getResultTypes())
      state.addTypes(VectorType::get({width}, t));
    Operation *lanesOp = b.create(state);
    map.map(inner.getResults(), lanesOp->getResults());
  }
  return toLanes(map.lookupOrDefault(yieldedValue(region)));
}

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

Value RegionInliner::inlineLanes(Region &region, ValueRange args, Value lanes) {
  IRMapping map;
  map.map(region.getArguments(), args);
  auto isLane = [](Value v) { return isa<VectorType>(v.getType()); };
  auto toLanes = [&](Value v) -> Value {
    if (isLane(v))
      return v;
    return vector::BroadcastOp::create(b, VectorType::get({width}, v.getType()), v);
  };
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
      Value offsets = toLanes(map.lookupOrDefault(read.getIndices().back()));
      {
        Value zero = arith::ConstantIndexOp::create(b, 0);
        Value hi = clampToDim(b, read.getSource(), last,
                              arith::ConstantIndexOp::create(b, INT64_MAX));
        offsets = arith::MinSIOp::create(b, arith::MaxSIOp::create(b, offsets, toLanes(zero)),
                                         toLanes(hi));
      }
      map.map(read.getResult(), vector::GatherOp::create(b, vt, read.getSource(), base,
                                                         offsets, lanes, passThru)
                                    .getResult());
      continue;
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

//===- MaterializeTopK.cpp - attn.topk as a read of a selection table ------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The selection of attn.topk needs every block of q and k pooled before any
// tile runs, which no per-element or per-tile code can do. The runtime
// computes it once per launch into a hidden argument; this pass rewrites
// the op into a read of that table, after which the rest of the compiler
// sees an ordinary block mask.
//
//===----------------------------------------------------------------------===//

#include "dialects/attn/AttnOps.h"
#include "passes/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace attnc {
#define GEN_PASS_DEF_ATTNMATERIALIZETOPKPASS
#include "passes/Passes.h.inc"
} // namespace attnc

using namespace mlir;
using namespace attnc::attn;

namespace {
struct AttnMaterializeTopKPass
    : attnc::impl::AttnMaterializeTopKPassBase<AttnMaterializeTopKPass> {
  void runOnOperation() override {
    func::FuncOp fn = getOperation();
    SmallVector<TopKOp> ops;
    fn.walk([&](TopKOp op) { ops.push_back(op); });
    if (ops.empty())
      return;
    auto same = [&](TopKOp x, TopKOp y) {
      return x.getTopK() == y.getTopK() && x.getBlockQ() == y.getBlockQ() &&
             x.getBlockK() == y.getBlockK() && x.getCausal() == y.getCausal();
    };
    for (TopKOp op : ops)
      if (!same(op, ops.front())) {
        op.emitOpError() << "selects with other parameters than an earlier attn.topk; a "
                            "kernel supports one top-k selection";
        return signalPassFailure();
      }
    if (!fn.getFunctionType().getResults().empty() || fn.isExternal()) {
      fn.emitError() << "attn-materialize-topk expects a kernel function without results";
      return signalPassFailure();
    }

    MLIRContext *ctx = &getContext();
    Builder b(ctx);
    auto tableType = MemRefType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic},
        b.getI32Type());
    unsigned index = fn.getNumArguments();
    TopKOp first = ops.front();
    NamedAttrList attrs;
    attrs.append("attn.name", b.getStringAttr("topk_selection"));
    attrs.append("attn.hidden", b.getStringAttr("topk"));
    attrs.append("attn.topk",
                 b.getI64ArrayAttr({static_cast<int64_t>(first.getTopK()),
                                    static_cast<int64_t>(first.getBlockQ()),
                                    static_cast<int64_t>(first.getBlockK()),
                                    first.getCausal() ? int64_t{1} : int64_t{0}}));
    if (failed(fn.insertArgument(index, tableType, attrs.getDictionary(ctx), fn.getLoc())))
      return signalPassFailure();
    Value table = fn.getArgument(index);

    for (TopKOp op : ops) {
      OpBuilder ob(op);
      Location loc = op.getLoc();
      Value bq = arith::ConstantIndexOp::create(ob, loc, static_cast<int64_t>(op.getBlockQ()));
      Value bk = arith::ConstantIndexOp::create(ob, loc, static_cast<int64_t>(op.getBlockK()));
      Value qb = arith::FloorDivSIOp::create(ob, loc, op.getI(), bq);
      Value kb = arith::FloorDivSIOp::create(ob, loc, op.getJ(), bk);
      Value entry = ReadOp::create(ob, loc, ob.getI32Type(), table,
                                   ValueRange{op.getB(), op.getH(), qb, kb});
      Value zero = arith::ConstantIntOp::create(ob, loc, 0, 32);
      Value keep = arith::CmpIOp::create(ob, loc, arith::CmpIPredicate::ne, entry, zero);
      op.replaceAllUsesWith(keep);
      auto parent = cast<AttentionOp>(op->getParentOp());
      op.erase();
      if (!parent.isExtra(table))
        parent.getExtrasMutable().append(table);
    }
  }
};
} // namespace

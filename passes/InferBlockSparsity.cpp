//===- InferBlockSparsity.cpp - Classify attention tiles --------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// For static lengths, classifies every (query tile, key tile) of the
// schedule as EMPTY, FULL or PARTIAL at compile time and records the plan on
// the op. The bounds come from the same interval evaluation of the mask the
// CPU kernel runs per tile (TileIntervals), folded to constants here, so the
// compile-time plan and the run-time skipping cannot disagree.
//
//===----------------------------------------------------------------------===//

#include "dialects/attn/AttnOps.h"
#include "passes/Passes.h"
#include "passes/TileIntervals.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/Format.h"

namespace attnc {
#define GEN_PASS_DEF_ATTNINFERBLOCKSPARSITYPASS
#include "passes/Passes.h.inc"
} // namespace attnc

using namespace mlir;
using namespace attnc::attn;

namespace {
enum TileKind : int8_t { kEmpty = 0, kPartial = 1, kFull = 2 };

std::string percent(int64_t part, int64_t total) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::format("%.1f", 100.0 * part / total);
  return text;
}

/// Why the plan must wait for run time, or "" when it can be made now.
std::string runTimeReason(AttentionOp op, int64_t tiles, int64_t maxTiles) {
  Region &mask = op.getMask();
  if (op.isPaged())
    return "each sequence has its own length (paged keys and values)";
  if (ShapedType::isDynamic(op.getQuery().getType().getDimSize(2)) ||
      ShapedType::isDynamic(op.getKey().getType().getDimSize(2)))
    return "the query or key length is symbolic";
  if (!mask.getArgument(0).use_empty() || !mask.getArgument(1).use_empty())
    return "the mask depends on the batch or head index";
  bool usesExtras = false;
  mask.walk([&](Operation *inner) {
    for (Value v : inner->getOperands())
      usesExtras |= op.isExtra(v) && !matchPattern(v, m_Constant());
  });
  if (usesExtras)
    return "the mask reads runtime parameters or tensors";
  if (tiles > maxTiles)
    return "the plan would have " + std::to_string(tiles) + " tiles (limit " +
           std::to_string(maxTiles) + ")";
  return "";
}

struct AttnInferBlockSparsityPass
    : attnc::impl::AttnInferBlockSparsityPassBase<AttnInferBlockSparsityPass> {
  using Base::Base;

  void runOnOperation() override {
    getOperation().walk([&](AttentionOp op) {
      if (failed(plan(op)))
        signalPassFailure();
    });
  }

  LogicalResult plan(AttentionOp op) {
    ScheduleAttr schedule = op.getScheduleAttr();
    if (!schedule)
      return op.emitOpError("has no schedule; run attn-select-schedule first");
    if (op.getMask().empty()) {
      op.emitRemark("block plan: no mask, every tile is FULL");
      return success();
    }
    int64_t s = op.getQuery().getType().getDimSize(2);
    int64_t t = op.getKey().getType().getDimSize(2);
    int64_t bq = schedule.getBlockQ(), bk = schedule.getBlockK();
    int64_t nq = ShapedType::isDynamic(s) ? 0 : (s + bq - 1) / bq;
    int64_t nk = ShapedType::isDynamic(t) ? 0 : (t + bk - 1) / bk;
    std::string reason = runTimeReason(op, nq * nk, maxTiles);
    if (!reason.empty()) {
      op.emitRemark("block plan: tiles are classified at run time: ") << reason;
      return success();
    }

    // Emit every tile's interval evaluation into a scratch function whose
    // arguments stand for the sizes not known statically, fold it, and read
    // the two bits per tile off its return.
    MLIRContext *ctx = op.getContext();
    Location loc = op.getLoc();
    OwningOpRef<ModuleOp> scratch = ModuleOp::create(loc);
    OpBuilder top(ctx);
    top.setInsertionPointToEnd(scratch->getBody());
    SmallVector<Type> sizeTypes(7, top.getIndexType());
    auto fn = func::FuncOp::create(top, loc, "plan",
                                   top.getFunctionType(sizeTypes, {}));
    Block *body = fn.addEntryBlock();
    ImplicitLocOpBuilder b(loc, ctx);
    b.setInsertionPointToStart(body);
    auto q = op.getQuery().getType(), k = op.getKey().getType(),
         v = op.getValue().getType();
    int64_t staticSizes[7] = {q.getDimSize(0), q.getDimSize(1), k.getDimSize(1),
                              s, t, q.getDimSize(3), v.getDimSize(3)};
    SmallVector<Value> sizes;
    for (int n = 0; n < 7; ++n)
      sizes.push_back(ShapedType::isDynamic(staticSizes[n])
                          ? Value(body->getArgument(n))
                          : arith::ConstantIndexOp::create(b, staticSizes[n]).getResult());
    int64_t offset = op.getAlign() == QueryAlign::end ? t - s : 0;
    SmallVector<Value> bits;
    Value zero = arith::ConstantIndexOp::create(b, 0);
    for (int64_t qt = 0; qt < nq; ++qt)
      for (int64_t kt = 0; kt < nk; ++kt) {
        auto c = [&](int64_t x) -> Value { return arith::ConstantIndexOp::create(b, x); };
        attnc::TileBox box{zero, zero,
                           c(qt * bq + offset), c(std::min(s, (qt + 1) * bq) - 1 + offset),
                           c(kt * bk), c(std::min(t, (kt + 1) * bk) - 1)};
        attnc::TileClass cls = attnc::classifyTile(
            b, op.getMask(), box, [&](int kind) { return sizes[kind]; });
        bits.push_back(cls.mayKeep);
        bits.push_back(cls.mayDrop);
      }
    func::ReturnOp::create(b, bits);
    fn.setFunctionType(top.getFunctionType(sizeTypes, ValueRange(bits).getTypes()));
    PassManager pm(ctx);
    pm.addPass(createCanonicalizerPass());
    if (failed(pm.run(*scratch)))
      return op.emitOpError("block plan: folding the tile bounds failed");

    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
    auto isFalse = [](Value v) { return matchPattern(v, m_Zero()); };
    SmallVector<int8_t> kinds;
    int64_t counts[3] = {0, 0, 0};
    SmallVector<int64_t> ranges; // per query tile: first and one-past-last key tile
    for (int64_t qt = 0; qt < nq; ++qt) {
      int64_t first = nk, last = -1;
      for (int64_t kt = 0; kt < nk; ++kt) {
        size_t n = 2 * (qt * nk + kt);
        TileKind kind = isFalse(ret.getOperand(n))       ? kEmpty
                        : isFalse(ret.getOperand(n + 1)) ? kFull
                                                         : kPartial;
        kinds.push_back(kind);
        ++counts[kind];
        if (kind != kEmpty) {
          first = std::min(first, kt);
          last = kt;
        }
      }
      ranges.push_back(last < 0 ? 0 : first);
      ranges.push_back(last + 1);
    }
    Builder attrs(ctx);
    op->setAttr("attn.block_plan",
                DenseElementsAttr::get(
                    RankedTensorType::get({nq, nk}, attrs.getIntegerType(8)),
                    ArrayRef<int8_t>(kinds)));
    op->setAttr("attn.key_tile_ranges", attrs.getDenseI64ArrayAttr(ranges));
    int64_t total = nq * nk;
    op.emitRemark() << "block plan: " << nq << " x " << nk << " tiles of " << bq
                    << " x " << bk << ": " << counts[kEmpty] << " EMPTY, "
                    << counts[kPartial] << " PARTIAL, " << counts[kFull]
                    << " FULL; " << percent(counts[kEmpty], total)
                    << "% of tiles skipped";
    return success();
  }
};
} // namespace

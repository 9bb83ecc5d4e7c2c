//===- AttnCanonicalize.cpp - Canonical form of attn.attention --*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A canonical attention op carries no region that does nothing and no extra
// that nothing reads, so that later passes see the variant at its simplest:
// a mask folded to `true` disappears, and with it every mask evaluation in
// the kernels.
//
//===----------------------------------------------------------------------===//

#include "dialects/attn/AttnOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace attnc::attn;

namespace {
/// Empties a score or gate region that yields its first argument unchanged,
/// and a mask region that yields the constant `true`.
struct DropIdentityRegions : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    bool changed = false;
    auto dropIf = [&](Region &region, auto isIdentity) {
      Value yielded = yieldedValue(region);
      if (!yielded || !isIdentity(region, yielded))
        return;
      rewriter.modifyOpInPlace(op, [&] { rewriter.eraseBlock(&region.front()); });
      changed = true;
    };
    auto yieldsFirstArg = [](Region &region, Value yielded) {
      return yielded == region.front().getArgument(0);
    };
    dropIf(op.getScore(), yieldsFirstArg);
    dropIf(op.getGate(), yieldsFirstArg);
    dropIf(op.getMask(), [](Region &, Value yielded) {
      return matchPattern(yielded, m_One());
    });
    return success(changed);
  }
};

/// Removes extras that no region reads.
struct DropUnusedExtras : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    llvm::SmallDenseSet<Value> used;
    op->walk([&](Operation *inner) {
      if (inner != op.getOperation())
        used.insert(inner->getOperands().begin(), inner->getOperands().end());
    });
    SmallVector<unsigned> unused;
    for (auto [i, extra] : llvm::enumerate(op.getExtras()))
      if (!used.contains(extra))
        unused.push_back(i);
    if (unused.empty())
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      for (unsigned i : llvm::reverse(unused))
        op.getExtrasMutable().erase(i);
    });
    return success();
  }
};
} // namespace

void AttentionOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<DropIdentityRegions, DropUnusedExtras>(context);
}

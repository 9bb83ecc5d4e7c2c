//===- ApproximateMath.cpp - Inline polynomial exp/log/tanh -----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// LLVM lowers math.exp on a vector to one libm call per lane. The softmax
// weights are the kernels' hottest transcendental, so they are replaced by
// inline polynomial approximations (a few ulp in f32) that vectorize.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace attnc {
#define GEN_PASS_DEF_ATTNAPPROXIMATEMATHPASS
#include "passes/Passes.h.inc"
} // namespace attnc

using namespace mlir;

namespace {
struct AttnApproximateMathPass
    : attnc::impl::AttnApproximateMathPassBase<AttnApproximateMathPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) {
          return name == "math.exp" || name == "math.log" || name == "math.tanh";
        });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace

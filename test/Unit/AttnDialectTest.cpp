//===- AttnDialectTest.cpp - Building attn IR from C++ ----------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Builds attention ops through the C++ API, as a host program would, and
// checks that the verifier accepts good ones and names the fault in bad ones.
//
//===----------------------------------------------------------------------===//

#include "compiler/Registration.h"
#include "dialects/attn/AttnOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace attnc::attn;

namespace {
class AttnDialectTest : public ::testing::Test {
protected:
  AttnDialectTest() {
    DialectRegistry registry;
    attnc::registerAttncDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
  }

  /// Builds func @f with one attention op over [1, hq, 16, 8] queries and
  /// [1, hkv, 16, 8] keys, with a causal mask when `causal` is set.
  OwningOpRef<ModuleOp> build(int64_t hq, int64_t hkv, bool causal) {
    OpBuilder b(&ctx);
    Location loc = b.getUnknownLoc();
    OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
    b.setInsertionPointToEnd(module->getBody());
    Type f32 = b.getF32Type();
    auto qt = MemRefType::get({1, hq, 16, 8}, f32);
    auto kt = MemRefType::get({1, hkv, 16, 8}, f32);
    auto fn = func::FuncOp::create(b, loc, "f",
                                   b.getFunctionType({qt, kt, kt, qt}, {}));
    Block *entry = fn.addEntryBlock();
    b.setInsertionPointToStart(entry);
    auto op = AttentionOp::create(
        b, loc, entry->getArgument(0), entry->getArgument(1),
        entry->getArgument(2), entry->getArgument(3), /*lse=*/Value(),
        /*extras=*/ValueRange(), /*pageTable=*/Value(), /*seqLens=*/Value(),
        /*keyScale=*/Value(), /*valueScale=*/Value(),
        KernelKindAttr::get(&ctx, KernelKind::softmax),
        QueryAlignAttr::get(&ctx, QueryAlign::start),
        b.getF64FloatAttr(0.125), /*schedule=*/ScheduleAttr(), /*kvQuant=*/KVQuantAttr());
    if (causal) {
      Type idx = b.getIndexType();
      Block *mask = b.createBlock(&op.getMask(), {}, {idx, idx, idx, idx},
                                  {loc, loc, loc, loc});
      Value keep = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule,
                                         mask->getArgument(3),
                                         mask->getArgument(2));
      YieldOp::create(b, loc, keep);
    }
    b.setInsertionPointToEnd(entry);
    func::ReturnOp::create(b, loc);
    return module;
  }

  /// Verifies `module` and returns the first error message, or "" when valid.
  std::string verifyError(ModuleOp module) {
    std::string message;
    ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
      if (message.empty())
        message = diag.str();
      return success();
    });
    return failed(verify(module)) ? (message.empty() ? "?" : message) : "";
  }

  MLIRContext ctx;
};
} // namespace

TEST_F(AttnDialectTest, CausalGqaVerifies) {
  auto module = build(/*hq=*/8, /*hkv=*/2, /*causal=*/true);
  EXPECT_EQ(verifyError(*module), "");
  AttentionOp op;
  module->walk([&](AttentionOp found) { op = found; });
  ASSERT_TRUE(op);
  EXPECT_EQ(op.getStaticGroupSize(), 4);
  EXPECT_FALSE(op.getMask().empty());
  EXPECT_TRUE(op.getScore().empty());
}

TEST_F(AttnDialectTest, GqaIndivisibleIsRejected) {
  auto module = build(/*hq=*/6, /*hkv=*/4, /*causal=*/false);
  EXPECT_EQ(verifyError(*module),
            "'attn.attention' op expects the query heads (6) to be a multiple "
            "of the KV heads (4) for grouped-query attention");
}

TEST_F(AttnDialectTest, ScheduleAttrRejectsZeroTile) {
  std::string message;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  auto emit = [&]() { return emitError(UnknownLoc::get(&ctx)); };
  EXPECT_TRUE(failed(ScheduleAttr::verify(emit, 0, 64)));
  EXPECT_EQ(message, "expects positive tile sizes, got block_q = 0 and block_k = 64");
  EXPECT_TRUE(succeeded(ScheduleAttr::verify(emit, 64, 64)));
}

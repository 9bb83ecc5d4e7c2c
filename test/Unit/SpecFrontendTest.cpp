//===- SpecFrontendTest.cpp - The spec frontend through its C++ API -------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Calls attnc::parseSpec as a host program would: valid specs give a module
// that verifies, invalid ones give null and diagnostics at the right place.
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/SpecFrontend.h"
#include "compiler/Registration.h"
#include "dialects/attn/AttnOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace mlir;

namespace {
/// One diagnostic as the test sees it.
struct Seen {
  std::string message;
  unsigned line = 0, col = 0;
};

class SpecFrontendTest : public ::testing::Test {
protected:
  SpecFrontendTest() {
    DialectRegistry registry;
    attnc::registerAttncDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.getDiagEngine().registerHandler([this](Diagnostic &diag) {
      Seen s{diag.str()};
      if (auto loc = dyn_cast<FileLineColLoc>(diag.getLocation())) {
        s.line = loc.getLine();
        s.col = loc.getColumn();
      }
      if (diag.getSeverity() == DiagnosticSeverity::Error)
        errors.push_back(s);
      return success();
    });
  }

  OwningOpRef<ModuleOp> parse(llvm::StringRef text,
                              const attnc::SpecOptions &opts = {}) {
    sm = std::make_unique<llvm::SourceMgr>();
    sm->AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(text, "test.attn"), llvm::SMLoc());
    return attnc::parseSpec(*sm, &ctx, opts);
  }

  MLIRContext ctx;
  std::unique_ptr<llvm::SourceMgr> sm;
  std::vector<Seen> errors;
};

constexpr llvm::StringLiteral kWindow = R"(
attention window(q: f32[B, 8, S, 64], k: f32[B, 2, S, 64], v: f32[B, 2, S, 64])
    -> (o: f32[B, 8, S, 64]) {
  param w: i32 = 16
  mask(b, h, i, j) = j <= i && i - j < w
}
)";
} // namespace

TEST_F(SpecFrontendTest, BuildsAVerifiedModule) {
  OwningOpRef<ModuleOp> module = parse(kWindow);
  ASSERT_TRUE(module);
  EXPECT_TRUE(errors.empty());
  EXPECT_TRUE(succeeded(verify(*module)));

  auto fn = module->lookupSymbol<func::FuncOp>("window");
  ASSERT_TRUE(fn);
  // q, k, v, w, o.
  EXPECT_EQ(fn.getNumArguments(), 5u);
  EXPECT_TRUE(fn.getArgument(3).getType().isInteger(32));
  auto ops = fn.getOps<attnc::attn::AttentionOp>();
  ASSERT_EQ(std::distance(ops.begin(), ops.end()), 1);
  attnc::attn::AttentionOp op = *ops.begin();
  EXPECT_EQ(op.getStaticGroupSize(), 4);
  EXPECT_EQ(op.getExtras().size(), 1u);
  EXPECT_FALSE(op.getMask().empty());
  EXPECT_TRUE(op.getScore().empty());
  EXPECT_DOUBLE_EQ(op.getScale().convertToDouble(), 0.125);
}

TEST_F(SpecFrontendTest, AppliesDimensionOptions) {
  attnc::SpecOptions opts;
  opts.dims["S"] = 512;
  OwningOpRef<ModuleOp> module = parse(kWindow, opts);
  ASSERT_TRUE(module);
  auto fn = module->lookupSymbol<func::FuncOp>("window");
  auto q = cast<MemRefType>(fn.getArgument(0).getType());
  EXPECT_TRUE(q.isDynamicDim(0));
  EXPECT_EQ(q.getDimSize(2), 512);
}

TEST_F(SpecFrontendTest, RejectsUnknownDimensionOption) {
  attnc::SpecOptions opts;
  opts.dims["SS"] = 512;
  EXPECT_FALSE(parse(kWindow, opts));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "-D SS=512: the spec has no dimension named "
                               "'SS'; did you mean 'S'?");
}

TEST_F(SpecFrontendTest, ReportsErrorsAtTheirToken) {
  EXPECT_FALSE(parse(R"(attention f(q: f32[1, 2, 3, 4], k: f32[1, 2, 3, 4],
                                     v: f32[1, 2, 3, 4]) -> (o: f32[1, 2, 3, 4]) {
  mask(b, h, i, j) = i < jj
})"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "unknown name 'jj'");
  EXPECT_EQ(errors[0].line, 3u);
  EXPECT_EQ(errors[0].col, 26u);
}

TEST_F(SpecFrontendTest, StopsAfterTwentyErrors) {
  std::string text = "attention f(q: f32[1, 2, 3, 4], k: f32[1, 2, 3, 4], "
                     "v: f32[1, 2, 3, 4]) -> (o: f32[1, 2, 3, 4]) {\n";
  for (int n = 0; n < 50; ++n)
    text += "  bogus = 1\n";
  text += "}\n";
  EXPECT_FALSE(parse(text));
  ASSERT_EQ(errors.size(), 21u);
  EXPECT_EQ(errors.back().message, "too many errors (20); stopping here");
}

TEST_F(SpecFrontendTest, SurvivesHostileInput) {
  // Deep nesting, a NUL byte and a truncated header: errors, no crash.
  std::string deep = "attention f(q: f32[1,1,1,1], k: f32[1,1,1,1], "
                     "v: f32[1,1,1,1]) -> (o: f32[1,1,1,1]) {\n  mask(b, h, "
                     "i, j) = " +
                     std::string(100000, '(') + "\n}\n";
  EXPECT_FALSE(parse(deep));
  EXPECT_FALSE(parse(llvm::StringRef("attention\0f", 11)));
  EXPECT_FALSE(parse("attention f(q: f32["));
  EXPECT_FALSE(parse(""));
}

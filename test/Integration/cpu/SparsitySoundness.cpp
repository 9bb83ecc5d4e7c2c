//===- SparsitySoundness.cpp - Block plans never drop a visible pair -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// For every spec given, at many random query/key lengths, tile shapes and
// parameter values: builds the compile-time block plan
// (attn-infer-block-sparsity) and checks every (i, j) of every tile against
// the reference's interpretation of the mask: no visible pair in an EMPTY
// tile, no masked pair in a FULL tile. Parameters are baked in as constants
// so that masks with runtime windows are planned too. The CPU kernel bounds
// tiles with the same interval code at run time, so this covers it as well.
// Prints "N passed, N failed" last.
//
//===----------------------------------------------------------------------===//

#include "compiler/Compile.h"
#include "compiler/Reference.h"
#include "dialects/attn/AttnOps.h"
#include "passes/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdio>
#include <random>

using namespace mlir;
using namespace attnc;

namespace {
struct Case {
  int64_t s, t, bq, bk;
  std::map<std::string, int64_t> params;
};

/// Loads `path` with the query and key lengths fixed, bakes params in, sets
/// the tile shape and runs the plan. Returns the op, or null.
attn::AttentionOp planned(MLIRContext &ctx, const std::string &path,
                          Case &c, OwningOpRef<ModuleOp> &module,
                          std::string &why) {
  // First pass: find the names of the query and key length dims.
  auto load = [&](const std::map<std::string, int64_t> &dims) {
    llvm::SourceMgr sm;
    auto buffer = llvm::MemoryBuffer::getFile(path);
    if (!buffer)
      return OwningOpRef<ModuleOp>();
    sm.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
    ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
    return loadAttnModule(ctx, sm, dims);
  };
  OwningOpRef<ModuleOp> probe = load({});
  if (!probe) {
    why = "cannot load";
    return {};
  }
  func::FuncOp fn = findKernelFunc(*probe);
  KernelInfo info = extractKernelInfo(fn);
  // Static lengths stay; one symbol for both lengths means S = T.
  const ArgInfo &q = info.args[0], &k = info.args[1];
  if (q.dims[2] >= 0)
    c.s = q.dims[2];
  if (k.dims[2] >= 0)
    c.t = k.dims[2];
  else if (q.dims[2] < 0 && k.dimNames[2] == q.dimNames[2])
    c.t = c.s;
  if (c.s * c.t > 400000) {
    why = "too large to check exhaustively";
    return {};
  }
  std::map<std::string, int64_t> dims;
  if (q.dims[2] < 0)
    dims[q.dimNames[2]] = c.s;
  if (k.dims[2] < 0)
    dims[k.dimNames[2]] = c.t;
  module = load(dims);
  if (!module) {
    why = "cannot load with the lengths";
    return {};
  }
  fn = findKernelFunc(*module);
  attn::AttentionOp op = findAttention(fn);
  if (op.getQuery().getType().getDimSize(2) != c.s ||
      op.getKey().getType().getDimSize(2) != c.t) {
    why = "static lengths differ";
    return {};
  }
  // Bake scalar params in as constants.
  OpBuilder b(&ctx);
  b.setInsertionPointToStart(&fn.getBody().front());
  for (BlockArgument arg : fn.getArguments()) {
    if (isa<MemRefType>(arg.getType()))
      continue;
    auto name = fn.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "attn.name");
    auto it = c.params.find(name ? name.str() : "");
    if (it == c.params.end())
      continue;
    Value cst = arith::ConstantOp::create(
        b, fn.getLoc(), IntegerAttr::get(arg.getType(), it->second));
    arg.replaceAllUsesWith(cst);
  }
  op.setScheduleAttr(attn::ScheduleAttr::get(&ctx, c.bq, c.bk));
  PassManager pm(&ctx);
  pm.addNestedPass<func::FuncOp>(createAttnInferBlockSparsityPass());
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  if (failed(pm.run(*module))) {
    why = "the pass failed";
    return {};
  }
  return op;
}
} // namespace

int main(int argc, char **argv) {
  MLIRContext ctx(MLIRContext::Threading::DISABLED);
  prepareContext(ctx);
  std::mt19937 rng(2026);
  int passed = 0, failed = 0;
  for (int a = 1; a < argc; ++a) {
    std::string path = argv[a];
    int planned_ = 0, checkedTiles = 0, emptyTiles = 0, fullTiles = 0;
    bool specFailed = false;
    for (int trial = 0; trial < 40 && !specFailed; ++trial) {
      Case c;
      c.s = 1 + rng() % 200;
      c.t = c.s + rng() % 120;
      c.bq = 1 + rng() % 70;
      c.bk = 1 + rng() % 70;
      c.params = {{"window", 1 + rng() % 150}, {"sinks", rng() % 8},
                  {"recent", 1 + rng() % 100}, {"chunk", 1 + rng() % 64},
                  {"prompt", 1 + rng() % 150}, {"carry", rng() % 60}};
      OwningOpRef<ModuleOp> module;
      std::string why;
      attn::AttentionOp op = planned(ctx, path, c, module, why);
      if (!op)
        continue;
      auto plan = op->getAttrOfType<DenseElementsAttr>("attn.block_plan");
      if (!plan)
        continue; // classified at run time (data-dependent mask)
      ++planned_;
      // Reference arguments: tensors are never read by these masks.
      std::vector<ArgValue> args;
      func::FuncOp fn = op->getParentOfType<func::FuncOp>();
      for (BlockArgument arg : fn.getArguments()) {
        ArgValue v;
        v.isTensor = isa<MemRefType>(arg.getType());
        args.push_back(v);
      }
      std::string error;
      auto oracle = MaskOracle::create(op, args, error);
      if (!oracle) {
        std::printf("FAIL %s: %s\n", path.c_str(), error.c_str());
        specFailed = true;
        break;
      }
      int64_t offset = op.getAlign() == attn::QueryAlign::end ? c.t - c.s : 0;
      int64_t nq = (c.s + c.bq - 1) / c.bq, nk = (c.t + c.bk - 1) / c.bk;
      auto kinds = llvm::to_vector(plan.getValues<int8_t>());
      for (int64_t qt = 0; qt < nq && !specFailed; ++qt)
        for (int64_t kt = 0; kt < nk && !specFailed; ++kt) {
          int8_t kind = kinds[qt * nk + kt];
          ++checkedTiles;
          emptyTiles += kind == 0;
          fullTiles += kind == 2;
          for (int64_t r = qt * c.bq; r < std::min(c.s, (qt + 1) * c.bq); ++r)
            for (int64_t j = kt * c.bk; j < std::min(c.t, (kt + 1) * c.bk); ++j) {
              bool keep;
              if (!oracle->keep(0, 0, r + offset, j, keep, error)) {
                std::printf("FAIL %s: %s\n", path.c_str(), error.c_str());
                specFailed = true;
                break;
              }
              if ((kind == 0 && keep) || (kind == 2 && !keep)) {
                std::printf("FAIL %s: S=%lld T=%lld tiles %lldx%lld: tile (%lld, %lld) is %s "
                            "but (i=%lld, j=%lld) is %s\n",
                            path.c_str(), (long long)c.s, (long long)c.t, (long long)c.bq,
                            (long long)c.bk, (long long)qt, (long long)kt,
                            kind == 0 ? "EMPTY" : "FULL", (long long)(r + offset),
                            (long long)j, keep ? "visible" : "masked");
                specFailed = true;
                break;
              }
            }
        }
    }
    std::printf("%s %-40s %2d plans, %6d tiles checked exhaustively (%d EMPTY, %d FULL)\n",
                specFailed ? "FAIL" : "PASS", path.c_str(), planned_, checkedTiles,
                emptyTiles, fullTiles);
    (specFailed ? failed : passed) += 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

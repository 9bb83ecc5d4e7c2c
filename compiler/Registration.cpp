//===- Registration.cpp - Dialects and passes attnc tools load --*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "compiler/Registration.h"
#include "dialects/attn/AttnDialect.h"
#include "passes/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void attnc::registerAttncDialects(mlir::DialectRegistry &registry) {
  registry.insert<attn::AttnDialect, mlir::arith::ArithDialect,
                  mlir::math::MathDialect, mlir::memref::MemRefDialect,
                  mlir::func::FuncDialect>();
}

void attnc::registerAttncPasses() {
  registerAttnPasses();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
}

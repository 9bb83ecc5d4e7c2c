//===- Registration.cpp - Dialects and passes attnc tools load --*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "compiler/Registration.h"
#include "dialects/attn/AttnDialect.h"
#include "passes/Passes.h"
#include "passes/Pipelines.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void attnc::registerAttncDialects(mlir::DialectRegistry &registry) {
  registry.insert<attn::AttnDialect, mlir::arith::ArithDialect,
                  mlir::math::MathDialect, mlir::memref::MemRefDialect,
                  mlir::func::FuncDialect, mlir::scf::SCFDialect,
                  mlir::vector::VectorDialect, mlir::cf::ControlFlowDialect,
                  mlir::LLVM::LLVMDialect>();
}

void attnc::registerAttncPasses() {
  registerAttnPasses();
  registerAttnPipelines();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
}

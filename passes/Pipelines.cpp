//===- Pipelines.cpp - attnc pass pipelines ---------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "passes/Pipelines.h"
#include "passes/Passes.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void attnc::buildAttnToCPUPipeline(OpPassManager &pm,
                                   const AttnToCPUPipelineOptions &options) {
  pm.addPass(createCanonicalizerPass());
  AttnSelectSchedulePassOptions schedule;
  schedule.target = "cpu";
  schedule.amx = options.amx;
  pm.addNestedPass<func::FuncOp>(createAttnSelectSchedulePass(schedule));
  ConvertAttnToCPUPassOptions lower;
  lower.vectorWidth = options.vectorWidth;
  lower.skipTiles = options.skipTiles;
  lower.amx = options.amx;
  lower.amxDot = options.amxDot;
  lower.int8Dot = options.int8Dot;
  lower.bf16Dot = options.bf16Dot;
  lower.fastExp = options.fastExp;
  lower.keyCacheFloats = options.keyCacheFloats;
  pm.addNestedPass<func::FuncOp>(createConvertAttnToCPUPass(lower));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (!options.toLLVM)
    return;
  // Vector exp/log/tanh become inline polynomials; what is left without an
  // LLVM intrinsic (rsqrt, ...) is expanded.
  pm.addNestedPass<func::FuncOp>(createAttnApproximateMathPass());
  pm.addNestedPass<func::FuncOp>(math::createMathExpandOpsPass());
  pm.addPass(createSCFToControlFlowPass());
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.amx = options.amx;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void attnc::registerAttnPipelines() {
  PassPipelineRegistration<AttnToCPUPipelineOptions>(
      "attn-to-cpu-pipeline",
      "Lower attn IR to CPU loops and, unless to-llvm=false, to LLVM",
      buildAttnToCPUPipeline);
}

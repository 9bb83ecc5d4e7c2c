//===- Pipelines.h - attnc pass pipelines -----------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The pipelines that take attn IR to a target. attnc, the JIT and attnc-opt
// all build them through these functions, so they cannot drift apart.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_PIPELINES_H
#define ATTNC_PASSES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace attnc {

struct AttnToCPUPipelineOptions
    : mlir::PassPipelineOptions<AttnToCPUPipelineOptions> {
  Option<int64_t> vectorWidth{*this, "vector-width",
                              llvm::cl::desc("f32 lanes per vector"),
                              llvm::cl::init(16)};
  Option<bool> skipTiles{*this, "skip-tiles",
                         llvm::cl::desc("Skip EMPTY key tiles, unmask FULL ones"),
                         llvm::cl::init(true)};
  Option<bool> amx{*this, "amx",
                   llvm::cl::desc("AMX tiles for bf16 prefill (convert-attn-to-cpu)"),
                   llvm::cl::init(false)};
  Option<bool> amxDot{*this, "amx-dot",
                      llvm::cl::desc("With amx: the products as AVX512-BF16 dot products"),
                      llvm::cl::init(false)};
  Option<std::string> int8Dot{
      *this, "int8-dot",
      llvm::cl::desc("Decode scores over quantized keys as VNNI int8 dot products: off, q4 or all"),
      llvm::cl::init("off")};
  Option<bool> bf16Dot{*this, "bf16-dot",
                       llvm::cl::desc("Decode scores over bf16 keys as AVX512-BF16 dot products"),
                       llvm::cl::init(false)};
  Option<bool> fastExp{*this, "fast-exp",
                       llvm::cl::desc("Softmax and sigmoid weights through vreduceps/vscalefps (AVX-512)"),
                       llvm::cl::init(false)};
  Option<int64_t> keyCacheFloats{
      *this, "key-cache-floats",
      llvm::cl::desc("Floats of the per-call cache of one head's transposed K tiles"),
      llvm::cl::init(int64_t(1) << 21)};
  Option<bool> toLLVM{*this, "to-llvm",
                      llvm::cl::desc("Continue to the LLVM dialect"),
                      llvm::cl::init(true)};
};

/// attn IR -> loops (scf/vector/memref) -> LLVM dialect when `toLLVM`.
void buildAttnToCPUPipeline(mlir::OpPassManager &pm,
                            const AttnToCPUPipelineOptions &options);

/// Registers `attn-to-cpu-pipeline` for attnc-opt.
void registerAttnPipelines();

} // namespace attnc

#endif // ATTNC_PASSES_PIPELINES_H

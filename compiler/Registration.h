//===- Registration.h - Dialects and passes attnc tools load ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// One place that says which dialects and passes make up attnc, shared by
// attnc-opt, attnc and the JIT so that they never disagree.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_REGISTRATION_H
#define ATTNC_COMPILER_REGISTRATION_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace attnc {
/// Adds the attn dialect and every upstream dialect attnc emits or lowers to.
void registerAttncDialects(mlir::DialectRegistry &registry);
/// Registers every attnc pass and pipeline, and the upstream passes attnc
/// pipelines use, with the global pass registry.
void registerAttncPasses();
} // namespace attnc

#endif // ATTNC_COMPILER_REGISTRATION_H

//===- SpecFrontend.h - The attention spec language frontend ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Public entry point of the `.attn` spec language: source text in, a module
// of `attn` IR out (one func.func holding one attn.attention per spec).
// The language is documented in docs/language.md.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_SPECFRONTEND_H
#define ATTNC_FRONTENDS_SPEC_SPECFRONTEND_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringMap.h"

#include <cstddef>
#include <cstdint>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace attnc {

/// Largest spec the frontend reads, in bytes.
inline constexpr size_t kMaxSpecBytes = size_t(1) << 20;
/// Largest size of one tensor dimension (literal or -D).
inline constexpr int64_t kMaxDimSize = (int64_t(1) << 31) - 1;

struct SpecOptions {
  /// Symbolic dimensions fixed at compile time (`attnc -D S=4096`). Each
  /// name must appear in the spec and each size must be in
  /// [1, kMaxDimSize].
  llvm::StringMap<int64_t> dims;
};

/// Parses the main buffer of `sm` and builds its specs as `attn` IR. Loads
/// the dialects it needs into `ctx`. On any error, reports every diagnostic
/// (up to 20) through `ctx`'s diagnostic engine, with FileLineColLocs into
/// the buffer, and returns null. The module is not verified here.
mlir::OwningOpRef<mlir::ModuleOp> parseSpec(llvm::SourceMgr &sm,
                                            mlir::MLIRContext *ctx,
                                            const SpecOptions &opts = {});

} // namespace attnc

#endif // ATTNC_FRONTENDS_SPEC_SPECFRONTEND_H

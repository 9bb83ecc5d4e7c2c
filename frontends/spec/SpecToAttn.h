//===- SpecToAttn.h - From a checked spec AST to attn IR --------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Internal to the frontend. checkSpec resolves and checks the declarations
// of one spec (shapes, dtypes, params, consts, settings, regions);
// emitSpec then builds its func.func with the attn.attention op and the
// regions, type-checking the region expressions as it goes.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_FRONTENDS_SPEC_SPECTOATTN_H
#define ATTNC_FRONTENDS_SPEC_SPECTOATTN_H

#include "dialects/attn/AttnDialect.h"
#include "frontends/spec/AST.h"
#include "frontends/spec/Semantics.h"
#include "frontends/spec/SpecFrontend.h"
#include "mlir/IR/Builders.h"

#include <string>

namespace attnc::spec {

class SpecDiagnostics;

/// A tensor with its types resolved and -D applied.
struct ResolvedTensor {
  const TensorDecl *decl = nullptr;
  mlir::Type elementType;
  llvm::SmallVector<int64_t> shape;         // ShapedType::kDynamic for symbols
  llvm::SmallVector<std::string> dimLabels; // for attn.dims
};

struct ResolvedParam {
  const ParamDecl *decl = nullptr;
  mlir::Type type;              // i32, i64 or f32
  ScalarKind kind;              // Int or Float
  mlir::Attribute defaultValue; // null without a default
};

struct CheckedSpec {
  const SpecDecl *decl = nullptr;
  ResolvedTensor q, k, v, o;
  std::optional<ResolvedTensor> lse;
  std::vector<ResolvedTensor> extras;
  std::vector<ResolvedParam> params;
  llvm::StringMap<ConstValue> consts;
  llvm::StringMap<llvm::SMLoc> constLocs;
  attn::KernelKind kernel = attn::KernelKind::softmax;
  attn::QueryAlign align = attn::QueryAlign::start;
  double scale = 1.0;
  const RegionDecl *score = nullptr, *mask = nullptr, *gate = nullptr;
  /// `kv = paged(table, lens[, k_scale, v_scale])`: the extras (indices
  /// into `extras`) that make the paged form, and the code format.
  struct PagedKV {
    int table = -1, lens = -1, keyScale = -1, valueScale = -1;
    std::optional<attn::KVQuant> quant;
  };
  std::optional<PagedKV> paged;
  /// Every dimension symbol the spec names.
  llvm::StringMap<llvm::SMLoc> dimSymbols;
};

/// Resolves the declarations of `spec`; fails after reporting every error
/// it found.
mlir::LogicalResult checkSpec(const SpecDecl &spec, const SpecOptions &opts,
                              SpecDiagnostics &diag, CheckedSpec &out);

/// Builds func.func @NAME for a checked spec at the builder's insertion
/// point; fails after reporting errors in region expressions.
mlir::LogicalResult emitSpec(const CheckedSpec &spec, SpecDiagnostics &diag,
                             mlir::OpBuilder &builder);

} // namespace attnc::spec

#endif // ATTNC_FRONTENDS_SPEC_SPECTOATTN_H

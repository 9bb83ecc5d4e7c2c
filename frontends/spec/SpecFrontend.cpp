//===- SpecFrontend.cpp - The attention spec language frontend ------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Runs the stages in order (size and encoding checks, parsing, -D checks,
// declaration checks, IR building) and stops at the first stage that
// reported an error, so that later stages never see a broken tree.
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/SpecFrontend.h"
#include "dialects/attn/AttnOps.h"
#include "frontends/spec/Lexer.h"
#include "frontends/spec/Parser.h"
#include "frontends/spec/SpecDiagnostics.h"
#include "frontends/spec/SpecToAttn.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace attnc;
using namespace attnc::spec;
using llvm::StringRef;

/// Checks the -D options against the dimension names the specs use.
static LogicalResult checkDimOptions(const SpecFile &file,
                                     const SpecOptions &opts,
                                     SpecDiagnostics &diag) {
  llvm::StringSet<> known;
  for (const SpecDecl &spec : file.specs)
    for (const auto *list : {&spec.inputs, &spec.outputs})
      for (const TensorDecl &t : *list)
        for (const DimDecl &d : t.dims)
          if (d.isSymbol())
            known.insert(d.symbol);
  SmallVector<StringRef> names;
  for (const auto &k : known)
    names.push_back(k.getKey());
  llvm::sort(names);

  // Report in name order so that the output does not depend on hashing.
  SmallVector<StringRef> given;
  for (const auto &d : opts.dims)
    given.push_back(d.getKey());
  llvm::sort(given);
  bool ok = true;
  for (StringRef name : given) {
    int64_t size = opts.dims.lookup(name);
    std::string flag = ("-D " + name + "=" + llvm::Twine(size)).str();
    if (!known.contains(name)) {
      std::optional<StringRef> guess = closestName(name, names);
      diag.errorNoLoc(
          flag + ": the spec has no dimension named '" + name + "'" +
          (guess ? ("; did you mean '" + *guess + "'?").str() : std::string()));
      ok = false;
    } else if (size < 1 || size > kMaxDimSize) {
      diag.errorNoLoc(flag + ": a dimension size must be between 1 and " +
                      llvm::Twine(kMaxDimSize));
      ok = false;
    }
  }
  return success(ok);
}

OwningOpRef<ModuleOp> attnc::parseSpec(llvm::SourceMgr &sm, MLIRContext *ctx,
                                       const SpecOptions &opts) {
  ctx->loadDialect<attn::AttnDialect, func::FuncDialect, arith::ArithDialect,
                   math::MathDialect>();
  unsigned bufferId = sm.getMainFileID();
  const llvm::MemoryBuffer *buffer = sm.getMemoryBuffer(bufferId);
  StringRef text = buffer->getBuffer();
  SpecDiagnostics diag(sm, bufferId, ctx);

  if (text.size() > kMaxSpecBytes) {
    diag.error(llvm::SMLoc::getFromPointer(text.begin()),
               "the spec is " + llvm::Twine(text.size()) +
                   " bytes; the limit is " + llvm::Twine(kMaxSpecBytes) +
                   " bytes (1 MiB)");
    return nullptr;
  }
  if (!Lexer::checkEncoding(text, diag))
    return nullptr;

  SpecFile file;
  Parser parser(text, diag);
  if (failed(parser.parseFile(file)) || diag.hadError())
    return nullptr;
  if (failed(checkDimOptions(file, opts, diag)))
    return nullptr;

  OwningOpRef<ModuleOp> module =
      ModuleOp::create(diag.getLoc(llvm::SMLoc::getFromPointer(text.begin())));
  OpBuilder builder(ctx);
  builder.setInsertionPointToEnd(module->getBody());
  // Spec names become symbols; they must be unique in the module.
  llvm::StringMap<llvm::SMLoc> names;
  for (const SpecDecl &spec : file.specs) {
    if (diag.stopped())
      break;
    auto [it, inserted] = names.try_emplace(spec.name.name, spec.name.loc);
    if (!inserted)
      diag.error(spec.name.loc, "redefinition of spec '" + spec.name.name + "'",
                 it->second, "first defined here");
    CheckedSpec checked;
    if (failed(checkSpec(spec, opts, diag, checked)))
      continue;
    (void)emitSpec(checked, diag, builder);
  }
  if (diag.hadError())
    return nullptr;
  return module;
}

//===- SpecFuzzer.cpp - libFuzzer entry point for the spec frontend -------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Feeds arbitrary bytes to attnc::parseSpec. Diagnostics are swallowed; a
// crash, a sanitizer report, a timeout or a module that comes back but
// fails mlir::verify is a frontend bug (the frontend must reject, with a
// diagnostic, every input it cannot turn into valid IR).
//
//===----------------------------------------------------------------------===//

#include "compiler/Registration.h"
#include "frontends/spec/SpecFrontend.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mlir::DialectRegistry registry;
  attnc::registerAttncDialects(registry);
  mlir::MLIRContext ctx(registry, mlir::MLIRContext::Threading::DISABLED);
  ctx.getDiagEngine().registerHandler([](mlir::Diagnostic &) {});

  llvm::SourceMgr sm;
  sm.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(data), size),
          "fuzz.attn"),
      llvm::SMLoc());
  mlir::OwningOpRef<mlir::ModuleOp> module = attnc::parseSpec(sm, &ctx);
  if (module && mlir::failed(mlir::verify(*module))) {
    llvm::errs() << "attnc-spec-fuzzer: parseSpec returned a module that "
                    "fails verification:\n";
    module->print(llvm::errs());
    std::abort();
  }
  return 0;
}

//===- JitCommon.h - What the CPU and CUDA JITs share -----------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Private to compiler/: the lock, disk cache helpers and phase timer of
// Jit.cpp (the CPU JIT and the API) and CudaJit.cpp (the CUDA JIT).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_JITCOMMON_H
#define ATTNC_COMPILER_JITCOMMON_H

#include "attnc/attnc.h"
#include "attnc/runtime/TopKSelect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace attnc {

/// Guards the JITs' in-memory caches and the CPU JIT.
std::mutex &jitMutex();

/// The disk cache folder of `options` ("" when off).
std::string cacheDirectory(const CompileOptions &options);

/// The disk cache's entries: `data`, then a trailer (a magic word and an
/// xxh3 of the key and the data), written atomically into `dir`. Reading
/// checks the trailer: a damaged, truncated or misplaced file is removed and
/// reads as a miss, so it is compiled afresh instead of loaded (a flipped
/// bit in code could otherwise crash the process).
void writeCacheEntry(const std::string &dir, const std::string &path, const std::string &key,
                     llvm::StringRef data);
std::optional<std::string> readCacheEntry(const std::string &path, const std::string &key);

/// Runs `work` on a thread of its own: the final tiers of kernels compiled
/// in two tiers. Finished threads are joined at the next start, the rest at
/// exit, before the JITs they load into are torn down.
void runInBackground(std::function<void()> work);

/// With $ATTNC_TIMING set, prints how long each compile phase took.
struct PhaseTimer {
  bool enabled = std::getenv("ATTNC_TIMING") != nullptr;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  void mark(const char *phase) {
    auto now = std::chrono::steady_clock::now();
    if (enabled)
      llvm::errs() << "attnc: " << phase << " "
                   << llvm::format("%.1f",
                                   std::chrono::duration<double, std::milli>(now - last).count())
                   << " ms\n";
    last = now;
  }
};

/// The CUDA JIT (CudaJit.cpp): emits `fn`'s kernel, then takes it from the
/// caches or compiles it with NVRTC (in two tiers on Hopper) and loads it.
/// `start` is when the compile began (for KernelInfo::compileMs).
Result<Kernel> compileCuda(mlir::func::FuncOp fn, KernelInfo info,
                           const std::optional<TopKParams> &topk, const CompileOptions &options,
                           const std::string &diagText, PhaseTimer &timer,
                           std::chrono::steady_clock::time_point start);

} // namespace attnc

#endif // ATTNC_COMPILER_JITCOMMON_H

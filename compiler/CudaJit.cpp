//===- CudaJit.cpp - The CUDA JIT: caches, NVRTC and compile tiers --------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// compileFile/compileString for Target::cuda: the kernel's source from the
// emitter, its cubin from the in-memory cache, the disk cache or NVRTC, and
// on Hopper two tiers: the two-CTA kernel returned at once while the
// warp-specialized one compiles on a background thread and takes over when
// loaded (CompiledKernel::current).
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/Cuda.h"
#include "compiler/BuildId.h"
#include "compiler/CompiledKernel.h"
#include "compiler/Compile.h"
#include "compiler/JitCommon.h"
#include "passes/AttnToCUDA.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SHA256.h"

#include <functional>
#include <thread>
#include <vector>

using namespace attnc;

namespace {
/// The architecture to compile CUDA for: the option, else the device's.
std::string cudaArchFor(const CompileOptions &options) {
  if (!options.cudaArch.empty())
    return options.cudaArch;
  // Hopper's own instructions (wgmma) need the arch-specific sm_90a.
  std::string error;
  int cc = cuda::init(error) ? cuda::computeCapability() : 90;
  return "sm_" + std::to_string(cc) + (cc == 90 ? "a" : "");
}

/// The caches' key of a CUDA source.
std::string sourceKey(const std::string &arch, const std::string &nvrtcVersion,
                      const std::string &source) {
  llvm::SHA256 sha;
  sha.update(ATTNC_VERSION_STRING "|" ATTNC_BUILD_ID "|cuda|");
  sha.update(arch + "|" + nvrtcVersion + "|");
  sha.update(source);
  return llvm::toHex(sha.final(), /*LowerCase=*/true).substr(0, 32);
}

/// Loaded CUDA kernels by source key (guarded by jitMutex). Never
/// destroyed, as cpuMemoryCache (Jit.cpp) says why.
llvm::StringMap<std::shared_ptr<CompiledKernel>> &cudaMemoryCache() {
  static auto &cache = *new llvm::StringMap<std::shared_ptr<CompiledKernel>>();
  return cache;
}

/// Quick tiers by the key of their final tier while it compiles (guarded
/// by jitMutex), so a second compile of the source waits for that one.
llvm::StringMap<std::shared_ptr<CompiledKernel>> &pendingFinalTiers() {
  static auto &pending = *new llvm::StringMap<std::shared_ptr<CompiledKernel>>();
  return pending;
}


/// The kernels of a cubin, as `layout` describes them.
std::shared_ptr<CompiledKernel> loadCudaKernel(const std::string &image, CudaKernel layout,
                                               std::string &error) {
  auto kernel = std::make_shared<CompiledKernel>();
  kernel->isCuda = true;
  std::string why;
  auto fail = [&](const std::string &what) {
    error = "attnc: " + what + why;
    return nullptr;
  };
  if (!cuda::loadFunction(image.data(), layout.entry.c_str(), kernel->function, why))
    return fail("cannot load the CUDA kernel: ");
  if (!cuda::setMaxDynamicSharedMemory(kernel->function, cuda::maxSharedMemoryPerBlock(), why))
    return fail("");
  if (layout.decode &&
      !cuda::loadFunction(image.data(), (layout.entry + "_combine").c_str(), kernel->combine,
                          why))
    return fail("cannot load the split-KV combine kernel: ");
  if (layout.classTable &&
      !cuda::loadFunction(image.data(), layout.classEntry().c_str(),
                          kernel->classes, why))
    return fail("cannot load the tile-class kernel: ");
  if (layout.topk &&
      (!cuda::loadFunction(image.data(), (layout.entry + "_topk_pool").c_str(),
                           kernel->topkPool, why) ||
       !cuda::loadFunction(image.data(), (layout.entry + "_topk").c_str(), kernel->topkSelect,
                           why) ||
       !cuda::setMaxDynamicSharedMemory(kernel->topkSelect, cuda::maxSharedMemoryPerBlock(),
                                        why)))
    return fail("cannot load the top-k selection kernels: ");
  layout.source.clear();
  kernel->layout = std::move(layout);
  return kernel;
}

/// Compiles, caches and loads the final tier of `upgrade` on a background
/// thread; the quick tier switches to it when `done` is set.
void startFinalTier(std::shared_ptr<KernelUpgrade> upgrade, CudaKernel layout, KernelInfo info,
                    std::optional<TopKParams> topk, std::string key, std::string arch,
                    std::string dir, std::string path) {
  runInBackground([=, layout = std::move(layout), info = std::move(info)]() mutable {
    std::string image, log, error;
    std::shared_ptr<CompiledKernel> final;
    if (!cuda::compile(layout.source, info.name + ".cu", arch, /*cubin=*/true, image, log)) {
      error = "attnc: internal error: NVRTC rejected the generated kernel:\n" + log;
    } else {
      writeCacheEntry(dir, path, key, image);
      final = loadCudaKernel(image, std::move(layout), error);
    }
    if (final) {
      final->info = std::move(info);
      final->topk = topk;
      std::lock_guard<std::mutex> lock(jitMutex());
      cudaMemoryCache()[key] = final;
      pendingFinalTiers().erase(key);
    }
    upgrade->finish(std::move(final), std::move(error));
  });
}

/// Emits the CUDA kernel of `fn`, compiles it with NVRTC (or takes the cubin
/// from the caches, keyed by a hash of the generated source) and loads it.
} // namespace

Result<Kernel> attnc::compileCuda(mlir::func::FuncOp fn, KernelInfo info,
                                  const std::optional<TopKParams> &topk,
                                  const CompileOptions &options, const std::string &diagText,
                                  PhaseTimer &timer, std::chrono::steady_clock::time_point start) {
  auto elapsedMs = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  };
  std::string arch = cudaArchFor(options);
  if (!cuda::archNumber(arch))
    return Status::error("attnc: CompileOptions::cudaArch must look like sm_90a or sm_80, got '" +
                         arch + "'");
  if (std::string archError; !cuda::nvrtcSupportsArch(arch, archError))
    return Status::error("attnc: CompileOptions::cudaArch: " + archError);
  CudaKernel layout;
  if (mlir::failed(emitCudaKernel(fn, arch, layout)))
    return Status::error(diagText);
  info.blockQ = layout.blockQ;
  info.blockK = layout.blockK;
  timer.mark("emit CUDA");
  std::string nvrtcError;
  std::string nvrtcVersion = cuda::nvrtcVersion(nvrtcError);
  std::string key = sourceKey(arch, nvrtcVersion, layout.source);

  std::lock_guard<std::mutex> lock(jitMutex());
  llvm::StringMap<std::shared_ptr<CompiledKernel>> &memoryCache = cudaMemoryCache();
  // A kernel of this compile from a loaded one: the source does not depend
  // on sizes fixed in the spec; the signature does: take this compile's.
  auto withThisSignature = [&](const CompiledKernel &loaded, bool fromCache) {
    auto kernel = std::make_shared<CompiledKernel>(loaded);
    kernel->info = info;
    kernel->info.blockQ = loaded.layout.blockQ;
    kernel->info.blockK = loaded.layout.blockK;
    kernel->info.fromCache = fromCache;
    kernel->info.quickTier = loaded.upgrade != nullptr;
    kernel->info.compileMs = elapsedMs();
    kernel->topk = topk;
    return kernel;
  };
  if (auto it = memoryCache.find(key); it != memoryCache.end())
    return Kernel(withThisSignature(*it->second, true));
  // The final tier of this source still compiling: its quick tier.
  llvm::StringMap<std::shared_ptr<CompiledKernel>> &pending = pendingFinalTiers();
  if (auto it = pending.find(key); it != pending.end()) {
    const CompiledKernel &current = it->second->current();
    if (!it->second->upgrade->done.load(std::memory_order_acquire) || &current != it->second.get())
      return Kernel(withThisSignature(current, true));
    pending.erase(it); // the final compile failed: compile again below
  }
  std::string error;
  if (!cuda::init(error))
    return Status::error("attnc: the CUDA target needs a GPU: " + error);
  if (nvrtcVersion.empty())
    return Status::error("attnc: " + nvrtcError);

  std::string dir = cacheDirectory(options);
  auto cachePath = [&](const std::string &k) { return dir.empty() ? "" : dir + "/" + k + ".cubin"; };
  // The kernel of `source` (keyed `k`): from memory, the disk cache, or NVRTC.
  auto obtain = [&](CudaKernel lay, const std::string &k, bool &fromCache,
                    bool quickCode = false) -> std::shared_ptr<CompiledKernel> {
    if (auto it = memoryCache.find(k); it != memoryCache.end()) {
      fromCache = true;
      return it->second;
    }
    std::string image, path = cachePath(k);
    std::optional<std::string> cached = readCacheEntry(path, k);
    fromCache = cached.has_value();
    if (cached)
      image = std::move(*cached);
    if (!fromCache) {
      std::string log;
      if (!cuda::compile(lay.source, info.name + ".cu", arch, /*cubin=*/true, image, log,
                         quickCode)) {
        error = "attnc: internal error: NVRTC rejected the generated kernel:\n" + log;
        return nullptr;
      }
      timer.mark("compile with NVRTC");
      writeCacheEntry(dir, path, k, image);
    }
    std::shared_ptr<CompiledKernel> loaded = loadCudaKernel(image, std::move(lay), error);
    if (!loaded) {
      if (fromCache) // a damaged cache file: compile afresh next time
        llvm::sys::fs::remove(path);
      return nullptr;
    }
    timer.mark("load the module");
    memoryCache[k] = loaded;
    return loaded;
  };
  // Tiers: the warp-specialized kernel in neither cache compiles in the
  // background while the two-CTA kernel (about half the compile time)
  // serves the first calls. $ATTNC_CUDA_TIERS=0 compiles the final kernel
  // alone. The quick kernel's ptxas runs at -O1: on the H100 its first
  // kernel came 2-21% sooner (ab_pending.sh tiers, 2026-12-05) for a kernel
  // 3% slower on causal and ALiBi, 3% faster on documents, that serves only
  // the first calls; the word `O3` in $ATTNC_CUDA_TIERS compiles it at the
  // default level. `serial` starts the final compile only when the quick
  // one is done: its first kernel was about as soon, its final one 0.5-1 s
  // later, so it stays opt-in.
  const char *tiersEnv = std::getenv("ATTNC_CUDA_TIERS");
  std::string tiersMode = tiersEnv ? tiersEnv : "";
  bool tiersOn = options.cudaTiers && tiersMode != "0";
  bool quickCode = tiersMode.find("O3") == std::string::npos;
  bool concurrent = tiersMode.find("serial") == std::string::npos;
  CudaKernel quickLayout;
  bool onDisk = !cachePath(key).empty() && llvm::sys::fs::exists(cachePath(key));
  if (tiersOn && layout.warpSpecialized && !onDisk &&
      mlir::succeeded(emitCudaKernel(fn, arch, quickLayout, /*quickTier=*/true)) &&
      !quickLayout.warpSpecialized) {
    auto upgrade = std::make_shared<KernelUpgrade>();
    KernelInfo finalInfo = info;
    finalInfo.blockQ = layout.blockQ;
    finalInfo.blockK = layout.blockK;
    auto startFinal = [&] {
      startFinalTier(upgrade, std::move(layout), std::move(finalInfo), topk, key, arch, dir,
                     cachePath(key));
    };
    if (concurrent)
      startFinal();
    // The quick kernel's cubin differs with its ptxas level: so does its key.
    if (quickCode)
      quickLayout.source += "// quick tier: ptxas -O1\n";
    std::string quickKey = sourceKey(arch, nvrtcVersion, quickLayout.source);
    bool quickFromCache = false;
    std::shared_ptr<CompiledKernel> quick =
        obtain(std::move(quickLayout), quickKey, quickFromCache, quickCode);
    if (!concurrent)
      startFinal(); // also when the quick compile failed: the final one may not
    if (!quick)
      return Status::error(error);
    std::shared_ptr<CompiledKernel> kernel = withThisSignature(*quick, quickFromCache);
    kernel->upgrade = upgrade;
    kernel->info.quickTier = true;
    pending[key] = kernel;
    // The final tier may have finished first.
    const CompiledKernel &current = kernel->current();
    if (&current != kernel.get())
      return Kernel(withThisSignature(current, false));
    return Kernel(kernel);
  }
  bool fromDisk = false;
  std::shared_ptr<CompiledKernel> loaded = obtain(std::move(layout), key, fromDisk);
  if (!loaded)
    return Status::error(error);
  return Kernel(withThisSignature(*loaded, fromDisk));
}


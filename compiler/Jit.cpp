//===- Jit.cpp - Compile specs in-process for the CPU -----------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The JIT keeps compiled objects in two caches: in memory (per process) and
// on disk, keyed by a hash of the prepared attn IR, the target CPU, the
// compiler version and a hash of the code generator's sources (BuildId.h),
// so a second process only loads an object. Objects are linked by one ORC
// LLJIT, one JITDylib per kernel. An object in neither cache comes in two
// tiers: unoptimized at once, optimized on a background thread. Running a
// kernel is KernelRun.cpp's.
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "attnc/runtime/Cuda.h"
#include "compiler/BuildId.h"
#include "compiler/Compile.h"
#include "compiler/CompiledKernel.h"
#include "compiler/JitCommon.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/xxhash.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <chrono>
#include <cstdlib>
#include <atomic>
#include <mutex>
#include <thread>
#include <unistd.h>

using namespace attnc;


std::mutex &attnc::jitMutex() {
  static std::mutex m;
  return m;
}

std::string attnc::cacheDirectory(const CompileOptions &options) {
  if (!options.cacheDir.empty())
    return options.cacheDir == "off" ? "" : options.cacheDir;
  if (const char *env = std::getenv("ATTNC_CACHE_DIR"))
    return std::string(env) == "off" ? "" : env;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"))
    return std::string(xdg) + "/attnc";
  if (const char *home = std::getenv("HOME"))
    return std::string(home) + "/.cache/attnc";
  return "";
}

namespace {
constexpr llvm::StringLiteral kCacheMagic = "attnc-c1";

uint64_t cacheChecksum(const std::string &key, llvm::StringRef data) {
  return llvm::xxh3_64bits(data) ^ llvm::xxh3_64bits(key);
}
} // namespace

/// Writes `data` to `path` through a temporary file and a rename, so a
/// reader never sees half a file. The temporary name is the writer's own
/// (process and thread): a final tier compiled in the background may write
/// an entry while another thread of the process writes the same one.
static void writeAtomically(const std::string &path, llvm::StringRef data) {
  std::string tmp = path + ".tmp" + std::to_string(::getpid()) + "." +
                    std::to_string(llvm::get_threadid());
  std::error_code ec;
  {
    llvm::raw_fd_ostream os(tmp, ec);
    if (ec)
      return;
    os << data;
    os.close();
    if (os.has_error()) {
      os.clear_error();
      llvm::sys::fs::remove(tmp);
      return;
    }
  }
  if (llvm::sys::fs::rename(tmp, path))
    llvm::sys::fs::remove(tmp);
}

void attnc::writeCacheEntry(const std::string &dir, const std::string &path,
                            const std::string &key, llvm::StringRef data) {
  if (path.empty() || llvm::sys::fs::create_directories(dir))
    return;
  std::string entry = data.str();
  entry += kCacheMagic;
  uint64_t sum = cacheChecksum(key, data);
  for (int byte = 0; byte < 8; ++byte)
    entry += static_cast<char>((sum >> (8 * byte)) & 0xff);
  writeAtomically(path, entry);
}

std::optional<std::string> attnc::readCacheEntry(const std::string &path,
                                                 const std::string &key) {
  if (path.empty())
    return std::nullopt;
  auto file = llvm::MemoryBuffer::getFile(path, /*IsText=*/false);
  if (!file)
    return std::nullopt;
  llvm::StringRef entry = (*file)->getBuffer();
  constexpr size_t kTrailer = kCacheMagic.size() + 8;
  if (entry.size() > kTrailer) {
    llvm::StringRef data = entry.drop_back(kTrailer), trailer = entry.take_back(kTrailer);
    uint64_t sum = 0;
    for (int byte = 0; byte < 8; ++byte)
      sum |= uint64_t(static_cast<unsigned char>(trailer[kCacheMagic.size() + byte]))
             << (8 * byte);
    if (trailer.starts_with(kCacheMagic) && sum == cacheChecksum(key, data))
      return data.str();
  }
  llvm::sys::fs::remove(path);
  return std::nullopt;
}

namespace {
/// Threads compiling final tiers. They use the JITs, the drivers and the
/// caches, which static destruction would pull away under them: the
/// process joins them at exit (finished ones as new ones start).
class BackgroundCompiles {
public:
  static BackgroundCompiles &get() {
    static BackgroundCompiles compiles;
    return compiles;
  }
  void start(std::function<void()> work) {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto it = running.begin(); it != running.end();) {
      if (it->second->load()) {
        it->first.join();
        it = running.erase(it);
      } else {
        ++it;
      }
    }
    auto finished = std::make_shared<std::atomic<bool>>(false);
    running.emplace_back(std::thread([work = std::move(work), finished] {
                           work();
                           finished->store(true);
                         }),
                         finished);
  }
  ~BackgroundCompiles() {
    for (auto &[thread, finished] : running)
      thread.join();
  }

private:
  std::mutex mutex;
  std::vector<std::pair<std::thread, std::shared_ptr<std::atomic<bool>>>> running;
};
} // namespace

void attnc::runInBackground(std::function<void()> work) {
  BackgroundCompiles::get().start(std::move(work));
}

namespace {
llvm::orc::LLJIT *globalJit(std::string &error) {
  static std::unique_ptr<llvm::orc::LLJIT> &jit = *new std::unique_ptr<llvm::orc::LLJIT>();
  if (jit)
    return jit.get();
  std::string tmError;
  if (!hostTargetMachine(tmError)) { // initializes the native target
    error = tmError;
    return nullptr;
  }
  auto created = llvm::orc::LLJITBuilder().create();
  if (!created) {
    error = llvm::toString(created.takeError());
    return nullptr;
  }
  jit = std::move(*created);
  // Failures come back as a Status; ORC's default reporter would also print.
  jit->getExecutionSession().setErrorReporter([](llvm::Error err) {
    llvm::consumeError(std::move(err));
  });
  return jit.get();
}

/// $ATTNC_PERF_MAP=1: the object's functions, with their sizes, for
/// perfMap once they are linked.
std::vector<std::pair<std::string, uint64_t>> perfMapSymbols(llvm::MemoryBufferRef object) {
  std::vector<std::pair<std::string, uint64_t>> symbols;
  const char *env = std::getenv("ATTNC_PERF_MAP");
  if (!env || std::string(env) != "1")
    return symbols;
  auto file = llvm::object::ObjectFile::createObjectFile(object);
  if (!file) {
    llvm::consumeError(file.takeError());
    return symbols;
  }
  auto *elf = llvm::dyn_cast<llvm::object::ELFObjectFileBase>(file->get());
  if (!elf)
    return symbols;
  for (llvm::object::ELFSymbolRef sym : elf->symbols()) {
    auto type = sym.getType();
    auto name = sym.getName();
    if (type && *type == llvm::object::SymbolRef::ST_Function && name && sym.getSize())
      symbols.emplace_back(name->str(), sym.getSize());
    else {
      if (!type)
        llvm::consumeError(type.takeError());
      if (!name)
        llvm::consumeError(name.takeError());
    }
  }
  return symbols;
}

/// Appends "address size name" lines to /tmp/perf-<pid>.map, where perf
/// looks up code it has no file for: profiles then name the kernel.
void perfMap(llvm::orc::LLJIT &jit, llvm::orc::JITDylib &dylib,
             const std::vector<std::pair<std::string, uint64_t>> &symbols) {
  if (symbols.empty())
    return;
  std::string path = "/tmp/perf-" + std::to_string(::getpid()) + ".map";
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_Append);
  if (ec)
    return;
  for (const auto &[name, size] : symbols) {
    if (auto address = jit.lookup(dylib, name))
      os << llvm::format("%llx %llx ", (unsigned long long)address->getValue(),
                         (unsigned long long)size)
         << name << "\n";
    else
      llvm::consumeError(address.takeError());
  }
}

/// CPU kernels by cache key, for the process. Like the JIT and the CUDA
/// caches it is never destroyed: a final tier still compiling at exit uses
/// it until BackgroundCompiles joins its thread, and function-local statics
/// made after BackgroundCompiles would be destroyed before that.
llvm::StringMap<std::shared_ptr<CompiledKernel>> &cpuMemoryCache() {
  static auto &cache = *new llvm::StringMap<std::shared_ptr<CompiledKernel>>();
  return cache;
}

/// Links `object` into a JITDylib of its own and returns the packed entry
/// `attnc_packed_<name>`, or null with `error`; a damaged file from the
/// disk cache (`objPath`, when `fromDisk`) is removed. Callers hold
/// jitMutex.
void (*linkObject(llvm::orc::LLJIT &jit, const std::string &key, const std::string &name,
                  std::unique_ptr<llvm::MemoryBuffer> object, bool fromDisk,
                  const std::string &objPath, std::string &error))(void **) {
  static unsigned dylibs = 0;
  auto dylib = jit.createJITDylib("attnc_" + key + "_" + std::to_string(dylibs++));
  if (!dylib) {
    error = llvm::toString(dylib.takeError());
    return nullptr;
  }
  auto generator = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      jit.getDataLayout().getGlobalPrefix());
  if (!generator) {
    error = llvm::toString(generator.takeError());
    return nullptr;
  }
  dylib->addGenerator(std::move(*generator));
  auto perfSymbols = perfMapSymbols(object->getMemBufferRef());
  if (llvm::Error err = jit.addObjectFile(*dylib, std::move(object))) {
    // A damaged cache file: drop it and compile afresh next time.
    if (fromDisk)
      llvm::sys::fs::remove(objPath);
    error = "attnc: cannot load the kernel object: " + llvm::toString(std::move(err));
    return nullptr;
  }
  auto symbol = jit.lookup(*dylib, "attnc_packed_" + name);
  if (!symbol) {
    if (fromDisk)
      llvm::sys::fs::remove(objPath);
    error = "attnc: kernel entry not found: " + llvm::toString(symbol.takeError());
    return nullptr;
  }
  perfMap(jit, *dylib, perfSymbols);
  return symbol->toPtr<void (*)(void **)>();
}

/// The final tier of a CPU kernel whose quick tier runs meanwhile: O2 from
/// the bitcode of the same LLVM IR, on a thread and an LLVM context of its
/// own; written to the disk cache, linked, and switched to.
void startCpuFinalTier(std::shared_ptr<KernelUpgrade> upgrade,
                       llvm::SmallVector<char, 0> bitcode, const CompiledKernel &quick,
                       std::string key, std::string dir, std::string objPath) {
  KernelInfo info = quick.info;
  info.quickTier = false;
  std::optional<TopKParams> topk = quick.topk;
  warmUpCodeGen();
  runInBackground([=, bitcode = std::move(bitcode)]() {
    std::string error;
    std::shared_ptr<CompiledKernel> final;
    llvm::LLVMContext llvmCtx;
    auto module = llvm::parseBitcodeFile(
        llvm::MemoryBufferRef(llvm::StringRef(bitcode.data(), bitcode.size()), key), llvmCtx);
    llvm::SmallVector<char, 0> obj;
    std::unique_ptr<llvm::TargetMachine> tm;
    if (!module)
      error = "attnc: internal error: " + llvm::toString(module.takeError());
    else if ((tm = hostTargetMachine(error)) && emitObject(**module, *tm, obj, error)) {
      llvm::StringRef objRef(obj.data(), obj.size());
      writeCacheEntry(dir, objPath, key, objRef);
      std::lock_guard<std::mutex> lock(jitMutex());
      std::string jitError;
      llvm::orc::LLJIT *jit = globalJit(jitError);
      auto entry = jit ? linkObject(*jit, key, info.name,
                                    llvm::MemoryBuffer::getMemBufferCopy(objRef, key + ".o"),
                                    false, "", error)
                       : nullptr;
      if (!jit)
        error = "attnc: cannot start the JIT: " + jitError;
      if (entry) {
        final = std::make_shared<CompiledKernel>();
        final->info = info;
        final->entry = entry;
        final->topk = topk;
        cpuMemoryCache()[key] = final;
      }
    }
    upgrade->finish(std::move(final), std::move(error));
  });
}

Result<Kernel> compileBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer,
                             const CompileOptions &options) {
  // Starting the driver (a context, ~0.2 s) is paid once per process, not
  // per kernel: keep it out of the compile time.
  std::string cudaError;
  if (options.target == Target::cuda)
    (void)cuda::init(cudaError);
  auto start = std::chrono::steady_clock::now();
  auto elapsedMs = [&] {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - start)
        .count();
  };
  PhaseTimer timer;
  int width = options.vectorWidth ? options.vectorWidth : vectorWidthFor(hostCpuFeatures());

  mlir::MLIRContext ctx(mlir::MLIRContext::Threading::DISABLED);
  prepareContext(ctx);
  llvm::SourceMgr sm;
  sm.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
  std::string diagText;
  llvm::raw_string_ostream diagOS(diagText);
  mlir::SourceMgrDiagnosticHandler handler(sm, &ctx, diagOS);

  mlir::OwningOpRef<mlir::ModuleOp> module = loadAttnModule(ctx, sm, options.dims);
  if (!module)
    return Status::error(diagText.empty() ? "attnc: could not load the input" : diagText);
  if (options.dtype && mlir::failed(overrideDType(*module, *options.dtype)))
    return Status::error(diagText);
  CpuCodegen codegen;
  if (options.target == Target::cpu)
    codegen = cpuCodegenFor(hostCpuFeatures(), width, options.cpuAmx,
                            options.cpuAmx && hostAmx());
  codegen.skipTiles = options.skipTiles;
  bool amx = codegen.amx;
  if (mlir::failed(prepareForTarget(*module, options.target, false, amx)))
    return Status::error(diagText);
  mlir::func::FuncOp fn = findKernelFunc(*module);
  if (!fn)
    return Status::error(diagText);
  KernelInfo info = extractKernelInfo(fn);
  unsigned topkArg = 0;
  std::optional<TopKParams> topk = hiddenTopK(fn, topkArg);
  timer.mark("parse and prepare");
  if (options.target == Target::cuda)
    return compileCuda(fn, std::move(info), topk, options, diagText, timer, start);

  // The key covers everything that changes the object.
  std::string ir;
  llvm::raw_string_ostream irOS(ir);
  module->print(irOS);
  std::string cpu = llvm::sys::getHostCPUName().str();
  llvm::SHA256 sha;
  sha.update(ATTNC_VERSION_STRING "|" ATTNC_BUILD_ID "|cpu|" LLVM_VERSION_STRING "|");
  sha.update(cpu + "|" + std::to_string(width) + "|" +
             (codegen.skipTiles ? "skip|" : "noskip|") + (amx ? "amx|" : "") +
             (codegen.amxDot ? "dot|" : "") + "i8=" + codegen.int8Dot + "|" +
             (codegen.bf16Dot ? "bf16dot|" : "") + (codegen.fastExp ? "fexp|" : "") +
             "kc=" + std::to_string(codegen.keyCacheFloats) + "|");
  for (const auto &f : llvm::sys::getHostCPUFeatures())
    if (f.second)
      sha.update(f.first().str() + ",");
  sha.update(ir);
  std::string key = llvm::toHex(sha.final(), /*LowerCase=*/true).substr(0, 32);

  std::lock_guard<std::mutex> lock(jitMutex());
  llvm::StringMap<std::shared_ptr<CompiledKernel>> &memoryCache = cpuMemoryCache();
  if (auto it = memoryCache.find(key); it != memoryCache.end()) {
    auto kernel = std::make_shared<CompiledKernel>(*it->second);
    kernel->info.fromCache = true;
    kernel->info.compileMs = elapsedMs();
    return Kernel(kernel);
  }

  std::string error;
  llvm::orc::LLJIT *jit = globalJit(error);
  if (!jit)
    return Status::error("attnc: cannot start the JIT: " + error);
  timer.mark("start the JIT");

  std::string dir = cacheDirectory(options);
  std::string objPath = dir.empty() ? "" : dir + "/" + key + ".o";
  std::unique_ptr<llvm::MemoryBuffer> object;
  bool fromDisk = false;
  if (std::optional<std::string> cached = readCacheEntry(objPath, key)) {
    object = llvm::MemoryBuffer::getMemBufferCopy(*cached, key + ".o");
    fromDisk = true;
  }
  // Tiers: an object in neither cache is first emitted without optimizing
  // (the quick tier, returned at once), and optimized on a thread of its
  // own; run() switches to it when it is linked.
  const char *tiersEnv = std::getenv("ATTNC_CPU_TIERS");
  bool tiers = options.cpuTiers && !(tiersEnv && std::string(tiersEnv) == "0");
  llvm::SmallVector<char, 0> bitcode;
  if (!object) {
    if (mlir::failed(lowerForCPU(*module, width, /*toLLVM=*/true, false, codegen)))
      return Status::error("attnc: internal error: lowering failed\n" + diagText);
    timer.mark("lower to the LLVM dialect");
    llvm::LLVMContext llvmCtx;
    auto llvmModule = translateToLLVMIR(*module, llvmCtx, info.name);
    if (!llvmModule)
      return Status::error("attnc: internal error: translation to LLVM IR failed");
    if (tiers) {
      llvm::raw_svector_ostream os(bitcode);
      llvm::WriteBitcodeToFile(*llvmModule, os);
    }
    timer.mark("translate to LLVM IR");
    auto tm = hostTargetMachine(error);
    if (!tm)
      return Status::error("attnc: " + error);
    llvm::SmallVector<char, 0> obj;
    if (!emitObject(*llvmModule, *tm, obj, error, /*quick=*/tiers))
      return Status::error("attnc: " + error);
    timer.mark(tiers ? "emit the quick tier" : "optimize and emit the object");
    llvm::StringRef objRef(obj.data(), obj.size());
    if (!tiers)
      writeCacheEntry(dir, objPath, key, objRef);
    object = llvm::MemoryBuffer::getMemBufferCopy(objRef, key + ".o");
  }

  auto entry = linkObject(*jit, key, info.name, std::move(object), fromDisk, objPath, error);
  if (!entry)
    return Status::error(error);
  timer.mark("link the object");
  auto kernel = std::make_shared<CompiledKernel>();
  kernel->info = std::move(info);
  kernel->entry = entry;
  kernel->info.fromCache = fromDisk;
  kernel->topk = topk;
  if (!bitcode.empty()) {
    kernel->info.quickTier = true;
    kernel->upgrade = std::make_shared<KernelUpgrade>();
    startCpuFinalTier(kernel->upgrade, std::move(bitcode), *kernel, key, dir, objPath);
  }
  memoryCache[key] = kernel;
  kernel->info.compileMs = elapsedMs();
  return Kernel(kernel);
}
} // namespace

Result<Kernel> attnc::compileFile(const std::string &path,
                                  const CompileOptions &options) {
  auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(path, /*IsText=*/false);
  if (!buffer)
    return Status::error("attnc: cannot read '" + path +
                         "': " + buffer.getError().message());
  return compileBuffer(std::move(*buffer), options);
}

Result<Kernel> attnc::compileString(const std::string &source,
                                    const std::string &bufferName,
                                    const CompileOptions &options) {
  return compileBuffer(llvm::MemoryBuffer::getMemBufferCopy(source, bufferName),
                       options);
}

const char *attnc::versionString() {
  return "attnc " ATTNC_VERSION_STRING " (LLVM " LLVM_VERSION_STRING ")";
}

//===----------------------------------------------------------------------===//
// Kernel
//===----------------------------------------------------------------------===//

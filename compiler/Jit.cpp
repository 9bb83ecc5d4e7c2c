//===- Jit.cpp - Compile specs in-process and run them ----------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The JIT keeps compiled objects in two caches: in memory (per process) and
// on disk, keyed by a hash of the prepared attn IR, the target CPU, the
// compiler version and a hash of the code generator's sources (BuildId.h), so a second process only loads an object. Objects are
// linked by one ORC LLJIT, one JITDylib per kernel.
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "attnc/runtime/ThreadPool.h"
#include "compiler/BuildId.h"
#include "compiler/CompiledKernel.h"
#include "compiler/Compile.h"
#include "compiler/JitCommon.h"
#include "attnc/runtime/Cuda.h"
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
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <atomic>
#include <mutex>
#include <thread>
#include <tuple>
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

/// Writes `data` to `path` through a temporary file and a rename, so a
/// reader never sees half a file.
void attnc::writeAtomically(const std::string &path, llvm::StringRef data) {
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
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
  static std::unique_ptr<llvm::orc::LLJIT> jit;
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

/// CPU kernels by cache key, for the process.
llvm::StringMap<std::shared_ptr<CompiledKernel>> &cpuMemoryCache() {
  static llvm::StringMap<std::shared_ptr<CompiledKernel>> cache;
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
      if (!objPath.empty() && !llvm::sys::fs::create_directories(dir))
        writeAtomically(objPath, objRef);
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
    {
      std::lock_guard<std::mutex> lock(upgrade->mutex);
      upgrade->final = std::move(final);
      upgrade->error = std::move(error);
      upgrade->done.store(true, std::memory_order_release);
    }
    upgrade->finished.notify_all();
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
  int width = options.vectorWidth ? options.vectorWidth : hostVectorWidth();

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
  bool amx = options.target == Target::cpu && options.cpuAmx && width == 16 && hostAmx();
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
             (options.skipTiles ? "skip|" : "noskip|") + (amx ? "amx|" : ""));
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
  if (!objPath.empty()) {
    if (auto file = llvm::MemoryBuffer::getFile(objPath)) {
      object = std::move(*file);
      fromDisk = true;
    }
  }
  // Tiers: an object in neither cache is first emitted without optimizing
  // (the quick tier, returned at once), and optimized on a thread of its
  // own; run() switches to it when it is linked.
  const char *tiersEnv = std::getenv("ATTNC_CPU_TIERS");
  bool tiers = options.cpuTiers && !(tiersEnv && std::string(tiersEnv) == "0");
  llvm::SmallVector<char, 0> bitcode;
  if (!object) {
    if (mlir::failed(lowerForCPU(*module, width, /*toLLVM=*/true, false,
                                 options.skipTiles, amx)))
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
    if (!tiers && !objPath.empty() && !llvm::sys::fs::create_directories(dir))
      writeAtomically(objPath, objRef);
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

Kernel::Kernel(std::shared_ptr<CompiledKernel> impl) : impl(std::move(impl)) {}

const KernelInfo &Kernel::info() const { return impl->info; }

Status Kernel::check(const std::vector<TensorView> &tensors,
                     const std::map<std::string, double> &params) const {
  const KernelInfo &info = impl->info;
  size_t numTensors = 0;
  for (const ArgInfo &a : info.args)
    numTensors += a.isTensor;
  if (tensors.size() != numTensors)
    return Status::error("kernel '" + info.name + "' takes " +
                         std::to_string(numTensors) + " tensors, got " +
                         std::to_string(tensors.size()));
  std::map<std::string, int64_t> symbols;
  size_t t = 0;
  for (const ArgInfo &a : info.args) {
    if (!a.isTensor)
      continue;
    const TensorView &view = tensors[t++];
    std::string where = "tensor '" + a.name + "'";
    if (view.dtype != a.dtype)
      return Status::error(where + " expects dtype " + dtypeName(a.dtype) +
                           ", got " + dtypeName(view.dtype));
    if (view.shape.size() != a.dims.size())
      return Status::error(where + " expects rank " + std::to_string(a.dims.size()) +
                           ", got " + std::to_string(view.shape.size()));
    if (!view.strides.empty() && view.strides.size() != view.shape.size())
      return Status::error(where + " has " + std::to_string(view.strides.size()) +
                           " strides for rank " + std::to_string(view.shape.size()));
    TensorView contiguous = view;
    contiguous.strides.clear();
    std::vector<int64_t> rowMajor = contiguous.effectiveStrides();
    if (a.pageStrided && !view.strides.empty()) {
      // Pages may sit apart; within a page the layout is row-major.
      if (!std::equal(view.strides.begin() + 1, view.strides.end(), rowMajor.begin() + 1) ||
          view.strides[0] < 0 || (view.dtype == DType::q4 && view.strides[0] % 2 != 0))
        return Status::error(where + " must be row-major within a page (only the page "
                                     "stride may differ" +
                             std::string(view.dtype == DType::q4 ? ", and be even for q4)" : ")"));
    } else if (!view.strides.empty() && view.strides != rowMajor) {
      return Status::error(where + " is not contiguous; attnc kernels take "
                                   "row-major contiguous tensors for now");
    }
    for (size_t d = 0; d < a.dims.size(); ++d) {
      int64_t size = view.shape[d];
      if (size < 0)
        return Status::error(where + " has a negative size in dim " + std::to_string(d));
      if (a.dims[d] >= 0 && size != a.dims[d])
        return Status::error(where + " expects dim " + std::to_string(d) + " = " +
                             std::to_string(a.dims[d]) + ", got " + std::to_string(size));
      if (a.dims[d] < 0) {
        auto [it, inserted] = symbols.emplace(a.dimNames[d], size);
        if (!inserted && it->second != size)
          return Status::error(where + " has " + a.dimNames[d] + " = " +
                               std::to_string(size) + " in dim " + std::to_string(d) +
                               ", but an earlier tensor has " + a.dimNames[d] +
                               " = " + std::to_string(it->second));
      }
    }
    if (!view.data && view.numel() > 0)
      return Status::error(where + " has no data");
  }
  // GQA divisibility and q/k/v agreement that symbolic names cannot show.
  const TensorView &q = tensors[0], &k = tensors[1], &v = tensors[2];
  if (q.shape.size() == 4 && k.shape.size() == 4 && v.shape.size() == 4) {
    if (k.shape[1] == 0 || q.shape[1] % k.shape[1] != 0)
      return Status::error("query heads (" + std::to_string(q.shape[1]) +
                           ") must be a multiple of KV heads (" +
                           std::to_string(k.shape[1]) + ")");
    if (info.paged) {
      if (k.shape[0] != v.shape[0] || k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2] ||
          q.shape[3] != k.shape[3])
        return Status::error("k and v pages disagree (pages, KV heads or page size), or "
                             "q and k disagree on the head dim");
      if (k.shape[2] < 1)
        return Status::error("the page size (dim 2 of k) must be positive");
      // The table, lengths and scales must fit q's batch and k's pages: the
      // kernels index them by those.
      const PagedInfo &paged = *info.paged;
      const TensorView &table = tensors[paged.table], &lens = tensors[paged.lens];
      if (table.shape[0] != q.shape[0] || lens.shape[0] != q.shape[0])
        return Status::error("the block table has " + std::to_string(table.shape[0]) +
                             " rows and the lengths " + std::to_string(lens.shape[0]) +
                             " entries, but q has batch " + std::to_string(q.shape[0]));
      for (int n : {paged.keyScale, paged.valueScale})
        if (n >= 0 && (tensors[n].shape[0] != k.shape[0] || tensors[n].shape[1] != k.shape[1] ||
                       tensors[n].shape[2] != k.shape[2]))
          return Status::error("the scales must have k's pages, KV heads and page size");
    } else if (q.shape[0] != k.shape[0] || k.shape[0] != v.shape[0] ||
        k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2] ||
        q.shape[3] != k.shape[3])
      return Status::error("q, k and v shapes disagree (batch, KV heads, key "
                           "length or head dim)");
  }
  for (const auto &param : params) {
    const std::string &name = param.first;
    double value = param.second;
    auto it = std::find_if(info.args.begin(), info.args.end(), [&](const ArgInfo &a) {
      return !a.isTensor && a.name == name;
    });
    if (it == info.args.end())
      return Status::error("kernel '" + info.name + "' has no parameter '" + name + "'");
    if (it->dtype != DType::f32 && value != static_cast<double>(static_cast<int64_t>(value)))
      return Status::error("parameter '" + name + "' is an integer, got " +
                           std::to_string(value));
    if (it->dtype == DType::i32 && (value < INT32_MIN || value > INT32_MAX))
      return Status::error("parameter '" + name + "' does not fit in i32");
  }
  for (const ArgInfo &a : info.args)
    if (!a.isTensor && !params.count(a.name) && !a.defaultValue)
      return Status::error("parameter '" + a.name + "' has no default and was not given");
  return Status::ok();
}

Status attnc::checkPageTable(const std::vector<TensorView> &tensors, const PagedInfo &paged) {
  const TensorView &k = tensors[1], &table = tensors[paged.table], &lens = tensors[paged.lens];
  int64_t pages = k.shape[0], pageSize = k.shape[2], width = table.shape[1];
  for (int64_t b = 0; b < lens.shape[0]; ++b) {
    int64_t len = static_cast<int64_t>(lens.load(&b));
    if (len < 0 || len > width * pageSize)
      return Status::error("sequence " + std::to_string(b) + " has length " +
                           std::to_string(len) + ", outside [0, " +
                           std::to_string(width * pageSize) + "] (block table width " +
                           std::to_string(width) + " x page size " +
                           std::to_string(pageSize) + ")");
    for (int64_t p = 0; p * pageSize < len; ++p) {
      int64_t index[2] = {b, p};
      int64_t page = static_cast<int64_t>(table.load(index));
      if (page < 0 || page >= pages)
        return Status::error("block table entry [" + std::to_string(b) + ", " +
                             std::to_string(p) + "] is page " + std::to_string(page) +
                             ", but there are " + std::to_string(pages) + " pages");
    }
  }
  return Status::ok();
}

namespace {
/// Storage for one argument as the C interface takes it.
struct ArgStorage {
  struct Desc {
    void *allocated;
    void *aligned;
    int64_t offset;
    int64_t sizesAndStrides[8];
  } desc;
  void *descPtr = &desc;
  int32_t i32 = 0;
  int64_t i64 = 0;
  float f32 = 0;
};

/// How a CPU run is cut into chunks of query tiles for the thread pool.
/// $ATTNC_CPU_CHUNKS (chunks per thread) and $ATTNC_CPU_ORDER
/// (`first`/`last`) are tuning knobs for the benchmarks.
struct CpuSchedule {
  int64_t chunksPerThread = 16;
  bool lastFirst = true;
  /// Paged kernels: key ranges per item (0: chosen per run).
  int64_t splits = 0;
};

CpuSchedule cpuSchedule() {
  static const CpuSchedule schedule = [] {
    CpuSchedule s;
    if (const char *env = std::getenv("ATTNC_CPU_CHUNKS"))
      s.chunksPerThread = std::clamp<int64_t>(std::atoll(env), 1, 1 << 20);
    if (const char *env = std::getenv("ATTNC_CPU_ORDER"))
      s.lastFirst = std::strcmp(env, "first") != 0;
    if (const char *env = std::getenv("ATTNC_CPU_SPLITS"))
      s.splits = std::clamp<int64_t>(std::atoll(env), 0, 1024);
    return s;
  }();
  return schedule;
}
/// Split-KV for paged kernels: key ranges per item, so that a few long
/// sequences (B = 1 has only one item per KV head) still give every thread
/// work. About two work units per thread, and ranges of at least
/// kMinSplitTiles key tiles, so the combine stays a small part.
int64_t pagedSplits(const TensorView &lens, int64_t items, int64_t blockK, unsigned parts,
                    int64_t forced) {
  constexpr int64_t kMinSplitTiles = 4;
  if (forced > 0)
    return forced;
  int64_t longest = 0;
  for (int64_t n = 0; n < lens.shape[0]; ++n) {
    int64_t index[1] = {n};
    longest = std::max<int64_t>(longest, static_cast<int64_t>(lens.load(index)));
  }
  int64_t wanted = (2 * int64_t(parts) + items - 1) / std::max<int64_t>(1, items);
  int64_t tiles = (longest + blockK - 1) / std::max<int64_t>(1, blockK);
  return std::clamp<int64_t>(std::min(wanted, tiles / kMinSplitTiles), 1, 1024);
}
} // namespace

Target Kernel::target() const { return impl->isCuda ? Target::cuda : Target::cpu; }

Status Kernel::run(const std::vector<TensorView> &tensors,
                   const std::map<std::string, double> &params,
                   unsigned threads) const {
  if (Status st = check(tensors, params); !st)
    return st;
  if (impl->isCuda)
    return launchCuda(impl->current(), tensors, params, nullptr, /*wait=*/true);
  const KernelInfo &info = impl->info;
  if (info.paged)
    if (Status st = checkPageTable(tensors, *info.paged); !st)
      return st;
  std::vector<ArgStorage> storage(info.args.size());
  std::vector<void *> argPtrs;
  size_t t = 0;
  for (size_t n = 0; n < info.args.size(); ++n) {
    const ArgInfo &a = info.args[n];
    ArgStorage &s = storage[n];
    if (a.isTensor) {
      const TensorView &view = tensors[t++];
      // An empty tensor may have no memory at all; region reads are clamped
      // to index 0, so give them zeros to read there.
      alignas(64) static const unsigned char kZeros[64] = {};
      void *data = view.numel() == 0 ? const_cast<unsigned char *>(kZeros) : view.data;
      s.desc.allocated = s.desc.aligned = data;
      s.desc.offset = 0;
      std::vector<int64_t> strides = view.effectiveStrides();
      size_t rank = view.shape.size();
      for (size_t d = 0; d < rank; ++d) {
        s.desc.sizesAndStrides[d] = view.shape[d];
        s.desc.sizesAndStrides[rank + d] = strides[d];
      }
      if (view.dtype == DType::q4) { // the kernel addresses bytes
        s.desc.sizesAndStrides[rank - 1] = view.shape[rank - 1] / 2;
        for (size_t d = 0; d + 1 < rank; ++d)
          s.desc.sizesAndStrides[rank + d] = strides[d] / 2;
      }
      s.descPtr = &s.desc;
      argPtrs.push_back(&s.descPtr);
      continue;
    }
    auto it = params.find(a.name);
    double value = it != params.end() ? it->second : *a.defaultValue;
    if (a.dtype == DType::f32) {
      s.f32 = static_cast<float>(value);
      argPtrs.push_back(&s.f32);
    } else if (a.dtype == DType::i32) {
      s.i32 = static_cast<int32_t>(value);
      argPtrs.push_back(&s.i32);
    } else {
      s.i64 = static_cast<int64_t>(value);
      argPtrs.push_back(&s.i64);
    }
  }
  const TensorView &q = tensors[0];
  // attn.topk: the selection table, computed here and passed last.
  std::vector<int32_t> selection;
  ArgStorage selectionArg;
  if (impl->topk) {
    const TensorView &k = tensors[1];
    int64_t qb = topKQueryBlocks(*impl->topk, q.shape[2], k.shape[2]);
    int64_t kb = topKKeyBlocks(*impl->topk, k.shape[2]);
    selection.assign(static_cast<size_t>(q.shape[0] * q.shape[1] * qb * kb), 0);
    selectTopKBlocks(q, k, *impl->topk, selection.data(), threads);
    ArgStorage::Desc &d = selectionArg.desc;
    d.allocated = d.aligned = selection.data();
    d.offset = 0;
    int64_t shape[4] = {q.shape[0], q.shape[1], qb, kb};
    int64_t stride = 1;
    for (int n = 3; n >= 0; --n) {
      d.sizesAndStrides[n] = shape[n];
      d.sizesAndStrides[4 + n] = stride;
      stride *= shape[n];
    }
    selectionArg.descPtr = &selectionArg.desc;
    argPtrs.push_back(&selectionArg.descPtr);
  }
  int64_t perItem = info.queriesPerItem > 0 ? info.queriesPerItem : info.blockQ;
  int64_t items = q.shape[0] * (q.shape[1] / info.headsPerItem) *
                  ((q.shape[2] + perItem - 1) / perItem);
  auto entry = impl->current().entry;
  // Chunks of consecutive query tiles of one head, so that a call's range
  // shares its transposed K tiles (the kernel caches them per call), yet
  // several chunks per thread for balance. Paged items (sequences of
  // different lengths) stay one at a time.
  int64_t grain = 1;
  bool lastFirst = false;
  CpuSchedule schedule = cpuSchedule();
  unsigned parts = threads == 0 ? ThreadPool::global().size()
                                : std::min(threads, ThreadPool::global().size());
  if (!info.paged) {
    int64_t tilesPerHead = (q.shape[2] + perItem - 1) / perItem;
    grain = std::max<int64_t>(
        1, std::min(tilesPerHead, items / (schedule.chunksPerThread * int64_t(parts))));
    lastFirst = schedule.lastFirst;
  }
  auto runRange = [&](int64_t units, std::vector<void *> args) {
    ThreadPool::global().parallelFor(
        units, threads,
        [&](int64_t begin, int64_t end) {
          // Last chunks first: with a causal mask a head's last query tiles
          // cost the most, and the run should end on cheap ones.
          if (lastFirst)
            std::tie(begin, end) = std::make_pair(units - end, units - begin);
          std::vector<void *> local = args;
          local.push_back(&begin);
          local.push_back(&end);
          entry(local.data());
        },
        grain);
  };
  if (!info.paged) {
    runRange(items, argPtrs);
    return Status::ok();
  }
  // Paged: whole items (phase 0), or split-KV: every item's key ranges into
  // partial slots (phase 1), then one combine per item (phase 2).
  int64_t splits = pagedSplits(tensors[info.paged->lens], items, info.blockK, parts,
                               schedule.splits);
  int64_t phase = splits > 1 ? 1 : 0;
  int64_t rowsMax = info.headsPerItem * perItem;
  int64_t valueDim = 0;
  for (size_t n = 0, t = 0; n < info.args.size(); ++n) {
    if (!info.args[n].isTensor)
      continue;
    if (info.args[n].isOutput && info.args[n].dims.size() == 4) { // o, not lse
      valueDim = tensors[t].shape[3];
      break;
    }
    ++t;
  }
  int64_t slotFloats = rowsMax * (valueDim + 2);
  // Whole items leave the partials alone: no allocation on that path.
  float unused = 0;
  std::vector<float> partials(splits > 1 ? static_cast<size_t>(items * splits * slotFloats) : 0);
  float *partialsData = splits > 1 ? partials.data() : &unused;
  ArgStorage partialsArg;
  ArgStorage::Desc &pd = partialsArg.desc;
  pd.allocated = pd.aligned = partialsData;
  pd.offset = 0;
  pd.sizesAndStrides[0] = splits > 1 ? static_cast<int64_t>(partials.size()) : 1;
  pd.sizesAndStrides[1] = 1;
  partialsArg.descPtr = &pd;
  argPtrs.push_back(&phase);
  argPtrs.push_back(&splits);
  argPtrs.push_back(&partialsArg.descPtr);
  if (phase == 0) {
    runRange(items, argPtrs);
    return Status::ok();
  }
  runRange(items * splits, argPtrs);
  phase = 2;
  runRange(items, argPtrs);
  return Status::ok();
}

Status Kernel::waitForFinalTier() const {
  if (!impl->upgrade)
    return Status::ok();
  KernelUpgrade &upgrade = *impl->upgrade;
  std::unique_lock<std::mutex> lock(upgrade.mutex);
  upgrade.finished.wait(lock, [&] { return upgrade.done.load(std::memory_order_acquire); });
  return upgrade.error.empty() ? Status::ok() : Status::error(upgrade.error);
}

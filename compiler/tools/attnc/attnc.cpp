//===- attnc.cpp - The attnc command-line compiler --------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// attnc FILE.attn [-o OUT] [--target=...] [--emit=...] [--run]
// attnc kv inspect|verify|synth ...      (KV cache files, KvCommand.cpp)
//       [--param NAME=VALUE]... [-D DIM=SIZE]... [--canonicalize]
//       [--print-ir-after-all]
//
// Reads a spec, builds and verifies its attn IR, then runs the pipeline for
// the requested artifact (compile() below, one case per --emit kind).
// Exit codes: 0 success, 1 user error (bad input, bad flags, unreadable
// file, feature not implemented yet), 2 internal error (attnc built IR that
// does not verify, or a pass failed on valid input).
//
//===----------------------------------------------------------------------===//

#include "compiler/Check.h"
#include "compiler/Compile.h"
#include "compiler/Registration.h"
#include "dialects/attn/AttnOps.h"
#include "compiler/tools/attnc/KvCommand.h"
#include "attnc/runtime/Cuda.h"
#include "passes/AttnToCUDA.h"
#include "frontends/spec/Semantics.h"
#include "frontends/spec/SpecFrontend.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>
#include <optional>
#include <limits>

using namespace mlir;
namespace cl = llvm::cl;
using llvm::StringRef;

namespace {

/// Process exit codes.
enum ExitCode : int {
  kExitSuccess = 0,
  kExitUserError = 1,
  kExitInternalError = 2,
};

enum class EmitKind { Attn, Lowered, LLVM, Obj, Header, PTX, Cubin, CUDA, HIP };
enum class Target { CPU, CUDA, HIP };

/// Everything the pipeline needs besides the module.
struct CompileOptions {
  EmitKind emit = EmitKind::Attn;
  Target target = Target::CPU;
  bool run = false;
  bool canonicalize = false;
  bool printIRAfterAll = false;
  /// Validated --param values, typed as the spec's params (i32, i64, f32).
  llvm::StringMap<TypedAttr> params;
  /// -D values, for --run (which compiles the file again through the JIT).
  std::map<std::string, int64_t> dims;
  std::optional<attnc::DType> dtype;
  std::string cpu;
  std::string arch;
  int vectorWidth = 0;
  unsigned threads = 0;
};

} // namespace

static cl::OptionCategory attncCategory("attnc options");

static cl::opt<std::string> inputFilename(cl::Positional,
                                          cl::desc("<spec.attn | ->"),
                                          cl::init(""), cl::cat(attncCategory));

static cl::opt<std::string>
    outputFilename("o", cl::desc("Write the output to <file> ('-' = stdout)"),
                   cl::value_desc("file"), cl::init("-"),
                   cl::cat(attncCategory));

static cl::opt<Target> targetFlag(
    "target", cl::desc("Device to compile for"), cl::init(Target::CPU),
    cl::values(clEnumValN(Target::CPU, "cpu", "the host CPU (default)"),
               clEnumValN(Target::CUDA, "cuda", "NVIDIA GPUs"),
               clEnumValN(Target::HIP, "hip", "AMD GPUs")),
    cl::cat(attncCategory));

static cl::opt<EmitKind> emitFlag(
    "emit", cl::desc("What to produce"), cl::init(EmitKind::Attn),
    cl::values(clEnumValN(EmitKind::Attn, "attn", "attn dialect IR (default)"),
               clEnumValN(EmitKind::Lowered, "lowered",
                          "IR after lowering to CPU loops"),
               clEnumValN(EmitKind::LLVM, "llvm", "LLVM IR"),
               clEnumValN(EmitKind::Obj, "obj", "an object file"),
               clEnumValN(EmitKind::Header, "header",
                          "a C header: the object's entry point, or (cuda) the cubin's launch"),
               clEnumValN(EmitKind::PTX, "ptx", "PTX assembly"),
               clEnumValN(EmitKind::Cubin, "cubin", "a CUDA binary"),
               clEnumValN(EmitKind::CUDA, "cuda", "CUDA C++ source"),
               clEnumValN(EmitKind::HIP, "hip", "HIP C++ source")),
    cl::cat(attncCategory));

static cl::opt<bool> runFlag("run",
                             cl::desc("Run the kernel on random inputs and "
                                      "check it against the reference"),
                             cl::cat(attncCategory));

static cl::list<std::string> paramFlags("param",
                                        cl::desc("Value of a runtime param"),
                                        cl::value_desc("NAME=VALUE"),
                                        cl::cat(attncCategory));

static cl::list<std::string>
    defineFlags("D", cl::Prefix,
                cl::desc("Fix a symbolic dimension at compile time"),
                cl::value_desc("DIM=SIZE"), cl::cat(attncCategory));

static cl::opt<std::string> dtypeFlag(
    "dtype",
    cl::desc("Element type for q, k, v and o, replacing the spec's (f32, "
             "bf16, f16)"),
    cl::value_desc("type"), cl::init(""), cl::cat(attncCategory));

static cl::opt<std::string>
    cpuFlag("cpu", cl::desc("CPU to generate code for (default: this host)"),
            cl::value_desc("name"), cl::init(""), cl::cat(attncCategory));

static cl::opt<int> vectorWidthFlag(
    "vector-width",
    cl::desc("f32 lanes per vector in CPU code (default: 16 with AVX-512, "
             "else 8)"),
    cl::init(0), cl::cat(attncCategory));

static cl::opt<std::string> archFlag(
    "arch",
    cl::desc("GPU architecture for --target=cuda (sm_90a, sm_90, sm_80, ...; "
             "default: sm_90a for --emit, the device's own for --run)"),
    cl::value_desc("sm_XX"), cl::init(""), cl::cat(attncCategory));

static cl::opt<bool> quickKernelFlag(
    "quick-kernel",
    cl::desc("--target=cuda: the kernel of the JIT's quick tier, cheaper to "
             "compile and a little slower (sm_90a: two CTAs per SM, not "
             "warp-specialized; tile classes from the one-function bounds; "
             "cubin at ptxas -O1). Its entry names end in _quick: emit its "
             "header with the flag too"),
    cl::cat(attncCategory));

static cl::opt<unsigned>
    threadsFlag("run-threads", cl::desc("Threads for --run (default: all cores)"),
                cl::init(0), cl::cat(attncCategory));

static cl::opt<bool>
    canonicalizeFlag("canonicalize",
                     cl::desc("Run the canonicalizer before emitting"),
                     cl::cat(attncCategory));

static cl::opt<bool> printIRAfterAllFlag(
    "print-ir-after-all",
    cl::desc("Print the IR to stderr after every pass that runs"),
    cl::cat(attncCategory));

/// Prints "attnc: error: <msg>" and returns kExitUserError.
static int userError(const llvm::Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "attnc") << msg << "\n";
  return kExitUserError;
}

/// Prints "attnc: error: internal error: <msg>" and returns kExitInternalError.
static int internalError(const llvm::Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "attnc") << "internal error: " << msg << "\n";
  return kExitInternalError;
}

static int notImplemented(StringRef flag) {
  return userError(flag + " is not implemented yet");
}

/// Splits "NAME=VALUE"; false if either side is empty.
static bool splitAssignment(StringRef text, StringRef &name, StringRef &value) {
  std::tie(name, value) = text.split('=');
  return !name.empty() && text.contains('=') && !value.empty();
}

/// Parses the -D options into `opts`.
static LogicalResult parseDefines(attnc::SpecOptions &opts) {
  for (StringRef text : defineFlags) {
    StringRef name, value;
    int64_t size;
    if (!splitAssignment(text, name, value)) {
      userError("-D expects DIM=SIZE, got '" + text + "'");
      return failure();
    }
    if (value.getAsInteger(10, size)) {
      userError("-D " + text + ": '" + value + "' is not an integer");
      return failure();
    }
    if (size < 1 || size > attnc::kMaxDimSize) {
      userError("-D " + text + ": a dimension size must be between 1 and " +
                llvm::Twine(attnc::kMaxDimSize));
      return failure();
    }
    auto [it, inserted] = opts.dims.try_emplace(name, size);
    if (!inserted && it->second != size) {
      userError("-D " + name + " is given twice with different sizes");
      return failure();
    }
  }
  return success();
}

/// Checks every --param against the params of the specs in `module` and
/// stores the typed values in `opts`.
static LogicalResult parseParams(ModuleOp module, CompileOptions &opts) {
  // Param name -> the types it has in the specs (one per spec using it).
  llvm::StringMap<SmallVector<Type, 1>> known;
  for (auto fn : module.getOps<func::FuncOp>())
    for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
      Type type = fn.getArgument(i).getType();
      auto name = fn.getArgAttrOfType<StringAttr>(i, "attn.name");
      if (name && !isa<MemRefType>(type))
        known[name.getValue()].push_back(type);
    }
  SmallVector<StringRef> names;
  for (const auto &k : known)
    names.push_back(k.getKey());
  llvm::sort(names);

  for (StringRef text : paramFlags) {
    StringRef name, value;
    if (!splitAssignment(text, name, value)) {
      userError("--param expects NAME=VALUE, got '" + text + "'");
      return failure();
    }
    auto it = known.find(name);
    if (it == known.end()) {
      std::string hint;
      if (std::optional<StringRef> guess =
              attnc::spec::closestName(name, names))
        hint = ("; did you mean '" + *guess + "'?").str();
      else if (names.empty())
        hint = "; the spec declares no params";
      userError("--param " + text + ": the spec has no param '" + name + "'" +
                hint);
      return failure();
    }
    for (Type type : it->second) {
      TypedAttr attr;
      if (auto intType = dyn_cast<IntegerType>(type)) {
        int64_t v;
        unsigned width = intType.getWidth();
        int64_t lo = width == 32 ? std::numeric_limits<int32_t>::min()
                                 : std::numeric_limits<int64_t>::min();
        int64_t hi = width == 32 ? std::numeric_limits<int32_t>::max()
                                 : std::numeric_limits<int64_t>::max();
        if (value.getAsInteger(10, v) || v < lo || v > hi) {
          userError("--param " + text + ": '" + value + "' is not a valid i" +
                    llvm::Twine(width) + " (an integer from " +
                    llvm::Twine(lo) + " to " + llvm::Twine(hi) + ")");
          return failure();
        }
        attr = IntegerAttr::get(type, v);
      } else {
        double v;
        if (value.getAsDouble(v) || !std::isfinite(static_cast<float>(v))) {
          userError("--param " + text + ": '" + value +
                    "' is not a valid f32 (a finite number)");
          return failure();
        }
        attr = FloatAttr::get(type, v);
      }
      opts.params[name] = attr;
    }
  }
  return success();
}

/// Runs the pipeline that produces `opts.emit` from the verified attn
/// module and writes the artifact to `os`. Returns an ExitCode.
/// The kernel function of a module for the CPU emit kinds, which take one.
static func::FuncOp singleKernel(ModuleOp module, StringRef what) {
  int count = 0;
  module.walk([&](func::FuncOp) { ++count; });
  if (count != 1) {
    userError(what + " takes a file with exactly one spec, found " +
              llvm::Twine(count));
    return {};
  }
  return attnc::findKernelFunc(module);
}

/// Compiles with the JIT, runs on random inputs against the reference and
/// prints the result. Exit 1 when the kernel does not match.
static int runAndCheck(const std::string &path, const CompileOptions &opts) {
  attnc::CompileOptions jit;
  for (const auto &[name, size] : opts.dims)
    jit.dims[name] = size;
  jit.dtype = opts.dtype;
  jit.vectorWidth = opts.vectorWidth;
  jit.target = opts.target == Target::CUDA ? attnc::Target::cuda : attnc::Target::cpu;
  jit.cudaArch = opts.arch;
  attnc::CheckOptions check;
  check.threads = opts.threads;
  for (const auto &entry : opts.params) {
    Attribute attr = entry.second;
    if (auto f = dyn_cast<FloatAttr>(attr))
      check.params[entry.first().str()] = f.getValueAsDouble();
    else if (auto i = dyn_cast<IntegerAttr>(attr))
      check.params[entry.first().str()] = static_cast<double>(i.getInt());
  }
  attnc::CheckReport r = attnc::checkSpec(path, jit, check);
  if (r.shape.empty()) { // did not get as far as running
    llvm::errs() << r.error;
    if (!r.error.empty() && r.error.back() != '\n')
      llvm::errs() << "\n";
    return kExitUserError;
  }
  llvm::outs() << llvm::format(
      "attnc: ran %s on the %s: %s\n"
      "  max error %.3g (tolerance %.3g%s), kernel %.3f ms (%.2f GFLOP/s), "
      "reference %.1f ms, compile %.1f ms%s\n",
      path.c_str(), opts.target == Target::CUDA ? "GPU" : "CPU", r.shape.c_str(),
      r.tolerance >= 1e-3 ? r.maxAbsError : r.maxRelError, r.tolerance,
      r.beyondWeightRounding ? " + output and weight rounding"
      : r.tolerance >= 1e-3  ? " + output rounding"
      : r.beyondSumRounding  ? " + the sum's rounding"
                             : "",
      r.kernelMs, r.gflops, r.referenceMs, r.compileMs,
      r.fromCache ? " (cached)" : "");
  if (r.quickMs > 0)
    llvm::outs() << llvm::format("  a first kernel (the quick tier) after %.1f ms; the final "
                                 "one compiled in the background\n",
                                 r.quickMs);
  if (r.ambiguousRows)
    llvm::outs() << "  " << r.ambiguousRows
                 << " rows not compared: their top-k block selection is a near tie\n";
  if (!r.ok)
    return userError("the kernel does not match the reference: " + r.error);
  llvm::outs() << "attnc: OK\n";
  return kExitSuccess;
}

/// Runs the pipeline that produces `opts.emit` from the verified attn
/// module and writes the artifact to `os`. Returns an ExitCode.
/// --target=cuda: the CUDA source of the kernel, or PTX or a cubin compiled
/// from it with NVRTC.
static int compileForCuda(ModuleOp module, const CompileOptions &opts,
                          llvm::raw_ostream &os) {
  StringRef flag = opts.emit == EmitKind::CUDA     ? "--emit=cuda"
                   : opts.emit == EmitKind::PTX    ? "--emit=ptx"
                   : opts.emit == EmitKind::Header ? "--emit=header"
                                                   : "--emit=cubin";
  func::FuncOp fn = singleKernel(module, flag);
  if (!fn)
    return kExitUserError;
  if (opts.dtype && failed(attnc::overrideDType(module, *opts.dtype)))
    return kExitUserError;
  if (failed(attnc::prepareForTarget(module, attnc::Target::cuda, opts.printIRAfterAll)))
    return internalError("preparing the module failed");
  std::string arch = opts.arch.empty() ? "sm_90a" : opts.arch;
  attnc::CudaKernel kernel;
  if (failed(attnc::emitCudaKernel(fn, arch, kernel, quickKernelFlag)))
    return kExitUserError;
  if (opts.emit == EmitKind::CUDA) {
    os << kernel.source;
    return kExitSuccess;
  }
  if (opts.emit == EmitKind::Header) {
    if (kernel.decode)
      return userError("--emit=header: paged keys and values need the runtime's split-KV launch "
                       "and its checks; use the JIT API for this spec");
    if (kernel.topk)
      return userError("--emit=header: a top-k block selection (topk in the mask) is computed "
                       "by the attnc runtime before each launch; use the JIT API for this spec");
    os << attnc::emitCudaLaunchHeader(fn, kernel);
    return kExitSuccess;
  }
  if (std::string archError; !attnc::cuda::nvrtcSupportsArch(arch, archError))
    return userError("--arch=" + arch + ": " + archError);
  std::string out, log;
  if (!attnc::cuda::compile(kernel.source, fn.getSymName().str() + ".cu", arch,
                            opts.emit == EmitKind::Cubin, out, log,
                            quickKernelFlag && opts.emit == EmitKind::Cubin)) {
    if (log.find("NVRTC not found") != std::string::npos)
      return userError(log);
    return internalError("NVRTC rejected the generated kernel:\n" + log);
  }
  os << out;
  return kExitSuccess;
}

static int compile(ModuleOp module, const CompileOptions &opts,
                   llvm::raw_ostream &os) {
  if (opts.target == Target::HIP)
    return notImplemented("--target=hip");
  bool gpuEmit = opts.emit == EmitKind::CUDA || opts.emit == EmitKind::PTX ||
                 opts.emit == EmitKind::Cubin;
  if (opts.target == Target::CUDA && !gpuEmit && opts.emit != EmitKind::Attn &&
      opts.emit != EmitKind::Header)
    return userError("--target=cuda emits attn, cuda, ptx, cubin or header");
  if (opts.target == Target::CPU && gpuEmit)
    return userError("--emit=cuda, ptx and cubin need --target=cuda");

  PassManager pm(module->getContext());
  if (opts.printIRAfterAll)
    pm.enableIRPrinting(
        /*shouldPrintBeforePass=*/[](Pass *, Operation *) { return false; },
        /*shouldPrintAfterPass=*/[](Pass *, Operation *) { return true; },
        /*printModuleScope=*/true, /*printAfterOnlyOnChange=*/false);
  if (opts.canonicalize)
    pm.addPass(createCanonicalizerPass());
  if (failed(pm.run(module)))
    return internalError("a pass failed on a verified module");

  switch (opts.emit) {
  case EmitKind::Attn:
    module.print(os);
    return kExitSuccess;
  case EmitKind::PTX:
  case EmitKind::Cubin:
  case EmitKind::CUDA:
    return compileForCuda(module, opts, os);
  case EmitKind::Lowered:
  case EmitKind::LLVM:
  case EmitKind::Obj:
  case EmitKind::Header: {
    if (opts.target == Target::CUDA) // the cubin's launch header
      return compileForCuda(module, opts, os);
    StringRef flag = opts.emit == EmitKind::Lowered ? "--emit=lowered"
                     : opts.emit == EmitKind::LLVM  ? "--emit=llvm"
                     : opts.emit == EmitKind::Obj   ? "--emit=obj"
                                                    : "--emit=header";
    func::FuncOp fn = singleKernel(module, flag);
    if (!fn)
      return kExitUserError;
    if (opts.dtype && failed(attnc::overrideDType(module, *opts.dtype)))
      return kExitUserError;
    if (failed(attnc::prepareForTarget(module, attnc::Target::cpu,
                                       opts.printIRAfterAll)))
      return internalError("preparing the module failed");
    unsigned topkArg = 0;
    bool aot = opts.emit == EmitKind::Header || opts.emit == EmitKind::Obj;
    if (aot && attnc::findAttention(fn).isPaged())
      return userError(flag + ": paged keys and values need the runtime's block table checks; "
                              "use the JIT API (or attnc --run) for this spec");
    if (aot && attnc::hiddenTopK(fn, topkArg))
      return userError(flag + ": a top-k block selection (topk in the mask) is computed by "
                              "the attnc runtime before each run; use the JIT API for this spec");
    std::string cpuError;
    std::optional<attnc::CpuFeatures> features = attnc::namedCpuFeatures(opts.cpu, cpuError);
    if (!features)
      return userError(cpuError);
    if (opts.emit == EmitKind::Header) {
      os << attnc::emitCHeader(attnc::extractKernelInfo(fn));
      return kExitSuccess;
    }
    std::string kernelName = fn.getSymName().str();
    // The code the JIT would make on the CPU named by --cpu (this host's by
    // default), but never AMX tiles: they need the process to have asked
    // the OS for the tile state, and their blocking changes the schedule
    // the header's work-item count was read from.
    int width = opts.vectorWidth ? opts.vectorWidth : attnc::vectorWidthFor(*features);
    attnc::CpuCodegen codegen = attnc::cpuCodegenFor(*features, width,
                                                     /*bf16Products=*/false, /*amxTiles=*/false);
    bool toLLVM = opts.emit != EmitKind::Lowered;
    if (failed(attnc::lowerForCPU(module, width, toLLVM, opts.printIRAfterAll, codegen)))
      return internalError("lowering to CPU loops failed");
    if (!toLLVM) {
      module.print(os);
      return kExitSuccess;
    }
    llvm::LLVMContext llvmCtx;
    auto llvmModule = attnc::translateToLLVMIR(module, llvmCtx, kernelName);
    if (!llvmModule)
      return internalError("translation to LLVM IR failed");
    if (opts.emit == EmitKind::LLVM) {
      llvmModule->print(os, nullptr);
      return kExitSuccess;
    }
    std::string error;
    auto tm = attnc::hostTargetMachine(error, opts.cpu);
    if (!tm)
      return userError(error);
    llvm::SmallVector<char, 0> object;
    if (!attnc::emitObject(*llvmModule, *tm, object, error))
      return internalError(error);
    os << llvm::StringRef(object.data(), object.size());
    return kExitSuccess;
  }
  case EmitKind::HIP:
    return notImplemented("--emit=hip");
  }
  return internalError("unknown emit kind");
}

int main(int argc, char **argv) {
  // `attnc kv ...` works on KV cache files, not specs.
  if (argc >= 2 && std::string(argv[1]) == "kv")
    return attnc::runKvCommand(argc - 1, argv + 1);
  llvm::InitLLVM init(argc, argv);
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << "attnc " ATTNC_VERSION_STRING " (LLVM " LLVM_VERSION_STRING ")\n";
  });
  cl::HideUnrelatedOptions(attncCategory);
  cl::ParseCommandLineOptions(argc, argv,
                              "attnc: the attention compiler\n\n"
                              "Compiles an attention spec (docs/language.md) "
                              "to attn IR and kernels.\n");

  if (inputFilename.empty())
    return userError("no input file; pass a spec file, or '-' for stdin");

  attnc::SpecOptions specOpts;
  if (failed(parseDefines(specOpts)))
    return kExitUserError;

  CompileOptions opts;
  opts.emit = emitFlag;
  opts.target = targetFlag;
  // A GPU emit kind alone implies its target.
  if (!targetFlag.getNumOccurrences() &&
      (emitFlag == EmitKind::CUDA || emitFlag == EmitKind::PTX || emitFlag == EmitKind::Cubin))
    opts.target = Target::CUDA;
  opts.arch = archFlag;
  if (!opts.arch.empty() && !attnc::cuda::archNumber(opts.arch))
    return userError("--arch takes sm_XX (sm_90a, sm_80, ...), got '" + archFlag + "'");
  opts.run = runFlag;
  if (quickKernelFlag &&
      (opts.run || opts.target != Target::CUDA ||
       !(emitFlag == EmitKind::CUDA || emitFlag == EmitKind::PTX ||
         emitFlag == EmitKind::Cubin || emitFlag == EmitKind::Header)))
    return userError("--quick-kernel applies to --target=cuda with --emit=cuda, ptx, cubin or "
                     "header (the JIT picks its tiers itself)");
  opts.canonicalize = canonicalizeFlag;
  opts.printIRAfterAll = printIRAfterAllFlag;
  opts.cpu = cpuFlag;
  opts.vectorWidth = vectorWidthFlag;
  opts.threads = threadsFlag;
  if (opts.vectorWidth < 0 || opts.vectorWidth > 64 ||
      (opts.vectorWidth & (opts.vectorWidth - 1)))
    return userError("--vector-width must be a power of two from 1 to 64");
  if (!dtypeFlag.empty()) {
    attnc::DType dt;
    if (!attnc::parseDType(dtypeFlag, dt) || dt == attnc::DType::i32 ||
        dt == attnc::DType::i64)
      return userError("--dtype takes f32, bf16 or f16, got '" + dtypeFlag + "'");
    opts.dtype = dt;
  }
  for (const auto &entry : specOpts.dims)
    opts.dims[entry.first().str()] = entry.second;

  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> input =
      openInputFile(inputFilename, &errorMessage);
  if (!input)
    return userError(errorMessage);

  MLIRContext ctx;
  attnc::prepareContext(ctx);
  // Module-scope IR printing needs a single thread; one spec is small.
  ctx.disableMultithreading();

  llvm::SourceMgr sm;
  sm.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sm, &ctx, llvm::errs());
  // Diagnostics about flags (-D) have no place in the file; print them like
  // the driver's own errors. Registered last, so it sees them first.
  ScopedDiagnosticHandler flagHandler(&ctx, [](Diagnostic &diag) {
    if (!isa<UnknownLoc>(diag.getLocation()))
      return failure();
    if (diag.getSeverity() == DiagnosticSeverity::Error)
      llvm::WithColor::error(llvm::errs(), "attnc") << diag.str() << "\n";
    else
      llvm::WithColor::note(llvm::errs(), "attnc") << diag.str() << "\n";
    return success();
  });

  OwningOpRef<ModuleOp> module = attnc::parseSpec(sm, &ctx, specOpts);
  if (!module)
    return kExitUserError;
  if (failed(verify(*module))) {
    llvm::WithColor::error(llvm::errs(), "attnc")
        << "internal error: the spec frontend built IR that does not "
           "verify; please report this with the spec\n";
    return kExitInternalError;
  }
  if (failed(parseParams(*module, opts)))
    return kExitUserError;
  if (opts.run) {
    if (opts.target == Target::HIP)
      return notImplemented("--run with --target=hip");
    if (inputFilename == "-")
      return userError("--run needs a spec file, not stdin");
    if (!singleKernel(*module, "--run"))
      return kExitUserError;
    return runAndCheck(inputFilename, opts);
  }

  std::string artifact;
  llvm::raw_string_ostream artifactStream(artifact);
  if (int rc = compile(*module, opts, artifactStream))
    return rc;

  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputFilename, &errorMessage);
  if (!output)
    return userError(errorMessage);
  output->os() << artifact;
  output->keep();
  return kExitSuccess;
}

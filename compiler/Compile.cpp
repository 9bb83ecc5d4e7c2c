//===- Compile.cpp - From source to objects ---------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "compiler/Compile.h"
#include "compiler/Registration.h"
#include "dialects/attn/AttnOps.h"
#include "frontends/spec/SpecFrontend.h"
#include "passes/Passes.h"
#include "passes/Pipelines.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/CodeGen/TargetInstrInfo.h"
#include "llvm/CodeGen/TargetSubtargetInfo.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

using namespace mlir;
using namespace attnc;

void attnc::prepareContext(MLIRContext &ctx) {
  DialectRegistry registry;
  registerAttncDialects(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  ctx.appendDialectRegistry(registry);
  // Dialects load on first use: a cache hit never needs LLVM's or vector's.
  ctx.getOrLoadDialect<attn::AttnDialect>();
}

OwningOpRef<ModuleOp>
attnc::loadAttnModule(MLIRContext &ctx, llvm::SourceMgr &sm,
                      const std::map<std::string, int64_t> &dims) {
  llvm::StringRef name =
      sm.getMemoryBuffer(sm.getMainFileID())->getBufferIdentifier();
  OwningOpRef<ModuleOp> module;
  if (name.ends_with(".mlir")) {
    module = parseSourceFile<ModuleOp>(sm, &ctx);
  } else {
    SpecOptions opts;
    for (const auto &[dim, size] : dims)
      opts.dims[dim] = size;
    module = parseSpec(sm, &ctx, opts);
  }
  if (module && failed(verify(*module)))
    return {};
  return module;
}

func::FuncOp attnc::findKernelFunc(ModuleOp module) {
  func::FuncOp found;
  int count = 0;
  module.walk([&](attn::AttentionOp op) {
    ++count;
    found = op->getParentOfType<func::FuncOp>();
  });
  if (count != 1) {
    emitError(module.getLoc())
        << "expects exactly one attn.attention in the module, found " << count;
    return {};
  }
  return found;
}

attn::AttentionOp attnc::findAttention(func::FuncOp fn) {
  attn::AttentionOp op;
  fn.walk([&](attn::AttentionOp found) { op = found; });
  return op;
}

LogicalResult attnc::overrideDType(ModuleOp module, DType dtype) {
  func::FuncOp fn = findKernelFunc(module);
  if (!fn)
    return failure();
  attn::AttentionOp op = findAttention(fn);
  Builder b(module.getContext());
  Type elt = dtype == DType::f32    ? Type(b.getF32Type())
             : dtype == DType::bf16 ? Type(b.getBF16Type())
             : dtype == DType::f16  ? Type(b.getF16Type())
                                    : Type();
  if (!elt)
    return emitError(module.getLoc(), "q, k, v and o take f32, bf16 or f16");
  for (Value v : {op.getQuery(), op.getKey(), op.getValue(), op.getOutput()}) {
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || arg.getOwner()->getParentOp() != fn)
      return emitError(op.getLoc(), "q, k, v and o must be function arguments");
    auto mem = cast<MemRefType>(arg.getType());
    if (op.getKvQuant() && (v == op.getKey() || v == op.getValue()))
      continue; // quantized codes keep their format
    arg.setType(MemRefType::get(mem.getShape(), elt, mem.getLayout()));
  }
  fn.setFunctionType(FunctionType::get(module.getContext(),
                                       fn.getBody().getArgumentTypes(),
                                       fn.getFunctionType().getResults()));
  return verify(module);
}

/// Runs `pm` on `module` with optional IR printing after every pass.
static LogicalResult runPipeline(PassManager &pm, ModuleOp module,
                                 bool printIRAfterAll) {
  if (printIRAfterAll) {
    module.getContext()->disableMultithreading();
    pm.enableIRPrinting([](Pass *, Operation *) { return false; },
                        [](Pass *, Operation *) { return true; },
                        /*printModuleScope=*/true,
                        /*printAfterOnlyOnChange=*/false);
  }
  // $ATTNC_TIMING=passes: MLIR's report of each pass's time.
  if (const char *env = std::getenv("ATTNC_TIMING"); env && std::string(env) == "passes")
    pm.enableTiming();
  return pm.run(module);
}

LogicalResult attnc::prepareForTarget(ModuleOp module, Target target,
                                      bool printIRAfterAll, bool amx) {
  PassManager pm(module.getContext());
  pm.addPass(createCanonicalizerPass());
  pm.addNestedPass<func::FuncOp>(createAttnMaterializeTopKPass());
  AttnSelectSchedulePassOptions schedule;
  schedule.target = target == Target::cuda ? "cuda" : "cpu";
  schedule.amx = amx;
  pm.addNestedPass<func::FuncOp>(createAttnSelectSchedulePass(schedule));
  return runPipeline(pm, module, printIRAfterAll);
}

static bool dtypeOf(Type t, DType &out) {
  if (t.isF32()) out = DType::f32;
  else if (t.isBF16()) out = DType::bf16;
  else if (t.isF16()) out = DType::f16;
  else if (t.isInteger(32)) out = DType::i32;
  else if (t.isInteger(64) || t.isIndex()) out = DType::i64;
  else if (t.isInteger(8)) out = DType::q8;
  else return false;
  return true;
}

KernelInfo attnc::extractKernelInfo(func::FuncOp fn) {
  KernelInfo info;
  info.name = fn.getSymName().str();
  attn::AttentionOp op = findAttention(fn);
  if (op && op.getSchedule()) {
    info.blockQ = op.getScheduleAttr().getBlockQ();
    info.blockK = op.getScheduleAttr().getBlockK();
    CpuItemShape items = cpuItemShape(op, info.blockQ);
    info.headsPerItem = items.headsPerItem;
    info.queriesPerItem = items.queriesPerItem;
  }
  int tensorIndex = 0;
  if (op && op.isPaged())
    info.paged.emplace();
  for (BlockArgument arg : fn.getArguments()) {
    if (fn.getArgAttr(arg.getArgNumber(), "attn.hidden"))
      continue; // the runtime supplies it
    ArgInfo a;
    if (isa<MemRefType>(arg.getType()) && info.paged) {
      int n = tensorIndex;
      if (arg == op.getPageTable()) info.paged->table = n;
      if (arg == op.getSeqLens()) info.paged->lens = n;
      if (arg == op.getKeyScale()) info.paged->keyScale = n;
      if (arg == op.getValueScale()) info.paged->valueScale = n;
      a.pageStrided = arg == op.getKey() || arg == op.getValue() ||
                      arg == op.getKeyScale() || arg == op.getValueScale();
    }
    tensorIndex += isa<MemRefType>(arg.getType());
    unsigned n = arg.getArgNumber();
    auto nameAttr = fn.getArgAttrOfType<StringAttr>(n, "attn.name");
    a.name = nameAttr ? nameAttr.str() : "arg" + std::to_string(n);
    a.isOutput = op && (arg == op.getOutput() || arg == op.getLse());
    if (auto mem = dyn_cast<MemRefType>(arg.getType())) {
      dtypeOf(mem.getElementType(), a.dtype);
      bool codes = op && op.getKvQuant() && (arg == op.getKey() || arg == op.getValue());
      if (codes)
        a.dtype = *op.getKvQuant() == attn::KVQuant::q4 ? DType::q4 : DType::q8;
      auto names = fn.getArgAttrOfType<ArrayAttr>(n, "attn.dims");
      // Without names from the spec, name the dims by their role.
      std::vector<const char *> roles;
      if (op && op.isPaged() && arg == op.getKey()) roles = {"P", "Hkv", "PS", "D"};
      else if (op && op.isPaged() && arg == op.getValue()) roles = {"P", "Hkv", "PS", "Dv"};
      else if (op && arg == op.getQuery()) roles = {"B", "Hq", "S", "D"};
      else if (op && arg == op.getKey()) roles = {"B", "Hkv", "T", "D"};
      else if (op && arg == op.getValue()) roles = {"B", "Hkv", "T", "Dv"};
      else if (op && arg == op.getOutput()) roles = {"B", "Hq", "S", "Dv"};
      else if (op && arg == op.getLse()) roles = {"B", "Hq", "S"};
      for (int64_t d = 0; d < mem.getRank(); ++d) {
        int64_t size = mem.getDimSize(d);
        if (codes && d == 3 && a.dtype == DType::q4)
          size *= 2; // the caller counts features, not bytes
        a.dims.push_back(ShapedType::isDynamic(size) ? -1 : size);
        std::string dimName = d < static_cast<int64_t>(roles.size())
                                  ? std::string(roles[d])
                                  : "?" + std::to_string(n) + "." + std::to_string(d);
        if (names && d < static_cast<int64_t>(names.size()))
          if (auto s = dyn_cast<StringAttr>(names[d]))
            dimName = s.str();
        a.dimNames.push_back(dimName);
      }
    } else {
      a.isTensor = false;
      dtypeOf(arg.getType(), a.dtype);
      Attribute def = fn.getArgAttr(n, "attn.default");
      if (auto f = dyn_cast_or_null<FloatAttr>(def))
        a.defaultValue = f.getValueAsDouble();
      else if (auto i = dyn_cast_or_null<IntegerAttr>(def))
        a.defaultValue = static_cast<double>(i.getValue().getSExtValue());
    }
    info.args.push_back(std::move(a));
  }
  return info;
}

LogicalResult attnc::lowerForCPU(ModuleOp module, int vectorWidth, bool toLLVM,
                                 bool printIRAfterAll, const CpuCodegen &codegen) {
  PassManager pm(module.getContext());
  AttnToCPUPipelineOptions options;
  options.vectorWidth = vectorWidth;
  options.toLLVM = toLLVM;
  options.skipTiles = codegen.skipTiles;
  options.amx = codegen.amx;
  options.amxDot = codegen.amxDot;
  options.int8Dot = codegen.int8Dot;
  options.bf16Dot = codegen.bf16Dot;
  options.fastExp = codegen.fastExp;
  options.keyCacheFloats = codegen.keyCacheFloats;
  buildAttnToCPUPipeline(pm, options);
  return runPipeline(pm, module, printIRAfterAll);
}

std::unique_ptr<llvm::Module>
attnc::translateToLLVMIR(ModuleOp module, llvm::LLVMContext &llvmCtx,
                         const std::string &kernelName) {
  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(module, llvmCtx, kernelName);
  if (!llvmModule)
    return nullptr;
  llvm::Function *entry =
      llvmModule->getFunction("_mlir_ciface_" + kernelName);
  if (!entry)
    return nullptr;
  // attnc_packed_<name>(void **args): args[i] points at argument i.
  llvm::IRBuilder<> b(llvmCtx);
  auto *ptrTy = llvm::PointerType::getUnqual(llvmCtx);
  auto *fnTy = llvm::FunctionType::get(b.getVoidTy(), {ptrTy}, false);
  auto *packed = llvm::Function::Create(fnTy, llvm::GlobalValue::ExternalLinkage,
                                        "attnc_packed_" + kernelName,
                                        llvmModule.get());
  b.SetInsertPoint(llvm::BasicBlock::Create(llvmCtx, "entry", packed));
  llvm::SmallVector<llvm::Value *> callArgs;
  for (auto [i, param] : llvm::enumerate(entry->args())) {
    llvm::Value *slot = b.CreateConstGEP1_64(ptrTy, packed->getArg(0), i);
    llvm::Value *argPtr = b.CreateLoad(ptrTy, slot);
    callArgs.push_back(b.CreateLoad(param.getType(), argPtr));
  }
  b.CreateCall(entry, callArgs);
  b.CreateRetVoid();
  return llvmModule;
}

static void initializeNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

std::unique_ptr<llvm::TargetMachine>
attnc::hostTargetMachine(std::string &error, const std::string &cpu) {
  initializeNativeTarget();
  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) {
    error = llvm::toString(jtmb.takeError());
    return nullptr;
  }
  if (!cpu.empty() && cpu != "native") {
    jtmb->setCPU(cpu);
    jtmb->getFeatures() = llvm::SubtargetFeatures();
  }
  jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  jtmb->setRelocationModel(llvm::Reloc::PIC_);
  // Multiply-adds become FMAs (one rounding instead of two): the polynomial
  // exp and tanh are chains of them, and as separate mul and add they were
  // a tenth of a dense kernel's time (docs/cpu-backend.md).
  jtmb->getOptions().AllowFPOpFusion = llvm::FPOpFusion::Fast;
  auto tm = jtmb->createTargetMachine();
  if (!tm) {
    error = llvm::toString(tm.takeError());
    return nullptr;
  }
  return std::move(*tm);
}

static bool envIsZero(const char *name) {
  const char *env = std::getenv(name);
  return env && std::string(env) == "0";
}

CpuFeatures attnc::hostCpuFeatures() {
  static const CpuFeatures host = [] {
    llvm::StringMap<bool> f = llvm::sys::getHostCPUFeatures();
    CpuFeatures c;
    c.avx512f = f.lookup("avx512f");
    c.avx512dq = f.lookup("avx512dq");
    c.avx512bw = f.lookup("avx512bw");
    c.avx512bf16 = f.lookup("avx512bf16");
    c.avx512vnni = f.lookup("avx512vnni");
    c.amxBf16 = f.lookup("amx-bf16") && f.lookup("amx-tile");
    return c;
  }();
  return host;
}

std::optional<CpuFeatures> attnc::namedCpuFeatures(const std::string &cpu,
                                                   std::string &error) {
  if (cpu.empty() || cpu == "native")
    return hostCpuFeatures();
  initializeNativeTarget();
  llvm::Triple triple(llvm::sys::getProcessTriple());
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return std::nullopt;
  // Asked first: LLVM warns about an unknown CPU name and then cannot make
  // 64-bit code for it.
  std::unique_ptr<llvm::MCSubtargetInfo> generic(
      target->createMCSubtargetInfo(triple, "", ""));
  if (!generic || !generic->isCPUStringValid(cpu)) {
    error = "--cpu=" + cpu + ": not a CPU LLVM knows for " + triple.str() +
            " (try 'llc-22 -mcpu=help' for the names)";
    return std::nullopt;
  }
  // The features below are x86's (LLVM aborts on a name its target lacks);
  // other CPUs get the portable choices.
  if (!triple.isX86())
    return CpuFeatures{};
  std::unique_ptr<llvm::MCSubtargetInfo> sti(target->createMCSubtargetInfo(triple, cpu, ""));
  CpuFeatures c;
  c.avx512f = sti->checkFeatures("+avx512f");
  c.avx512dq = sti->checkFeatures("+avx512dq");
  c.avx512bw = sti->checkFeatures("+avx512bw");
  c.avx512bf16 = sti->checkFeatures("+avx512bf16");
  c.avx512vnni = sti->checkFeatures("+avx512vnni");
  c.amxBf16 = sti->checkFeatures("+amx-bf16,+amx-tile");
  return c;
}

int attnc::vectorWidthFor(const CpuFeatures &features) {
  // $ATTNC_CPU_VECTOR_WIDTH (4, 8 or 16) overrides the CPU's choice, so an
  // AVX-512 machine also tests the 8-lane code that AVX2 machines get.
  if (const char *env = std::getenv("ATTNC_CPU_VECTOR_WIDTH")) {
    int width = std::atoi(env);
    if (width == 4 || width == 8 || width == 16)
      return width;
  }
  return features.avx512f ? 16 : 8;
}

static bool dotBF16(const CpuFeatures &f) {
  return f.avx512bf16 && f.avx512f && !envIsZero("ATTNC_CPU_AMX");
}

static std::string int8Dot(const CpuFeatures &f) {
  if (!(f.avx512vnni && f.avx512bw && f.avx512f))
    return "off";
  const char *env = std::getenv("ATTNC_CPU_INT8_DOT");
  std::string choice = env ? env : "";
  if (choice == "0")
    return "off";
  return choice == "all" ? "all" : "q4";
}

static bool fastExp(const CpuFeatures &f) {
  // vreduceps is AVX512-DQ (every AVX-512 CPU since Skylake-SP; not Knights
  // Landing).
  return f.avx512f && f.avx512dq && !envIsZero("ATTNC_CPU_FAST_EXP");
}

CpuCodegen attnc::cpuCodegenFor(const CpuFeatures &features, int width,
                                bool bf16Products, bool amxTiles) {
  CpuCodegen codegen;
  if (const char *env = std::getenv("ATTNC_CPU_KEY_CACHE_FLOATS"))
    codegen.keyCacheFloats = std::clamp<int64_t>(std::atoll(env), 0, int64_t(1) << 28);
  // The instructions below are 16-lane forms; a width of 16 forced on an
  // AVX2 CPU keeps the portable code.
  if (width != 16)
    return codegen;
  // AMX tiles, or on CPUs with AVX512-BF16 but no usable tiles the same
  // blocking with vdpbf16ps products (amxDot).
  codegen.amxDot = bf16Products && !amxTiles && dotBF16(features);
  codegen.amx = codegen.amxDot || (bf16Products && amxTiles);
  codegen.int8Dot = int8Dot(features);
  // Decode scores over bf16 keys as vdpbf16ps wherever the CPU has them.
  codegen.bf16Dot = dotBF16(features);
  codegen.fastExp = fastExp(features);
  return codegen;
}

bool attnc::hostAmx() {
  if (envIsZero("ATTNC_CPU_AMX"))
    return false;
  static const bool usable = [] {
    CpuFeatures features = hostCpuFeatures();
    if (!features.amxBf16 || !features.avx512bf16)
      return false;
#if defined(__linux__) && defined(__x86_64__)
    // Linux gives a process the 8 KB of tile state only when it asks
    // (ARCH_REQ_XCOMP_PERM for XTILEDATA); without it a tile instruction
    // faults. The grant is process-wide.
    constexpr long kRequestPermission = 0x1023, kTileData = 18;
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
#else
    return false;
#endif
  }();
  return usable;
}

bool attnc::emitObject(llvm::Module &module, llvm::TargetMachine &tm,
                       llvm::SmallVectorImpl<char> &out, std::string &error, bool quick) {
  module.setDataLayout(tm.createDataLayout());
  module.setTargetTriple(tm.getTargetTriple());
  // Quick: no IR pipeline, fast instruction selection and register
  // allocation (a fifth of the time, kernels 3-10x slower).
  if (quick)
    tm.setOptLevel(llvm::CodeGenOptLevel::None);
  // O2 without LLVM's loop and SLP vectorizers: the kernel is vectorized
  // already, and they cost compile time for no speed. The unroller stays:
  // it is worth 20-40% on the inner products.
  if (!quick) {
    llvm::PipelineTuningOptions tuning;
    tuning.LoopUnrolling = true;
    tuning.LoopVectorization = false;
    tuning.SLPVectorization = false;
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(&tm, tuning);
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2).run(module, mam);
  }
  llvm::raw_svector_ostream os(out);
  llvm::legacy::PassManager pm;
  if (tm.addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile)) {
    error = "the target cannot emit object files";
    return false;
  }
  pm.run(module);
  return true;
}

void attnc::warmUpCodeGen() {
  static std::once_flag once;
  std::call_once(once, [] {
    // A loop of vector multiply-adds through the whole pipeline.
    llvm::LLVMContext ctx;
    llvm::Module module("warm_up", ctx);
    llvm::IRBuilder<> b(ctx);
    auto *vec = llvm::FixedVectorType::get(b.getFloatTy(), 16);
    auto *fnTy = llvm::FunctionType::get(b.getVoidTy(), {b.getPtrTy(), b.getInt64Ty()}, false);
    auto *fn = llvm::Function::Create(fnTy, llvm::GlobalValue::ExternalLinkage, "warm_up", module);
    auto *entry = llvm::BasicBlock::Create(ctx, "entry", fn);
    auto *body = llvm::BasicBlock::Create(ctx, "body", fn);
    auto *exit = llvm::BasicBlock::Create(ctx, "exit", fn);
    b.SetInsertPoint(entry);
    b.CreateBr(body); // the code never runs: no test for n > 0
    b.SetInsertPoint(body);
    llvm::PHINode *i = b.CreatePHI(b.getInt64Ty(), 2);
    i->addIncoming(b.getInt64(0), entry);
    llvm::Value *at = b.CreateGEP(vec, fn->getArg(0), i);
    llvm::Value *x = b.CreateLoad(vec, at);
    llvm::Value *y = b.CreateIntrinsic(llvm::Intrinsic::fma, {vec}, {x, x, x});
    b.CreateStore(b.CreateIntrinsic(llvm::Intrinsic::exp2, {vec}, {y}), at);
    llvm::Value *next = b.CreateAdd(i, b.getInt64(1));
    i->addIncoming(next, body);
    b.CreateCondBr(b.CreateICmpSLT(next, fn->getArg(1)), body, exit);
    b.SetInsertPoint(exit);
    b.CreateRetVoid();
    std::string error;
    auto tm = hostTargetMachine(error);
    if (!tm)
      return;
    // MachineLICM builds the X86 memory-unfolding table the first time it
    // looks at a folded load in a loop; a query builds it here.
    unsigned loadIndex = 0;
    tm->getSubtargetImpl(*fn)->getInstrInfo()->getOpcodeAfterMemoryUnfold(1, true, false,
                                                                          &loadIndex);
    llvm::SmallVector<char, 0> out;
    emitObject(module, *tm, out, error);
  });
}

std::string attnc::emitCHeader(const KernelInfo &info) {
  std::string guard = "ATTNC_KERNEL_" + info.name + "_H";
  for (char &c : guard)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string h;
  h += "/* Generated by attnc " ATTNC_VERSION_STRING " for kernel '" + info.name +
       "'. Link with the object from attnc --emit=obj. */\n";
  h += "#ifndef " + guard + "\n#define " + guard + "\n\n#include <stdint.h>\n\n";
  h += "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
  h += "/* A strided view: sizes and strides in elements, row-major when contiguous. */\n";
  for (int r = 1; r <= 4; ++r)
    h += "#ifndef ATTNC_MEMREF" + std::to_string(r) + "D_DEFINED\n#define ATTNC_MEMREF" +
         std::to_string(r) + "D_DEFINED\ntypedef struct { void *allocated; void *aligned; "
         "int64_t offset; int64_t sizes[" + std::to_string(r) + "]; int64_t strides[" +
         std::to_string(r) + "]; } attnc_memref" + std::to_string(r) + "d;\n#endif\n";
  std::string upper = info.name;
  for (char &c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  h += "\n/* Query rows per work item. */\n#define ATTNC_" + upper + "_BLOCK_Q " +
       std::to_string(info.blockQ) + "\n\n";
  h += "/* Arguments:\n";
  for (const ArgInfo &a : info.args) {
    h += " *   " + a.name + (a.isTensor ? (a.isOutput ? " (output) " : " (input) ") : " (param) ");
    h += dtypeName(a.dtype);
    if (a.isTensor) {
      h += "[";
      for (size_t d = 0; d < a.dims.size(); ++d)
        h += (d ? ", " : "") + (a.dims[d] < 0 ? a.dimNames[d] : std::to_string(a.dims[d]));
      h += "]";
    } else if (a.defaultValue) {
      h += " default " + std::to_string(*a.defaultValue);
    }
    h += "\n";
  }
  h += " * Work items are (batch, query head, query tile), query tile fastest:\n"
       " * pass [0, attnc_" + info.name + "_work_items(...)) for the whole problem,\n"
       " * or split that range over threads in runs of consecutive items: a call\n"
       " * transposes each key tile of a head once for all of its items. */\n";
  h += "static inline int64_t attnc_" + info.name +
       "_work_items(int64_t batch, int64_t q_heads, int64_t q_len) {\n"
       "  return batch * q_heads * ((q_len + ATTNC_" + upper + "_BLOCK_Q - 1) / ATTNC_" +
       upper + "_BLOCK_Q);\n}\n\n";
  h += "void _mlir_ciface_" + info.name + "(";
  bool first = true;
  for (const ArgInfo &a : info.args) {
    h += first ? "" : ", ";
    first = false;
    if (a.isTensor)
      h += "attnc_memref" + std::to_string(a.dims.size()) + "d *" + a.name;
    else
      h += std::string(a.dtype == DType::f32 ? "float " : a.dtype == DType::i32 ? "int32_t " : "int64_t ") + a.name;
  }
  h += std::string(first ? "" : ", ") + "int64_t work_begin, int64_t work_end);\n\n";
  h += "#ifdef __cplusplus\n}\n#endif\n\n#endif\n";
  return h;
}

std::optional<TopKParams> attnc::hiddenTopK(func::FuncOp fn, unsigned &argIndex) {
  for (BlockArgument arg : fn.getArguments()) {
    auto params = fn.getArgAttrOfType<ArrayAttr>(arg.getArgNumber(), "attn.topk");
    if (!params || params.size() != 4)
      continue;
    auto param = [&](int n) { return cast<IntegerAttr>(params[n]).getInt(); };
    TopKParams p;
    p.topK = param(0);
    p.blockQ = param(1);
    p.blockK = param(2);
    p.causal = param(3) != 0;
    attn::AttentionOp op = findAttention(fn);
    p.alignEnd = op && op.getAlign() == attn::QueryAlign::end;
    argIndex = arg.getArgNumber();
    return p;
  }
  return std::nullopt;
}

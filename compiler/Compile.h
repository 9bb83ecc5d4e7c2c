//===- Compile.h - From source to objects, shared by attnc and the JIT -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The stages every route takes: load a spec (or attn IR), prepare it for a
// target (canonical form, schedule), read off the kernel's signature, lower
// to the LLVM dialect, translate to LLVM IR and emit an object for a CPU.
// attnc calls them one by one to stop at any --emit kind; the JIT calls all.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_COMPILE_H
#define ATTNC_COMPILER_COMPILE_H

#include "attnc/attnc.h"
#include "attnc/runtime/TopKSelect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"

#include <memory>
#include <optional>
#include <string>

namespace llvm {
class LLVMContext;
class Module;
class SourceMgr;
class TargetMachine;
class raw_ostream;
} // namespace llvm

namespace mlir {
class MLIRContext;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace attnc {
namespace attn {
class AttentionOp;
} // namespace attn

/// Registers every dialect and translation the compiler needs into `ctx`.
void prepareContext(mlir::MLIRContext &ctx);

/// Parses the main buffer of `sm`: attn IR when its name ends in .mlir, a
/// spec otherwise. Diagnostics go through `ctx`'s handler. Null on error.
mlir::OwningOpRef<mlir::ModuleOp>
loadAttnModule(mlir::MLIRContext &ctx, llvm::SourceMgr &sm,
               const std::map<std::string, int64_t> &dims);

/// Gives q, k, v and o of the kernel function the element type `dtype`.
mlir::LogicalResult overrideDType(mlir::ModuleOp module, DType dtype);

/// The one function with an attn.attention, or null (with a diagnostic).
mlir::func::FuncOp findKernelFunc(mlir::ModuleOp module);
attn::AttentionOp findAttention(mlir::func::FuncOp fn);

/// Canonicalizes and picks a schedule for `target` (`amx`: the CPU
/// lowering will use AMX tiles).
mlir::LogicalResult prepareForTarget(mlir::ModuleOp module, Target target,
                                     bool printIRAfterAll, bool amx = false);

/// Reads the signature (names, dtypes, dims, params, tiles) of `fn`.
/// Hidden arguments (the attn.topk selection table) are not part of it.
KernelInfo extractKernelInfo(mlir::func::FuncOp fn);

/// The selection of `fn`'s hidden top-k table (attn-materialize-topk), or
/// nothing; `argIndex` gets the table's argument number.
std::optional<TopKParams> hiddenTopK(mlir::func::FuncOp fn, unsigned &argIndex);

/// The CPU lowering's choices that depend on the host's instructions
/// (Jit.cpp picks them; the defaults are portable). convert-attn-to-cpu's
/// options of the same names.
struct CpuCodegen {
  bool skipTiles = true;
  /// bf16 prefill's matrix products on AMX tiles; with `amxDot` as
  /// AVX512-BF16 dot products in the tiles' layout instead.
  bool amx = false, amxDot = false;
  /// Decode scores over quantized keys as VNNI int8 dot products (off, q4
  /// or all).
  std::string int8Dot = "off";
  /// Decode scores over bf16 keys as AVX512-BF16 dot products.
  bool bf16Dot = false;
  /// Softmax and sigmoid weights through vreduceps/vscalefps (AVX-512).
  bool fastExp = false;
  /// convert-attn-to-cpu's key-cache-floats; $ATTNC_CPU_KEY_CACHE_FLOATS
  /// (tests: a small cache reaches the path of heads past it).
  int64_t keyCacheFloats = int64_t(1) << 21;
};

/// attn IR (prepared) -> loops; with `toLLVM` on to the LLVM dialect.
mlir::LogicalResult lowerForCPU(mlir::ModuleOp module, int vectorWidth,
                                bool toLLVM, bool printIRAfterAll,
                                const CpuCodegen &codegen = {});

/// LLVM dialect -> LLVM IR, plus `attnc_packed_<name>(void **args)` that
/// takes one pointer per argument of `_mlir_ciface_<name>`.
std::unique_ptr<llvm::Module> translateToLLVMIR(mlir::ModuleOp module,
                                                llvm::LLVMContext &llvmCtx,
                                                const std::string &kernelName);

/// A target machine for this host's CPU and features (or `cpu` if given and
/// not "native"; namedCpuFeatures() checks the name first).
std::unique_ptr<llvm::TargetMachine> hostTargetMachine(std::string &error,
                                                       const std::string &cpu = "");

/// The instruction sets the CPU lowering's choices depend on.
struct CpuFeatures {
  bool avx512f = false, avx512dq = false, avx512bw = false, avx512bf16 = false,
       avx512vnni = false;
  /// AMX-TILE and AMX-BF16 (their code also needs the OS's grant: hostAmx()).
  bool amxBf16 = false;
};
/// This host's features, as LLVM detects them.
CpuFeatures hostCpuFeatures();
/// The features of the CPU LLVM calls `cpu` ("" or "native": this host's);
/// nothing, and `error` set, for a name LLVM does not know.
std::optional<CpuFeatures> namedCpuFeatures(const std::string &cpu, std::string &error);
/// 16 f32 lanes with AVX-512, else 8; $ATTNC_CPU_VECTOR_WIDTH (4, 8, 16)
/// overrides.
int vectorWidthFor(const CpuFeatures &features);
/// The lowering's choices for `width`-lane code on a CPU with `features`,
/// the same for the JIT and for AOT objects. `bf16Products`: bf16 prefill
/// may take the AMX blocking (which changes the schedule); `amxTiles`: tile
/// instructions may run in this process (hostAmx()); without them the
/// blocking takes AVX512-BF16 dot products. $ATTNC_CPU_AMX=0,
/// $ATTNC_CPU_INT8_DOT and $ATTNC_CPU_FAST_EXP=0 apply (the functions below).
CpuCodegen cpuCodegenFor(const CpuFeatures &features, int width, bool bf16Products,
                         bool amxTiles);

/// Whether JIT'd kernels may use AMX tiles: the CPU has AMX-BF16 (and
/// AVX512-BF16), the OS granted this process the tile state, and
/// $ATTNC_CPU_AMX is not 0.
bool hostAmx();

/// Optimizes `module` at O2 for `tm` and emits an object file into `out`;
/// `quick`: no optimization (the JIT's quick tier).
bool emitObject(llvm::Module &module, llvm::TargetMachine &tm,
                llvm::SmallVectorImpl<char> &out, std::string &error, bool quick = false);

/// Optimizes and emits a small module once per process. LLVM builds some
/// function-local statics the first time a pass runs; emitted here, on the
/// calling thread, they are built before the background compiles start,
/// and so are destroyed at exit only after those compiles are joined.
void warmUpCodeGen();

/// The C header declaring the AOT entry point of `info`.
std::string emitCHeader(const KernelInfo &info);

} // namespace attnc

#endif // ATTNC_COMPILER_COMPILE_H

//===- CudaEmission.h - Shared pieces of the CUDA emitters ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Private to passes/: what AttnToCUDA.cpp (the forward kernels) and
// PagedDecodeToCUDA.cpp (the paged decode kernels) share. CudaRegions.cpp
// turns regions into device functions and writes the head every generated
// unit starts with.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_CUDAEMISSION_H
#define ATTNC_PASSES_CUDAEMISSION_H

#include "dialects/attn/AttnOps.h"
#include "passes/AttnToCUDA.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace attnc {
namespace cuda_emit {

/// Prints the C++ for ops of one function body.
class RegionEmitter {
public:
  RegionEmitter(attn::AttentionOp op, mlir::func::FuncOp fn, llvm::raw_ostream &os)
      : op(op), fn(fn), os(os) {}

  /// Names a block argument of the body being emitted.
  void bind(mlir::Value v, std::string name) { names[v] = std::move(name); }
  /// Integer values to carry as `int` (narrowIndexValues).
  void setNarrow(llvm::DenseSet<mlir::Value> values) { narrow = std::move(values); }
  /// The `#pragma unroll` of scans (loops over tensors): loads in flight.
  void setScanUnroll(int n) { scanUnroll = n; }
  mlir::LogicalResult emitBlock(mlir::Block &block, int indent);
  /// Emits some of a block's operations, in order.
  mlir::LogicalResult emitOps(llvm::ArrayRef<mlir::Operation *> ops, int indent);
  /// The C type a value is declared with (`int` for narrowed indices).
  std::string declTypeOf(mlir::Value v);
  std::string nameOf(mlir::Value v);
  std::string typeOf(mlir::Type t);
  /// The error to report, once emission failed.
  std::string error;

private:
  mlir::LogicalResult emitOp(mlir::Operation &o, int indent);
  std::string fresh() { return "v" + std::to_string(counter++); }
  std::string tensorIndex(mlir::Value memref, mlir::ValueRange indices);
  std::string load(mlir::Value memref, mlir::ValueRange indices);

  attn::AttentionOp op;
  mlir::func::FuncOp fn;
  llvm::raw_ostream &os;
  llvm::DenseMap<mlir::Value, std::string> names;
  llvm::DenseSet<mlir::Value> narrow;
  int counter = 0;
  int scanUnroll = 8;
};

/// Bounds on one block argument's value.
struct IndexBounds {
  int64_t min, max;
};
/// The results of `body`'s operations that always fit in 32 bits, given
/// bounds on its arguments (CudaIndexNarrowing.cpp), for the emitter to type
/// `int`.
llvm::DenseSet<mlir::Value> narrowIndexValues(mlir::Block &body,
                                              llvm::ArrayRef<IndexBounds> argBounds);


/// Whether `o` reads a tensor (attn.read, attn.listed, memref.load).
bool isTensorRead(mlir::Operation *o);
/// Whether `o`, or an op nested in it, reads a tensor.
bool readsTensor(mlir::Operation *o);

/// One argument of a region's device functions. An `ambient` one is an
/// expression every function can read (a size in AttncArgs, "a.S"): no
/// parameter, and no part depends on it.
struct RegionArg {
  const char *name;
  IndexBounds bounds;
  bool ambient = false;
};
/// A hoisted part of a region: the ops that depend on no argument outside
/// `args`, as a device function of those arguments returning the values the
/// rest reads, in a struct.
struct HoistedPart {
  const char *function, *type, *param; // param: its struct's name in the element
  llvm::SmallVector<unsigned> args;
  // A define set to 1 when the part reads a tensor, so that the kernels
  // compute it once per lane and pass it by shuffles (attnc_weights).
  const char *shuffleDefine = nullptr;
  // The part's scans' unroll (RegionEmitter::setScanUnroll).
  int scanUnroll = 8;
};
/// Emits `region` (its block ends in attn.yield) as the hoisted parts'
/// structs and functions, then `element` (a `result` of the parts' structs
/// and every argument) and, with `wrapper`, a function of the arguments
/// alone that calls them all (CudaRegions.cpp).
mlir::LogicalResult emitSplitRegion(attn::AttentionOp op, mlir::func::FuncOp fn,
                                    llvm::raw_ostream &os, mlir::Region &region,
                                    llvm::ArrayRef<RegionArg> args,
                                    llvm::ArrayRef<HoistedPart> parts, const char *result,
                                    const char *element, const char *wrapper);

/// A C float literal that reads back as the same f32 (inf and nan too).
std::string floatLiteral(double v);
/// The common head of every generated unit: attn_common.cuh, the argument
/// struct AttncArgs (recording its slots in `out`) and the regions as
/// device functions.
mlir::LogicalResult emitArgsAndRegions(mlir::func::FuncOp fn, attn::AttentionOp op,
                                       llvm::raw_ostream &os, CudaKernel &out);
/// ATTNC_OUT's code for an element type: 0 f32, 1 bf16, 2 f16.
int dtypeCode(mlir::Type t);
/// The defines both kernel templates read for the variant's kind, alignment,
/// outputs and regions.
void emitVariantDefines(attn::AttentionOp op, llvm::raw_ostream &os);
/// The compute capability in an arch name ("sm_90a" -> 90), 0 if none.
int smNumber(llvm::StringRef arch);
/// The paged form (PagedDecodeToCUDA.cpp): the split-KV decode kernel and
/// its combine kernel.
mlir::LogicalResult emitPagedDecode(mlir::func::FuncOp fn, attn::AttentionOp op, int64_t d,
                                    int64_t dv, llvm::StringRef arch, CudaKernel &out);

} // namespace cuda_emit
} // namespace attnc

#endif // ATTNC_PASSES_CUDAEMISSION_H

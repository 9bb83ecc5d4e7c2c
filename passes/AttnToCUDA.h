//===- AttnToCUDA.h - Emit a CUDA kernel for an attn program ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Translates one prepared attn.attention into a complete CUDA translation
// unit: the variant's regions (and the interval bounds of its mask) become
// device functions over a struct of kernel arguments, and a hand-written
// kernel template (runtime/kernels/) is appended. The result compiles with
// NVRTC or nvcc and needs no CUDA header.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_ATTNTOCUDA_H
#define ATTNC_PASSES_ATTNTOCUDA_H

#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir {
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace attnc {

/// One 8-byte slot of the kernel's argument struct, in order.
struct CudaArgSlot {
  enum Kind {
    tensor,    // device pointer of function argument `arg`
    tensorDim, // size of dim `dim` of tensor argument `arg`
    scalar,    // runtime parameter `arg` (int32, int64 or f32 by `scalarKind`)
    size,      // problem size: 0 batch, 1 q heads, 2 kv heads, 3 S, 4 T
    absent,    // an optional tensor the spec does not have (null)
    classes,   // the launch's tile-class table (device memory), or null
    pageBytes, // paged form: the page stride of tensor argument `arg`, in bytes
  };
  Kind kind;
  int arg = -1;
  int dim = 0;
  enum ScalarKind { i32, i64, f32 } scalarKind = i64;
};

/// The most query or key positions a CUDA launch takes (launches refuse
/// more): it bounds the positions the regions see, so that their index code
/// runs in 32 bits (CudaIndexNarrowing.cpp).
inline constexpr int64_t kMaxCudaPositions = (int64_t(1) << 30) - 1024;

struct CudaKernel {
  std::string source;      // the whole translation unit
  std::string entry;       // extern "C" kernel name
  int threads = 0;         // per CTA
  int blockQ = 0, blockK = 0;
  int64_t smemBytes = 0;   // dynamic shared memory, plus one byte per key tile
  int wsStages = 2;         // K and V ring stages of the warp-specialized kernel
  std::vector<CudaArgSlot> slots;
  bool hopper = false;     // the sm_90a warpgroup-MMA kernel
  bool warpSpecialized = false; // ... in its producer/consumer form (attn_fwd_ws.cuh)
  /// A second kernel, classEntry(), fills a table of tile classes before
  /// the attention kernel runs: one byte per (batch if the mask reads it,
  /// head if it reads it, query tile, key tile).
  bool classTable = false;
  bool classUsesBatch = false, classUsesHead = false;
  int classQueryTiles = 1; // query tiles per CTA of the class kernel
  /// The two forms of the class kernel take different grids, so they have
  /// different names: a launch header of one form cannot launch a cubin of
  /// the other, it fails to find the function instead.
  std::string classEntry() const {
    return entry + (classQueryTiles > 1 ? "_classes_split" : "_classes");
  }
  /// attn.topk (attn-materialize-topk): two kernels, `entry + "_topk_pool"`
  /// and `entry + "_topk"`, fill the selection table, function argument
  /// `topkArg`, before the tile classes (runtime/kernels/attn_topk.cuh).
  bool topk = false;
  int topkArg = -1;
  int64_t topkBlockQ = 0, topkBlockK = 0;
  /// Query blocks per CTA of the selection kernel (its grid is
  /// ceil(QB / topkChunk) x Hq x B, its shared memory 4 * topkChunk * (D + KB)).
  int topkChunk = 4;
  /// The paged form (kv = paged(...)): a split-KV decode kernel (`entry`,
  /// runtime/kernels/attn_decode_paged.cuh) taking (args, partials, keys per
  /// split, splits, error flag), then `entry + "_combine"` with the same
  /// parameters. A CTA serves up to `decodeRows` query rows (G * S) of one
  /// KV head, in tiles of `decodeTileKeys` keys (splits hold whole tiles).
  /// `decodeMma`: the tensor-core kernel (attn_decode_mma.cuh), which
  /// copies pages with bulk copies, so every page stride (scales too) must
  /// be a multiple of 16 bytes; it rings `decodeStages` tiles per warp.
  /// `decodeScaleLanes`: its scale rows (one or two groups) are copied lane
  /// by lane instead, with no stride rule beyond 4 bytes.
  bool decode = false, decodeMma = false, decodeScaleLanes = false;
  int decodeRows = 0, decodeTileKeys = 0, decodeStages = 0;
  /// Dynamic shared memory of the decode kernel: fixed + perRow * G * S.
  int64_t decodeSmemFixed = 0, decodeSmemPerRow = 0;
};

/// Emits the kernel of the one attn.attention in `fn` (prepared for the
/// CUDA target) for `arch` ("sm_90a", "sm_80", ...): with sm_90a and head
/// dims 64 or 128 the Hopper warpgroup-MMA kernel, else the portable one.
/// Fails with a diagnostic on what the CUDA path cannot take: f32 inputs,
/// symbolic or unaligned head dims, ops it cannot translate. With
/// `quickTier` (the JIT's first kernel), what is cheaper to compile: sm_90a
/// takes the two-CTA Hopper kernel instead of the warp-specialized one (half
/// the compile time), and a tile-class kernel the one-function bounds
/// instead of their parts (about 70 ms less for documents on the development VM).
mlir::LogicalResult emitCudaKernel(mlir::func::FuncOp fn, llvm::StringRef arch,
                                   CudaKernel &out, bool quickTier = false);

/// A C header for launching `kernel` (emitted from `fn`) from a cubin with
/// the CUDA driver API: entry names, the argument struct, block size,
/// shared memory and grid, with no attnc or LLVM needed (CudaLaunchHeader.cpp).
std::string emitCudaLaunchHeader(mlir::func::FuncOp fn, const CudaKernel &kernel);

} // namespace attnc

#endif // ATTNC_PASSES_ATTNTOCUDA_H

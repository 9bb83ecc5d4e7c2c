//===- CudaIndexNarrowing.cpp - 32-bit index code for the CUDA regions ----===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The mask, score and gate regions compute on `index` values, which the C++
// they become carries as 64-bit integers. On the GPU 64-bit integer code is
// two to four instructions per operation and their conversions to float go
// through a slow path; these functions run once per score element, so the
// kernels pay for it in every masked tile (10% of a sliding-window launch).
//
// The launch bounds every position (at most 2^30 - 1024 query and key
// positions, 65535 batches and heads), so the regions' arguments have known
// ranges. Forward range inference over the region (arith's
// InferIntRangeInterface) then finds the integer values that always fit in
// 32 bits; the emitter types them `int`. Only operations whose 32-bit result
// is exact when the true result fits are narrowed: addition, subtraction
// and multiplication (exact modulo 2^32), min, max, select, casts and the
// signed divisions (which compute in 64 bits and convert).
//
//===----------------------------------------------------------------------===//

#include "passes/CudaEmission.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/InferIntRangeInterface.h"

using namespace mlir;
using namespace attnc;
using namespace attnc::cuda_emit;

/// Whether the C the emitter prints for `op` computes the right value when
/// its result is typed `int` and that value fits.
static bool narrowsExactly(Operation *op) {
  return isa<arith::AddIOp, arith::SubIOp, arith::MulIOp, arith::MinSIOp, arith::MaxSIOp,
             arith::SelectOp, arith::IndexCastOp, arith::ExtSIOp, arith::DivSIOp,
             arith::RemSIOp, arith::FloorDivSIOp, arith::CeilDivSIOp>(op);
}

static bool fitsInInt32(const ConstantIntRanges &r) {
  return r.smin().getBitWidth() >= 32 && r.smin().getSExtValue() >= INT32_MIN &&
         r.smax().getSExtValue() <= INT32_MAX;
}

llvm::DenseSet<Value>
cuda_emit::narrowIndexValues(Block &body, llvm::ArrayRef<IndexBounds> argBounds) {
  llvm::DenseMap<Value, ConstantIntRanges> known;
  auto rangeOf = [&](Value v) -> IntegerValueRange {
    if (!v.getType().isIntOrIndex())
      return IntegerValueRange(); // unknown: ops reading it infer nothing
    auto it = known.find(v);
    if (it != known.end())
      return it->second;
    APInt c;
    if (matchPattern(v, m_ConstantInt(&c)))
      return ConstantIntRanges::constant(c);
    return IntegerValueRange::getMaxRange(v);
  };
  for (auto [arg, bounds] : llvm::zip(body.getArguments(), argBounds)) {
    if (!arg.getType().isIndex())
      continue;
    unsigned width = IndexType::kInternalStorageBitWidth;
    known.try_emplace(arg, ConstantIntRanges::fromSigned(APInt(width, bounds.min, true),
                                                         APInt(width, bounds.max, true)));
  }
  // The arguments themselves are ints in the function's signature; the set
  // holds the operation results to type `int`.
  llvm::DenseSet<Value> narrow;
  // Straight-line code only: values computed inside loops keep 64 bits.
  for (Operation &op : body) {
    if (auto size = dyn_cast<attn::SizeOp>(op)) {
      int64_t max = 65536; // batches, heads (65535 at most) and head dims
      if (size.getKind() == attn::SizeKind::q_len || size.getKind() == attn::SizeKind::kv_len)
        max = kMaxCudaPositions;
      unsigned width = IndexType::kInternalStorageBitWidth;
      known.try_emplace(size, ConstantIntRanges::fromSigned(APInt(width, 0), APInt(width, max)));
      continue;
    }
    auto infer = dyn_cast<InferIntRangeInterface>(op);
    if (!infer || op.getNumRegions() || op.getNumResults() != 1)
      continue;
    llvm::SmallVector<IntegerValueRange> in;
    for (Value operand : op.getOperands())
      in.push_back(rangeOf(operand));
    infer.inferResultRangesFromOptional(in, [&](Value v, const IntegerValueRange &r) {
      if (!r.isUninitialized())
        known.insert_or_assign(v, r.getValue());
    });
    Value result = op.getResult(0);
    auto it = known.find(result);
    if (it != known.end() && !result.getType().isInteger(1) && narrowsExactly(&op) &&
        fitsInInt32(it->second))
      narrow.insert(result);
  }
  return narrow;
}

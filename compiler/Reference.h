//===- Reference.h - The f64 reference for attn programs --------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The oracle every backend is checked against: materialized scores, f64
// arithmetic and accumulation, and the variant regions interpreted op by op
// from the attn IR, so it shares no code with any lowering.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_REFERENCE_H
#define ATTNC_COMPILER_REFERENCE_H

#include "attnc/runtime/Tensor.h"
#include "llvm/ADT/ArrayRef.h"

#include <memory>
#include <string>
#include <vector>

namespace attnc {
namespace attn {
class AttentionOp;
} // namespace attn

/// One argument of the function that holds the attention op: a tensor, or a
/// scalar parameter (ints are exact in a double up to 2^53).
struct ArgValue {
  bool isTensor = true;
  TensorView tensor;
  double scalar = 0;
};

struct ReferenceResult {
  std::vector<int64_t> outShape; // [B, Hq, S, Dv]
  std::vector<double> out;       // row-major
  std::vector<double> lse;       // [B, Hq, S]; -inf for fully masked rows
  int64_t visiblePairs = 0;      // (b, h, i, j) with a nonzero weight
  double maxAbsScore = 0;        // over visible pairs, after the score region
  /// Sigmoid kernels only (else empty): per element of `out`, the rounding
  /// budget of its unnormalised sum in f32, 2^-24 * sqrt(n) * sum_j p_j |v_jd|
  /// over the row's n visible keys (the probabilistic bound of a sum of n
  /// terms, doubled for a gate's slope). Softmax weights sum to 1 and need none.
  std::vector<double> sumRounding;
  /// Sigmoid kernels only (else empty): per element of `out`,
  /// sqrt(sum_j (p_j v_jd)^2), the scale of the error a bf16 or f16 kernel
  /// makes by rounding each weight (and each dequantized value) once to the
  /// input type: a random walk over the row's terms, which an unnormalised
  /// sum does not shrink the way softmax's weights summing to 1 do.
  std::vector<double> weightRounding;
  /// [B, Hq, S]: 1 for rows whose attn.topk selection is a near tie (the
  /// k-th and next block score within rounding), so a kernel may pick
  /// either block; empty when no row is.
  std::vector<char> rowAmbiguous;
};

/// The mask region of `op` as a function of (b, h, i, j), interpreted like
/// the reference does; true when the op has no mask.
class MaskOracle {
public:
  static std::unique_ptr<MaskOracle> create(attn::AttentionOp op,
                                            llvm::ArrayRef<ArgValue> args,
                                            std::string &error);
  ~MaskOracle();
  /// False with `error` set on an out-of-range read or a zero divisor.
  bool keep(int64_t b, int64_t h, int64_t i, int64_t j, bool &result,
            std::string &error);

private:
  MaskOracle();
  struct Impl;
  std::unique_ptr<Impl> impl;
};

/// Evaluates `op`, whose operands are arguments of its function, on `args`
/// given in the function's argument order. Returns false with `error` set on
/// a shape mismatch, an out-of-range read or an op it cannot interpret.
bool runReference(attn::AttentionOp op, llvm::ArrayRef<ArgValue> args,
                  ReferenceResult &result, std::string &error);

} // namespace attnc

#endif // ATTNC_COMPILER_REFERENCE_H

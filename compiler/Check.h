//===- Check.h - Run a kernel on random inputs against the reference -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// What `attnc --run` and the conformance tests do: compile a spec, make
// random inputs for the sizes asked, run the kernel and the f64 reference,
// and compare within the design's tolerances.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_CHECK_H
#define ATTNC_COMPILER_CHECK_H

#include "attnc/attnc.h"

#include <map>
#include <string>
#include <vector>

namespace attnc {

struct CheckOptions {
  /// Sizes of symbolic dims; others come from `batch`, `qLen`, `kvLen`, ...
  /// by the dim's role in q, k and v.
  std::map<std::string, int64_t> sizes;
  int64_t batch = 2, heads = 4, qLen = 67, kvLen = 67, headDim = 64;
  std::map<std::string, double> params;
  unsigned seed = 1;
  unsigned threads = 0;
  int timingRuns = 3; // kernel runs timed after the checked one
  bool skipReference = false;
  /// When the reference rejects the shape (a region reads outside its
  /// tensors there), report the case skipped instead of failed.
  bool skipWhenReferenceRejects = false;
  /// Shapes (CheckReport::shape) already checked: return at once, skipped.
  std::vector<std::string> skipShapes;
};

struct CheckReport {
  bool ok = false;          // ran, and matched the reference
  std::string error;        // why not
  std::string shape;        // "B=2 Hq=4 Hkv=4 S=67 T=67 D=64 Dv=64 dtype=bf16"
  double maxAbsError = 0, maxRelError = 0, tolerance = 0;
  /// f32 sigmoid kernels: the tolerance applies beyond each element's sum
  /// rounding budget (ReferenceResult::sumRounding).
  bool beyondSumRounding = false;
  /// bf16/f16 sigmoid kernels: the tolerance applies beyond each element's
  /// budget for its weights' rounding (ReferenceResult::weightRounding).
  bool beyondWeightRounding = false;
  int64_t nonFinite = 0;    // NaN or inf in the kernel's outputs
  double kernelMs = 0;      // best of the timed runs
  double referenceMs = 0;
  double compileMs = 0;     // to the kernel checked (the final tier)
  double quickMs = 0;       // to the quick tier, when the compile had two
  double gflops = 0;        // 4 * D-ish flops over visible pairs / kernelMs
  bool fromCache = false;
  bool skipped = false;     // the shape was in skipShapes
  bool planChecked = false; // CUDA: a launch with a TilePlan matched bit for bit
  int64_t ambiguousRows = 0; // rows not compared: a top-k selection near a tie
};

/// Compiles `path` with `options` and checks it as described above.
CheckReport checkSpec(const std::string &path, const CompileOptions &options,
                      const CheckOptions &check);

} // namespace attnc

#endif // ATTNC_COMPILER_CHECK_H

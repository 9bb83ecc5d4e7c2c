//===- Conformance.cpp - Every example against the reference ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// For each spec given on the command line: shapes {tiny, odd lengths, GQA
// sized, long} x dtypes {f32, bf16, f16}, JIT-compiled and checked against the
// f64 reference. Prints one line per case and "N passed, N failed" last.
// With --target=cuda the kernels run on the GPU: bf16 and f16 only (the
// tensor cores' types), plus a shape of several query and key tiles;
// --cuda-arch=sm_90 checks the portable kernel on a Hopper GPU.
//
//===----------------------------------------------------------------------===//

#include "compiler/Check.h"
#include "attnc/runtime/Cuda.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

using namespace attnc;

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SPEC... [--cache-dir DIR] [--target=cpu|cuda] [--cuda-arch=sm_XX]\n"
                 "       [--skip-without-gpu]\n",
                 argv[0]);
    return 2;
  }
  std::vector<std::string> specs;
  std::string cacheDir = "off";
  Target target = Target::cpu;
  std::string cudaArch; // empty: the device's (sm_90a on Hopper)
  bool skipWithoutGpu = false; // exit 77 (ctest: skipped) when there is no GPU
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--cache-dir" && i + 1 < argc)
      cacheDir = argv[++i];
    else if (a == "--target=cuda")
      target = Target::cuda;
    else if (a == "--target=cpu")
      target = Target::cpu;
    else if (a.rfind("--cuda-arch=", 0) == 0)
      cudaArch = a.substr(12);
    else if (a == "--skip-without-gpu")
      skipWithoutGpu = true;
    else
      specs.push_back(a);
  }
  bool gpu = target == Target::cuda;
  std::string why;
  if (gpu && skipWithoutGpu && !cuda::init(why)) {
    std::printf("skipped: %s\n", why.c_str());
    return 77;
  }
  struct Preset {
    const char *name;
    int64_t batch, heads, qLen, kvLen, headDim;
  } presets[] = {
      {"tiny", 1, 2, 5, 5, 16},
      {"odd", 2, 4, 67, 67, 64},
      {"gqa", 1, 8, 33, 97, 40},
      {"long", 1, 2, 131, 261, 128},
      {"tiles", 2, 2, 200, 333, 64}, // GPU only: several query and key tiles
      // One query per sequence (decode): items of a few rows, which read
      // keys directly (and, over q8/q4 pages with VNNI, as int8 products).
      {"decode", 3, 8, 1, 261, 128},
      // No keys at all where the spec lets the key length go to zero
      // (cross-attention, paged lengths): o = 0 and lse = -inf.
      {"nokeys", 1, 2, 5, 0, 16},
  };
  // A spec with static sizes gives the same shape under several presets:
  // check each distinct shape once.
  int passed = 0, failed = 0, planned = 0;
  int64_t ambiguous = 0;
  for (const std::string &spec : specs) {
    std::vector<std::string> seen;
    for (const Preset &p : presets) {
      if (!gpu && std::string(p.name) == "tiles")
        continue;
      for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
        if (gpu && dt == DType::f32)
          continue;
        CompileOptions options;
        options.target = target;
        options.cudaArch = cudaArch;
        options.dtype = dt;
        options.cacheDir = cacheDir;
        CheckOptions check;
        check.batch = p.batch;
        check.heads = p.heads;
        check.qLen = p.qLen;
        check.kvLen = p.kvLen;
        check.headDim = p.headDim;
        check.timingRuns = 0;
        check.threads = 2;
        check.skipShapes = seen;
        check.skipWhenReferenceRejects = std::string(p.name) == "nokeys";
        CheckReport r = checkSpec(spec, options, check);
        if (r.skipped && !r.error.empty()) // e.g. queries placed before the first key
          std::printf("SKIP %-40s %-5s %-5s %s\n", spec.c_str(), p.name, dtypeName(dt),
                      r.error.c_str());
        if (r.skipped)
          continue;
        seen.push_back(r.shape);
        std::printf("%-4s %-40s %-5s %-5s %s err=%.3g%s%s%s\n", r.ok ? "PASS" : "FAIL",
                    spec.c_str(), p.name, dtypeName(dt), r.shape.c_str(),
                    dt == DType::f32 ? r.maxRelError : r.maxAbsError,
                    r.planChecked ? " (tile plan: same bytes)" : "", r.ok ? "" : " : ",
                    r.ok ? "" : r.error.c_str());
        (r.ok ? passed : failed) += 1;
        planned += r.planChecked;
        ambiguous += r.ambiguousRows;
      }
    }
  }
  if (planned)
    std::printf("%d cases also launched with a tile plan, bit for bit the same\n", planned);
  if (ambiguous)
    std::printf("%lld rows not compared: their top-k block selection is a near tie\n",
                static_cast<long long>(ambiguous));
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

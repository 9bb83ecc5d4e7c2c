//===- GpuBenchLib.cpp - attnc's CUDA kernels behind a C ABI for Python ---===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// bench/gpu_vs_torch.py loads this library with ctypes, so our kernels and
// PyTorch's run in one process, on the same device tensors, timed by the
// same CUDA events on the same stream. Only the public API (attnc.h) is used.
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {
struct BenchKernel {
  attnc::Kernel kernel;
  attnc::TilePlan plan; // used by runs once attnc_bench_plan built it
  /// Compile time of the kernel benchmarks time (the final tier) and of
  /// the first one usable (the quick tier, when the compile had two).
  double finalMs = 0, quickMs = 0;
};

void setError(char *err, int errLen, const std::string &text) {
  if (err && errLen > 0)
    std::snprintf(err, static_cast<size_t>(errLen), "%s", text.c_str());
}

/// "a=1,b=2" into a map; false on a malformed entry.
template <typename T>
bool parseList(const char *text, std::map<std::string, T> &out, std::string &error) {
  std::string s = text ? text : "";
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos)
      end = s.size();
    std::string item = s.substr(pos, end - pos);
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "expected NAME=VALUE, got '" + item + "'";
      return false;
    }
    char *rest = nullptr;
    double value = std::strtod(item.c_str() + eq + 1, &rest);
    if (!rest || *rest) {
      error = "'" + item + "' has no number after '='";
      return false;
    }
    out[item.substr(0, eq)] = static_cast<T>(value);
    pos = end + 1;
  }
  return true;
}
} // namespace

extern "C" {

void *attnc_bench_compile(const char *path, const char *dims, char *err, int errLen) {
  attnc::CompileOptions options;
  options.target = attnc::Target::cuda;
  std::string error;
  if (!parseList(dims, options.dims, error)) {
    setError(err, errLen, "dims: " + error);
    return nullptr;
  }
  auto start = std::chrono::steady_clock::now();
  attnc::Result<attnc::Kernel> kernel = attnc::compileFile(path, options);
  if (!kernel) {
    setError(err, errLen, kernel.error());
    return nullptr;
  }
  double quickMs = kernel->info().compileMs;
  // Benchmarks time the final kernel: wait for it.
  if (attnc::Status st = kernel->waitForFinalTier(); !st) {
    setError(err, errLen, st.error());
    return nullptr;
  }
  double finalMs =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!kernel->info().quickTier)
    finalMs = quickMs;
  return new BenchKernel{*kernel, {}, finalMs, quickMs};
}

double attnc_bench_compile_ms(void *kernel) { return static_cast<BenchKernel *>(kernel)->finalMs; }

/// The compile time of the first usable kernel: the quick tier's, or the
/// one kernel's.
double attnc_bench_quick_ms(void *kernel) { return static_cast<BenchKernel *>(kernel)->quickMs; }

int attnc_bench_from_cache(void *kernel) {
  return static_cast<BenchKernel *>(kernel)->kernel.info().fromCache ? 1 : 0;
}

/// The tensors and params of one call, checked against the kernel's args.
static bool views(BenchKernel *k, int numTensors, void **ptrs, const int *ranks,
                  const int64_t *dims, const char *params, std::vector<attnc::TensorView> &out,
                  std::map<std::string, double> &values, char *err, int errLen) {
  size_t at = 0, tensorArg = 0;
  const auto &args = k->kernel.info().args;
  for (int t = 0; t < numTensors; ++t) {
    while (tensorArg < args.size() && !args[tensorArg].isTensor)
      ++tensorArg;
    if (tensorArg == args.size()) {
      setError(err, errLen, "more tensors than the kernel takes");
      return false;
    }
    attnc::TensorView v;
    v.data = ptrs[t];
    v.dtype = args[tensorArg++].dtype;
    v.shape.assign(dims + at, dims + at + ranks[t]);
    at += static_cast<size_t>(ranks[t]);
    out.push_back(v);
  }
  std::string error;
  if (!parseList(params, values, error)) {
    setError(err, errLen, "params: " + error);
    return false;
  }
  return true;
}

int attnc_bench_run(void *handle, int numTensors, void **ptrs, const int *ranks,
                    const int64_t *dims, const char *params, void *stream, char *err,
                    int errLen) {
  auto *k = static_cast<BenchKernel *>(handle);
  std::vector<attnc::TensorView> tensors;
  std::map<std::string, double> values;
  if (!views(k, numTensors, ptrs, ranks, dims, params, tensors, values, err, errLen))
    return 1;
  attnc::Status st = k->kernel.launch(tensors, values, stream, k->plan);
  if (!st) {
    setError(err, errLen, st.error());
    return 1;
  }
  return 0;
}

/// Builds the kernel's tile plan for these inputs (see attnc::TilePlan);
/// later runs use it. Returns 1 on error.
int attnc_bench_plan(void *handle, int numTensors, void **ptrs, const int *ranks,
                     const int64_t *dims, const char *params, void *stream, char *err,
                     int errLen) {
  auto *k = static_cast<BenchKernel *>(handle);
  std::vector<attnc::TensorView> tensors;
  std::map<std::string, double> values;
  if (!views(k, numTensors, ptrs, ranks, dims, params, tensors, values, err, errLen))
    return 1;
  attnc::Result<attnc::TilePlan> plan = k->kernel.planTiles(tensors, values, stream);
  if (!plan) {
    setError(err, errLen, plan.error());
    return 1;
  }
  k->plan = *plan;
  return 0;
}

/// Bytes of the kept plan's table (0: none).
long long attnc_bench_plan_bytes(void *handle) {
  return static_cast<long long>(static_cast<BenchKernel *>(handle)->plan.bytes());
}

void attnc_bench_drop_plan(void *handle) { static_cast<BenchKernel *>(handle)->plan = {}; }

} // extern "C"

//===- attnc.h - Compile and run attention programs from C++ ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The host API: compile a spec (a file or a string) for a target, get a
// kernel, run it on tensor views with parameters.
//
//   attnc::CompileOptions opts;                       // target = cpu
//   auto kernel = attnc::compileFile("causal.attn", opts);
//   if (!kernel) { fprintf(stderr, "%s", kernel.error().c_str()); ... }
//   attnc::Status st = kernel->run({q, k, v, o}, {{"window", 256}});
//
// Tensors are passed in the function's argument order: q, k, v, the extra
// tensors as declared, then the outputs o and lse; runtime parameters go by
// name. Compile errors come back as diagnostics text; shape, dtype or
// parameter mismatches at run time as a Status, never a crash. Compiled
// kernels are cached in memory and on disk (see CompileOptions::cacheDir).
//
// With `target = Target::cuda` the tensors' data are device pointers (GPU
// memory, 16-byte aligned for q, k, v and o); run() waits for the kernel,
// launch() only enqueues it.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_ATTNC_H
#define ATTNC_ATTNC_H

#include "attnc/runtime/Tensor.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnc {

/// Success, or an error message.
class Status {
public:
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message = std::move(message);
    s.failed = true;
    return s;
  }
  explicit operator bool() const { return !failed; }
  const std::string &error() const { return message; }

private:
  bool failed = false;
  std::string message;
};

/// A value or an error message.
template <typename T> class Result {
public:
  Result(T value) : value(std::move(value)) {}
  Result(Status status) : status(std::move(status)) {}
  explicit operator bool() const { return value.has_value(); }
  T &operator*() { return *value; }
  T *operator->() { return &*value; }
  const std::string &error() const { return status.error(); }

private:
  std::optional<T> value;
  Status status;
};

enum class Target { cpu, cuda };

struct CompileOptions {
  Target target = Target::cpu;
  /// Values for symbolic dims (like `attnc -D S=1024`).
  std::map<std::string, int64_t> dims;
  /// Disk cache folder. Empty: $ATTNC_CACHE_DIR, else $XDG_CACHE_HOME/attnc,
  /// else ~/.cache/attnc. "off" disables the disk cache.
  std::string cacheDir;
  /// f32 lanes per vector; 0 picks from the host (16 with AVX-512, else 8).
  int vectorWidth = 0;
  /// When set, replaces the element type the spec gives q, k, v and o.
  std::optional<DType> dtype;
  /// Skip key tiles the mask proves empty and drop the mask where it proves
  /// full. Off only to measure what that saves.
  bool skipTiles = true;
  /// CPU: bf16 prefill runs both matrix products on AMX tiles where the
  /// CPU has AMX-BF16 and the OS grants the tile state (the probabilities
  /// are rounded to bf16 for P V, as on GPUs). $ATTNC_CPU_AMX=0 turns it
  /// off for every compile.
  bool cpuAmx = true;
  /// CUDA: the GPU architecture to compile for ("sm_90", "sm_80", ...).
  /// Empty: the device's own, or sm_90 when no GPU is present.
  std::string cudaArch;
  /// CUDA, Hopper: when the warp-specialized kernel is in neither cache,
  /// compile it on a background thread and hand back the two-CTA kernel
  /// (about half the compile time, most of the speed) at once; the kernel
  /// switches to the final one when it is ready (Kernel::waitForFinalTier).
  /// $ATTNC_CUDA_TIERS=0 turns this off for every compile.
  bool cudaTiers = true;
  /// CPU: when the object is in neither cache, hand back a kernel emitted
  /// without optimizing (a fifth of the compile time, 3-10x slower) and
  /// optimize on a background thread; run() switches to the optimized
  /// kernel when it is ready (Kernel::waitForFinalTier), and only that one
  /// goes to the disk cache. $ATTNC_CPU_TIERS=0 turns this off for every
  /// compile.
  bool cpuTiers = true;
};

/// One argument of a compiled kernel.
struct ArgInfo {
  std::string name;
  bool isTensor = true;
  bool isOutput = false;
  DType dtype = DType::f32;
  /// Per dim: the size, or -1 with `dimNames[d]` the symbol.
  std::vector<int64_t> dims;
  std::vector<std::string> dimNames;
  /// Parameters: the default value (ints exact up to 2^53).
  std::optional<double> defaultValue;
  /// Paged k, v and their scales: the page dim (0) may have any stride, so
  /// a view of a pool's pages is passed as it is; the other dims are
  /// row-major. Strides of q4 tensors count elements (half bytes).
  bool pageStrided = false;
};

/// A kernel of the paged form (`kv = paged(table, lens[, k_scale,
/// v_scale])`): where its tensors are among those run() takes. k and v are
/// [P, Hkv, PS, D] pages, table [B, M] lists each sequence's pages and
/// lens [B] its length; run() checks every table entry a sequence uses.
struct PagedInfo {
  int table = -1, lens = -1;
  int keyScale = -1, valueScale = -1; // q8 and q4 only
};

struct KernelInfo {
  std::string name;
  std::vector<ArgInfo> args; // tensors then parameters, as the function takes them
  int64_t blockQ = 0, blockK = 0;
  /// CPU work items: query heads and queries per item (see run()).
  int64_t headsPerItem = 1, queriesPerItem = 0;
  std::optional<PagedInfo> paged;
  bool fromCache = false; // the object came from the disk cache
  double compileMs = 0;   // wall time of compileFile/compileString
  /// This is the quick tier; the final kernel is still compiling
  /// (CompileOptions::cudaTiers, cpuTiers).
  bool quickTier = false;
};

class CompiledKernel;
struct TilePlanData;

/// Tile classes of one kernel for one set of inputs, built once and reused.
/// A CUDA kernel whose mask reads tensors (document ids, block masks, block
/// lists) classifies its tiles with a small kernel before each launch; a
/// plan keeps that table in GPU memory so that later launches over the same
/// inputs (every layer of a model, every step that keeps the documents)
/// skip it. The plan describes the inputs' contents when it was built:
/// build a new one when they change. Kernels that need no table (CPU
/// kernels, masks of positions only) give an empty plan.
class TilePlan {
public:
  bool empty() const { return !data; }
  /// GPU memory the table takes.
  size_t bytes() const;

private:
  friend class Kernel;
  std::shared_ptr<TilePlanData> data;
};

class Kernel {
public:
  explicit Kernel(std::shared_ptr<CompiledKernel> impl);
  const KernelInfo &info() const;
  /// Runs on `tensors` (all tensor arguments in order, outputs included)
  /// with `params` by name (missing ones take their defaults). `threads` = 0
  /// uses the global pool's size.
  Status run(const std::vector<TensorView> &tensors,
             const std::map<std::string, double> &params = {},
             unsigned threads = 0) const;
  /// Checks shapes, dtypes and params as run() would, without running.
  Status check(const std::vector<TensorView> &tensors,
               const std::map<std::string, double> &params = {}) const;
  /// CUDA kernels: enqueues the kernel on `stream` (a CUstream; null for
  /// the default stream) and returns without waiting; errors the kernel
  /// meets while running surface at the next synchronization. CPU kernels
  /// run as run() does.
  Status launch(const std::vector<TensorView> &tensors,
                const std::map<std::string, double> &params = {},
                void *stream = nullptr) const;
  /// launch() with the tile classes from `plan` (from planTiles() of this
  /// kernel, for tensors of the same shapes); an empty plan is ignored.
  Status launch(const std::vector<TensorView> &tensors,
                const std::map<std::string, double> &params, void *stream,
                const TilePlan &plan) const;
  /// Builds the tile classes for `tensors` and `params` on `stream`.
  Result<TilePlan> planTiles(const std::vector<TensorView> &tensors,
                             const std::map<std::string, double> &params = {},
                             void *stream = nullptr) const;
  Target target() const;
  /// Waits until the kernel runs its final tier (CompileOptions::cudaTiers,
  /// cpuTiers):
  /// at once for kernels compiled in one tier. An error means the final
  /// compile failed and the quick tier stays.
  Status waitForFinalTier() const;

private:
  std::shared_ptr<CompiledKernel> impl;
};

Result<Kernel> compileFile(const std::string &path, const CompileOptions &options = {});
Result<Kernel> compileString(const std::string &source, const std::string &bufferName,
                             const CompileOptions &options = {});

/// "attnc 0.1.0 (LLVM 22.x)"
const char *versionString();

} // namespace attnc

#endif // ATTNC_ATTNC_H

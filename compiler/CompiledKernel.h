//===- CompiledKernel.h - A loaded kernel, inside the JIT -------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// What attnc::Kernel points to, shared by the JITs (Jit.cpp: the CPU one
// and the API; CudaJit.cpp: the CUDA one and its tiers) and the CUDA
// launcher (CudaLaunch.cpp).
// Private to compiler/.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_COMPILEDKERNEL_H
#define ATTNC_COMPILER_COMPILEDKERNEL_H

#include "attnc/attnc.h"
#include "attnc/runtime/Cuda.h"
#include "attnc/runtime/TopKSelect.h"
#include "passes/AttnToCUDA.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace attnc {

class CompiledKernel;

/// The final tier of a CUDA kernel compiled in the background while its
/// quick tier runs (CompileOptions::cudaTiers). `final` (or `error`) is set
/// before `done`.
struct KernelUpgrade {
  std::atomic<bool> done{false};
  std::shared_ptr<CompiledKernel> final;
  std::string error;
  std::mutex mutex;
  std::condition_variable finished;

  /// Called once by the background compile: the final kernel, or null and
  /// why; wakes the waiters.
  void finish(std::shared_ptr<CompiledKernel> kernel, std::string why) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      final = std::move(kernel);
      error = std::move(why);
      done.store(true, std::memory_order_release);
    }
    finished.notify_all();
  }
};

/// A loaded kernel: its signature and the packed entry point (CPU) or the
/// loaded function and its launch layout (CUDA).
class CompiledKernel {
public:
  KernelInfo info;
  void (*entry)(void **) = nullptr;
  bool isCuda = false;
  cuda::Function function;
  cuda::Function classes; // the tile-class kernel, when layout.classTable
  cuda::Function topkPool, topkSelect; // the selection kernels, when layout.topk
  cuda::Function combine; // the split-KV combine kernel, when layout.decode
  CudaKernel layout; // source dropped once loaded
  /// attn.topk: the selection the runtime computes into the hidden table.
  std::optional<TopKParams> topk;
  /// The quick tier's pending final kernel.
  std::shared_ptr<KernelUpgrade> upgrade;

  /// The kernel to run now: the final tier once it is ready.
  const CompiledKernel &current() const {
    if (upgrade && upgrade->done.load(std::memory_order_acquire) && upgrade->final)
      return *upgrade->final;
    return *this;
  }
};

/// Fills the CUDA kernel's argument slots and launches it on `stream`
/// (waiting with `wait`). With `planOut`, only builds the tile-class table
/// into it; with `plan`, takes the table from there. The arguments' names
/// and defaults come from `signature`, the caller's Kernel: `k` may be a
/// final tier compiled for another spec with the same generated source
/// (the source numbers arguments; names and defaults may differ).
Status launchCuda(const CompiledKernel &k, const KernelInfo &signature,
                  const std::vector<TensorView> &tensors,
                  const std::map<std::string, double> &params, void *stream,
                  bool wait, const TilePlanData *plan = nullptr,
                  TilePlanData *planOut = nullptr);

/// Paged kernels on host memory: every sequence length fits its row of the
/// block table and every page it uses exists (bad entries would read
/// outside the pool).
Status checkPageTable(const std::vector<TensorView> &tensors, const PagedInfo &paged);
/// An output tensor (o, lse) must not share a byte with any other tensor;
/// every tensor's extent must fit 64 bits. Part of Kernel::check.
Status checkNoOverlaps(const KernelInfo &info, const std::vector<TensorView> &tensors);

} // namespace attnc

#endif // ATTNC_COMPILER_COMPILEDKERNEL_H

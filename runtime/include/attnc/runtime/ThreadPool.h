//===- ThreadPool.h - Split a range of work items over threads --*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// CPU kernels take a range [begin, end) of work items; this pool splits a
// range over persistent worker threads and waits for all of them.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_THREADPOOL_H
#define ATTNC_RUNTIME_THREADPOOL_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace attnc {

class ThreadPool {
public:
  /// `threads` = 0 uses the hardware concurrency (or $ATTNC_NUM_THREADS).
  explicit ThreadPool(unsigned threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  unsigned size() const { return static_cast<unsigned>(workers.size()) + 1; }

  /// Calls fn(begin, end) on disjoint chunks covering [0, items), using at
  /// most `maxThreads` threads (0 = all), and returns when all are done.
  /// Threads take chunks of `grain` items from a shared counter, so a
  /// thread that finishes early (lighter items, a busier core) takes more.
  void parallelFor(int64_t items, unsigned maxThreads,
                   const std::function<void(int64_t, int64_t)> &fn,
                   int64_t grain = 1);

  /// How parallelFor cuts the range: fixed chunks of `grain` items, or, with
  /// `maxGrain` above it, guided ones: each chunk is the remaining items
  /// over twice the threads, within [grain, maxGrain], so chunks are long
  /// while much is left (CPU kernels share per-call caches across a chunk)
  /// and short at the end (balance). `align` > 0: no chunk crosses a
  /// multiple of it (a head's query tiles stay in one chunk).
  struct Chunking {
    int64_t grain = 1, maxGrain = 0, align = 0;
  };
  void parallelFor(int64_t items, unsigned maxThreads,
                   const std::function<void(int64_t, int64_t)> &fn, Chunking chunking);

  /// The process-wide pool.
  static ThreadPool &global();

private:
  void workerLoop(unsigned id);

  std::vector<std::thread> workers;
  std::mutex callMutex; // one parallelFor at a time
  std::mutex mutex;
  std::condition_variable wake, done;
  const std::function<void(int64_t, int64_t)> *job = nullptr;
  int64_t jobItems = 0;
  Chunking jobChunking;
  std::atomic<int64_t> nextItem{0};
  unsigned jobThreads = 0;
  uint64_t generation = 0;
  unsigned pending = 0;
  bool stopping = false;
};

} // namespace attnc

#endif // ATTNC_RUNTIME_THREADPOOL_H

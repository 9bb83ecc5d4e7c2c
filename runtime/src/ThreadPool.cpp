//===- ThreadPool.cpp - Split a range of work items over threads -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/ThreadPool.h"

#include <algorithm>
#include <cstdlib>

namespace attnc {

namespace {
/// Set while this thread runs a share of some parallelFor: a nested call
/// (a kernel run from a parallelFor's body) runs inline instead of waiting
/// for workers that are busy with the outer call, or for the caller's lock.
thread_local bool inParallelWork = false;

struct InParallelWork {
  bool saved = inParallelWork;
  InParallelWork() { inParallelWork = true; }
  ~InParallelWork() { inParallelWork = saved; }
};

/// Takes chunks from `next` until [0, items) is done (ThreadPool::Chunking).
void drain(std::atomic<int64_t> &next, int64_t items, const ThreadPool::Chunking &chunking,
           unsigned parts, const std::function<void(int64_t, int64_t)> &fn) {
  int64_t grain = std::max<int64_t>(1, chunking.grain);
  if (chunking.maxGrain <= grain && chunking.align <= 0) {
    while (true) {
      int64_t begin = next.fetch_add(grain, std::memory_order_relaxed);
      if (begin >= items)
        return;
      fn(begin, std::min(items, begin + grain));
    }
  }
  int64_t maxGrain = std::max(grain, chunking.maxGrain);
  while (true) {
    int64_t begin = next.load(std::memory_order_relaxed), end = 0;
    do {
      if (begin >= items)
        return;
      int64_t size = std::clamp<int64_t>((items - begin) / (2 * int64_t(parts)), grain, maxGrain);
      end = std::min(items, begin + size);
      if (chunking.align > 0)
        end = std::min(end, (begin / chunking.align + 1) * chunking.align);
    } while (!next.compare_exchange_weak(begin, end, std::memory_order_relaxed));
    fn(begin, end);
  }
}
} // namespace

ThreadPool::ThreadPool(unsigned threads) {
  if (threads == 0) {
    if (const char *env = std::getenv("ATTNC_NUM_THREADS"))
      threads = static_cast<unsigned>(std::max(1, std::atoi(env)));
    else
      threads = std::max(1u, std::thread::hardware_concurrency());
  }
  for (unsigned i = 1; i < threads; ++i)
    workers.emplace_back([this, i] { workerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  for (std::thread &t : workers)
    t.join();
}

void ThreadPool::workerLoop(unsigned id) {
  uint64_t seen = 0;
  while (true) {
    const std::function<void(int64_t, int64_t)> *fn;
    int64_t items;
    Chunking chunking;
    unsigned parts;
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [&] { return stopping || generation != seen; });
      if (stopping)
        return;
      seen = generation;
      fn = job;
      items = jobItems;
      chunking = jobChunking;
      parts = jobThreads;
    }
    if (id < parts) {
      InParallelWork inside;
      drain(nextItem, items, chunking, parts, *fn);
    }
    std::lock_guard<std::mutex> lock(mutex);
    if (--pending == 0)
      done.notify_all();
  }
}

void ThreadPool::parallelFor(int64_t items, unsigned maxThreads,
                             const std::function<void(int64_t, int64_t)> &fn,
                             int64_t grain) {
  Chunking chunking;
  chunking.grain = grain;
  parallelFor(items, maxThreads, fn, chunking);
}

void ThreadPool::parallelFor(int64_t items, unsigned maxThreads,
                             const std::function<void(int64_t, int64_t)> &fn,
                             Chunking chunking) {
  chunking.grain = std::max<int64_t>(1, chunking.grain);
  if (items <= 0)
    return;
  unsigned parts = maxThreads == 0 ? size() : std::min(maxThreads, size());
  parts = static_cast<unsigned>(std::min<int64_t>(parts, items));
  if (parts <= 1 || workers.empty() || inParallelWork) {
    fn(0, items);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex);
  {
    std::lock_guard<std::mutex> lock(mutex);
    job = &fn;
    jobItems = items;
    jobChunking = chunking;
    jobThreads = parts;
    nextItem.store(0, std::memory_order_relaxed);
    pending = static_cast<unsigned>(workers.size());
    ++generation;
  }
  wake.notify_all();
  {
    InParallelWork inside;
    drain(nextItem, items, chunking, parts, fn);
  }
  std::unique_lock<std::mutex> lock(mutex);
  done.wait(lock, [&] { return pending == 0; });
}

ThreadPool &ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

} // namespace attnc

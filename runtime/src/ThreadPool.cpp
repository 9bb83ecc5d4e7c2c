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
/// Chunk `part` of `parts` of [0, items): contiguous, sizes differ by <= 1.
std::pair<int64_t, int64_t> chunk(int64_t items, unsigned parts, unsigned part) {
  int64_t base = items / parts, extra = items % parts;
  int64_t begin = part * base + std::min<int64_t>(part, extra);
  return {begin, begin + base + (part < extra ? 1 : 0)};
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
    unsigned parts;
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [&] { return stopping || generation != seen; });
      if (stopping)
        return;
      seen = generation;
      fn = job;
      items = jobItems;
      parts = jobThreads;
    }
    if (id < parts) {
      auto [b, e] = chunk(items, parts, id);
      if (b < e)
        (*fn)(b, e);
    }
    std::lock_guard<std::mutex> lock(mutex);
    if (--pending == 0)
      done.notify_all();
  }
}

void ThreadPool::parallelFor(int64_t items, unsigned maxThreads,
                             const std::function<void(int64_t, int64_t)> &fn) {
  if (items <= 0)
    return;
  unsigned parts = maxThreads == 0 ? size() : std::min(maxThreads, size());
  parts = static_cast<unsigned>(std::min<int64_t>(parts, items));
  if (parts <= 1 || workers.empty()) {
    fn(0, items);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex);
  {
    std::lock_guard<std::mutex> lock(mutex);
    job = &fn;
    jobItems = items;
    jobThreads = parts;
    pending = static_cast<unsigned>(workers.size());
    ++generation;
  }
  wake.notify_all();
  auto [b, e] = chunk(items, parts, 0);
  fn(b, e);
  std::unique_lock<std::mutex> lock(mutex);
  done.wait(lock, [&] { return pending == 0; });
}

ThreadPool &ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

} // namespace attnc

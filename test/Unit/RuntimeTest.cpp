//===- RuntimeTest.cpp - Thread pool and element conversions ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/Tensor.h"
#include "attnc/runtime/ThreadPool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <vector>

using namespace attnc;

TEST(ThreadPool, CoversEveryItemOnce) {
  ThreadPool pool(4);
  for (int64_t items : {0, 1, 3, 64, 1001}) {
    for (int64_t grain : {1, 7}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(items));
      pool.parallelFor(
          items, 0,
          [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
              seen[i].fetch_add(1);
          },
          grain);
      for (int64_t i = 0; i < items; ++i)
        ASSERT_EQ(seen[i].load(), 1) << "item " << i << " of " << items;
    }
  }
}

TEST(ThreadPool, NestedCallsRunInline) {
  // A parallelFor from inside another one's body (a kernel run from a task
  // of the pool) runs on the calling thread; it once deadlocked on the
  // pool's one-call-at-a-time lock.
  ThreadPool pool(4);
  std::atomic<int64_t> covered{0};
  pool.parallelFor(8, 0, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      pool.parallelFor(10, 0, [&](int64_t b, int64_t e) { covered += e - b; });
  });
  EXPECT_EQ(covered.load(), 80);
  // The pool still splits calls after that.
  std::atomic<int64_t> again{0};
  pool.parallelFor(1000, 0, [&](int64_t b, int64_t e) { again += e - b; });
  EXPECT_EQ(again.load(), 1000);
}

TEST(ThreadPool, GuidedChunksShrinkAndStayInsideTheirHead) {
  ThreadPool pool(4);
  for (int64_t items : {1, 64, 1000, 4096}) {
    ThreadPool::Chunking chunking;
    chunking.grain = 2;
    chunking.maxGrain = 64;
    chunking.align = 64;
    std::vector<std::atomic<int>> seen(static_cast<size_t>(items));
    std::mutex mutex;
    std::vector<std::pair<int64_t, int64_t>> chunks;
    pool.parallelFor(
        items, 0,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            seen[i].fetch_add(1);
          std::lock_guard<std::mutex> lock(mutex);
          chunks.push_back({b, e});
        },
        chunking);
    for (int64_t i = 0; i < items; ++i)
      ASSERT_EQ(seen[i].load(), 1) << "item " << i << " of " << items;
    std::sort(chunks.begin(), chunks.end());
    for (auto [b, e] : chunks) {
      EXPECT_LE(e - b, 64);
      EXPECT_EQ(b / 64, (e - 1) / 64) << "chunk [" << b << ", " << e << ") crosses a head";
      // Short chunks only near the end (or at a head's end) for balance.
      if (e - b < 2)
        EXPECT_TRUE(e == items || e % 64 == 0) << "[" << b << ", " << e << ")";
    }
    if (items == 4096) {
      // Long chunks while much is left: far fewer than at the minimum grain.
      EXPECT_LT(chunks.size(), size_t(4096 / 2 / 4));
      EXPECT_EQ(chunks.front().second - chunks.front().first, 64);
    }
  }
}

TEST(Tensor, HalfFloatsRoundToNearestEven) {
  EXPECT_EQ(floatToBF16(1.0f), 0x3f80);
  EXPECT_EQ(bf16ToFloat(floatToBF16(3.140625f)), 3.140625f);
  // 1 + 2^-8 is halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(bf16ToFloat(floatToBF16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(f16ToFloat(floatToF16(0.333251953125f)), 0.333251953125f);
  EXPECT_EQ(f16ToFloat(floatToF16(1e-7f)), std::ldexp(1.0f, -24) * 2);
  EXPECT_TRUE(std::isinf(f16ToFloat(floatToF16(70000.0f))));
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBF16(std::nanf("")))));
}

TEST(Tensor, StridedLoadAndStore) {
  std::vector<float> data(12, 0.0f);
  TensorView t{data.data(), DType::f32, {3, 2}, {1, 3}}; // column-major 3x2
  int64_t idx[2] = {2, 1};
  t.store(idx, 5.0);
  EXPECT_EQ(data[2 + 3], 5.0f);
  EXPECT_EQ(t.load(idx), 5.0);
}

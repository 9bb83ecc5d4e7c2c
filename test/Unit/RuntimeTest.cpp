//===- RuntimeTest.cpp - Thread pool and element conversions ----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/Tensor.h"
#include "attnc/runtime/ThreadPool.h"

#include <gtest/gtest.h>

#include <atomic>
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

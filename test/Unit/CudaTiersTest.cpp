//===- CudaTiersTest.cpp - The CUDA JIT's quick and final tiers -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// CompileOptions::cudaTiers on a Hopper GPU: a new variant comes back as
// the two-CTA kernel while the warp-specialized one compiles; both tiers
// match the CPU kernel of the same spec, a tile plan of the quick tier
// still launches after the switch, and the caches then hold the final
// kernel. Skipped without a GPU, and without tiers (not sm_90).
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "attnc/runtime/Cuda.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

using namespace attnc;

namespace {
// A document mask (its tile classes come from a table: a tile plan), with
// a score term unique to this test so that no other compile shares the
// source.
const char *kSpec = R"(
attention tiers(q: bf16[1, 2, S, 64], k: bf16[1, 2, S, 64], v: bf16[1, 2, S, 64], doc: i32[1, S])
    -> (o: bf16[1, 2, S, 64]) {
  score(s, b, h, i, j) = s - 0.0078125 * (i - j)
  mask(b, h, i, j) = doc[b, i] == doc[b, j] && j <= i
}
)";

uint16_t toBF16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}
float fromBF16(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

struct DeviceBuffer {
  void *ptr = nullptr;
  ~DeviceBuffer() {
    if (ptr)
      cuda::free(ptr);
  }
};
} // namespace

TEST(CudaTiers, QuickTierServesUntilTheFinalOneTakesOver) {
  std::string why;
  if (!cuda::init(why))
    GTEST_SKIP() << "no GPU: " << why;
  const int64_t S = 300;
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("attnc-tiers-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  CompileOptions options;
  options.target = Target::cuda;
  options.cacheDir = dir.string();
  options.dims["S"] = S;
  Result<Kernel> kernel = compileString(kSpec, "tiers.attn", options);
  ASSERT_TRUE(kernel) << kernel.error();
  if (!kernel->info().quickTier)
    GTEST_SKIP() << "no quick tier on this GPU (the warp-specialized kernel is sm_90a's)";

  // Inputs, and the CPU kernel's output as the expectation.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  size_t n = 2 * S * 64;
  std::vector<uint16_t> q(n), k(n), v(n), o(n);
  for (auto *t : {&q, &k, &v})
    for (uint16_t &x : *t)
      x = toBF16(normal(rng));
  std::vector<int32_t> doc(S);
  for (int64_t p = 0; p < S; ++p)
    doc[p] = static_cast<int32_t>(p / 70);
  auto view = [](void *data, DType dtype, std::vector<int64_t> shape) {
    TensorView t;
    t.data = data;
    t.dtype = dtype;
    t.shape = std::move(shape);
    return t;
  };
  CompileOptions cpu;
  cpu.cacheDir = "off";
  cpu.dims["S"] = S;
  Result<Kernel> reference = compileString(kSpec, "tiers.attn", cpu);
  ASSERT_TRUE(reference) << reference.error();
  std::vector<uint16_t> expected(n);
  ASSERT_TRUE(reference->run({view(q.data(), DType::bf16, {1, 2, S, 64}),
                              view(k.data(), DType::bf16, {1, 2, S, 64}),
                              view(v.data(), DType::bf16, {1, 2, S, 64}),
                              view(doc.data(), DType::i32, {1, S}),
                              view(expected.data(), DType::bf16, {1, 2, S, 64})}));

  DeviceBuffer dq, dk, dv, dd, dout;
  ASSERT_TRUE(cuda::malloc(&dq.ptr, 2 * n, why) && cuda::malloc(&dk.ptr, 2 * n, why) &&
              cuda::malloc(&dv.ptr, 2 * n, why) && cuda::malloc(&dd.ptr, 4 * S, why) &&
              cuda::malloc(&dout.ptr, 2 * n, why))
      << why;
  ASSERT_TRUE(cuda::copyToDevice(dq.ptr, q.data(), 2 * n, why) &&
              cuda::copyToDevice(dk.ptr, k.data(), 2 * n, why) &&
              cuda::copyToDevice(dv.ptr, v.data(), 2 * n, why) &&
              cuda::copyToDevice(dd.ptr, doc.data(), 4 * S, why))
      << why;
  std::vector<TensorView> views = {view(dq.ptr, DType::bf16, {1, 2, S, 64}),
                                   view(dk.ptr, DType::bf16, {1, 2, S, 64}),
                                   view(dv.ptr, DType::bf16, {1, 2, S, 64}),
                                   view(dd.ptr, DType::i32, {1, S}),
                                   view(dout.ptr, DType::bf16, {1, 2, S, 64})};
  auto expectMatches = [&](const char *what) {
    ASSERT_TRUE(cuda::synchronize(why)) << why;
    ASSERT_TRUE(cuda::copyToHost(o.data(), dout.ptr, 2 * n, why)) << why;
    double worst = 0;
    for (size_t x = 0; x < n; ++x)
      worst = std::max(worst, static_cast<double>(std::fabs(fromBF16(o[x]) - fromBF16(expected[x]))));
    EXPECT_LT(worst, 2e-2 + 1.0 / 128) << what;
    ASSERT_TRUE(cuda::memset8(dout.ptr, 0xff, 2 * n, why)) << why; // NaNs for the next run
  };

  // The quick tier runs at once, also through a tile plan.
  Result<TilePlan> plan = kernel->planTiles(views);
  ASSERT_TRUE(plan) << plan.error();
  Status st = kernel->run(views);
  ASSERT_TRUE(st) << st.error();
  expectMatches("quick tier");
  st = kernel->launch(views, {}, nullptr, *plan);
  ASSERT_TRUE(st) << st.error();
  expectMatches("quick tier with its tile plan");

  // The final tier takes over; the quick tier's plan still launches.
  st = kernel->waitForFinalTier();
  ASSERT_TRUE(st) << st.error();
  st = kernel->run(views);
  ASSERT_TRUE(st) << st.error();
  expectMatches("final tier");
  st = kernel->launch(views, {}, nullptr, *plan);
  ASSERT_TRUE(st) << st.error();
  expectMatches("final tier, given the quick tier's plan");

  // A second compile finds the final kernel in memory; the disk cache holds
  // both cubins.
  Result<Kernel> again = compileString(kSpec, "tiers.attn", options);
  ASSERT_TRUE(again) << again.error();
  EXPECT_FALSE(again->info().quickTier);
  EXPECT_TRUE(again->info().fromCache);
  int cubins = 0;
  for (const auto &entry : std::filesystem::directory_iterator(dir))
    cubins += entry.path().extension() == ".cubin";
  EXPECT_EQ(cubins, 2);
  std::filesystem::remove_all(dir);
}

namespace {
// Two specs whose generated sources are the same (the source numbers its
// arguments), with another name and default for their param.
const char *kSignatureA = R"(
attention sigtest(q: bf16[1, 2, S, 64], k: bf16[1, 2, S, 64], v: bf16[1, 2, S, 64])
    -> (o: bf16[1, 2, S, 64]) {
  param w: i32 = 4
  score(s, b, h, i, j) = s - 0.00390625 * (i - j)
  mask(b, h, i, j) = j <= i && i - j < w
}
)";
const char *kSignatureB = R"(
attention sigtest(q: bf16[1, 2, S, 64], k: bf16[1, 2, S, 64], v: bf16[1, 2, S, 64])
    -> (o: bf16[1, 2, S, 64]) {
  param window: i32 = 128
  score(s, b, h, i, j) = s - 0.00390625 * (i - j)
  mask(b, h, i, j) = j <= i && i - j < window
}
)";
} // namespace

TEST(CudaTiers, ASecondSpecOfTheSameSourceKeepsItsOwnParams) {
  // B compiled while A's final tier is pending shares A's kernels; once the
  // final tier takes over, B's launches still read B's param names and
  // defaults (they once took A's: `window` was ignored, `w` = 4 used).
  std::string why;
  if (!cuda::init(why))
    GTEST_SKIP() << "no GPU: " << why;
  const int64_t S = 300;
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("attnc-signature-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  CompileOptions options;
  options.target = Target::cuda;
  options.cacheDir = dir.string();
  options.dims["S"] = S;
  Result<Kernel> a = compileString(kSignatureA, "a.attn", options);
  ASSERT_TRUE(a) << a.error();
  Result<Kernel> b = compileString(kSignatureB, "b.attn", options);
  ASSERT_TRUE(b) << b.error();
  Status st = b->waitForFinalTier();
  ASSERT_TRUE(st) << st.error();

  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  size_t n = 2 * S * 64;
  std::vector<uint16_t> q(n), k(n), v(n), o(n), expected(n);
  for (auto *t : {&q, &k, &v})
    for (uint16_t &x : *t)
      x = toBF16(normal(rng));
  auto view = [](void *data, std::vector<int64_t> shape) {
    TensorView t;
    t.data = data;
    t.dtype = DType::bf16;
    t.shape = std::move(shape);
    return t;
  };
  const std::vector<int64_t> shape = {1, 2, S, 64};
  CompileOptions cpu;
  cpu.cacheDir = "off";
  cpu.dims["S"] = S;
  Result<Kernel> reference = compileString(kSignatureB, "b.attn", cpu);
  ASSERT_TRUE(reference) << reference.error();
  ASSERT_TRUE(
      reference->run({view(q.data(), shape), view(k.data(), shape),
                      view(v.data(), shape), view(expected.data(), shape)},
                     {{"window", 32}}));
  DeviceBuffer dq, dk, dv, dout;
  ASSERT_TRUE(
      cuda::malloc(&dq.ptr, 2 * n, why) && cuda::malloc(&dk.ptr, 2 * n, why) &&
      cuda::malloc(&dv.ptr, 2 * n, why) && cuda::malloc(&dout.ptr, 2 * n, why))
      << why;
  ASSERT_TRUE(cuda::copyToDevice(dq.ptr, q.data(), 2 * n, why) &&
              cuda::copyToDevice(dk.ptr, k.data(), 2 * n, why) &&
              cuda::copyToDevice(dv.ptr, v.data(), 2 * n, why))
      << why;
  st = b->run({view(dq.ptr, shape), view(dk.ptr, shape), view(dv.ptr, shape),
               view(dout.ptr, shape)},
              {{"window", 32}});
  ASSERT_TRUE(st) << st.error();
  ASSERT_TRUE(cuda::copyToHost(o.data(), dout.ptr, 2 * n, why)) << why;
  double worst = 0;
  for (size_t x = 0; x < n; ++x)
    worst = std::max(worst, static_cast<double>(std::fabs(
                                fromBF16(o[x]) - fromBF16(expected[x]))));
  EXPECT_LT(worst, 2e-2 + 1.0 / 128);
  std::filesystem::remove_all(dir);
}

//===- JitApiTest.cpp - The host API: compile, run, errors, caches -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Uses include/attnc/attnc.h as a host program would: a spec from a string,
// a kernel run on its own buffers, and every run-time mistake reported as a
// Status rather than a crash.
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "compiler/JitCommon.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace attnc;

namespace {
const char *kWindowSpec = R"(
attention window(q: f32[B, 2, S, 8], k: f32[B, 2, S, 8], v: f32[B, 2, S, 8])
    -> (o: f32[B, 2, S, 8], lse: f32[B, 2, S]) {
  param w: i32 = 2
  mask(b, h, i, j) = j <= i && i - j < w
}
)";

CompileOptions noDiskCache() {
  CompileOptions o;
  o.cacheDir = "off";
  return o;
}

struct Buffers {
  int64_t s;
  std::vector<float> q, k, v, o, lse;
  explicit Buffers(int64_t s)
      : s(s), q(2 * s * 8), k(2 * s * 8), v(2 * s * 8), o(2 * s * 8), lse(2 * s) {
    for (size_t i = 0; i < q.size(); ++i) {
      q[i] = std::sin(0.1f * i);
      k[i] = std::cos(0.07f * i);
      v[i] = static_cast<float>(i % 5);
    }
  }
  std::vector<TensorView> views() {
    auto view = [&](std::vector<float> &d, std::vector<int64_t> shape) {
      TensorView t;
      t.data = d.data();
      t.dtype = DType::f32;
      t.shape = std::move(shape);
      return t;
    };
    return {view(q, {1, 2, s, 8}), view(k, {1, 2, s, 8}), view(v, {1, 2, s, 8}),
            view(o, {1, 2, s, 8}), view(lse, {1, 2, s})};
  }
};
} // namespace

TEST(JitApi, RunsAndUsesParams) {
  Result<Kernel> kernel = compileString(kWindowSpec, "window.attn", noDiskCache());
  ASSERT_TRUE(kernel) << kernel.error();
  EXPECT_EQ(kernel->info().name, "window");
  Buffers buf(5);
  ASSERT_TRUE(kernel->run(buf.views(), {{"w", 1}}));
  // Window 1: each query sees only itself, so o = v.
  for (size_t i = 0; i < buf.o.size(); ++i)
    EXPECT_FLOAT_EQ(buf.o[i], buf.v[i]);
  ASSERT_TRUE(kernel->run(buf.views())); // default w = 2
  EXPECT_NE(buf.o[8 + 1], buf.v[8 + 1]);
}

TEST(JitApi, SecondCompileHitsTheMemoryCache) {
  Result<Kernel> a = compileString(kWindowSpec, "window.attn", noDiskCache());
  Result<Kernel> b = compileString(kWindowSpec, "window.attn", noDiskCache());
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(b->info().fromCache);
  EXPECT_LT(b->info().compileMs, 50.0);
}

/// The window spec in f64 on the host: row i sees keys (i - w, i].
std::vector<double> windowReference(const Buffers &buf, int64_t w) {
  std::vector<double> o(buf.o.size(), 0.0);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < buf.s; ++i) {
      std::vector<double> p;
      double max = -INFINITY, sum = 0;
      for (int64_t j = std::max<int64_t>(0, i - w + 1); j <= i; ++j) {
        double dot = 0;
        for (int d = 0; d < 8; ++d)
          dot += double(buf.q[(h * buf.s + i) * 8 + d]) * buf.k[(h * buf.s + j) * 8 + d];
        p.push_back(dot / std::sqrt(8.0));
        max = std::max(max, p.back());
      }
      for (double &x : p)
        sum += (x = std::exp(x - max));
      for (int64_t j = std::max<int64_t>(0, i - w + 1), n = 0; j <= i; ++j, ++n)
        for (int d = 0; d < 8; ++d)
          o[(h * buf.s + i) * 8 + d] += p[n] / sum * buf.v[(h * buf.s + j) * 8 + d];
    }
  return o;
}

/// A cold CPU compile hands back the quick tier, which runs correctly;
/// waitForFinalTier switches to the optimized kernel, and only that one
/// reaches the disk cache.
TEST(JitApi, CpuTiersRunTheQuickKernelThenTheOptimizedOne) {
  if (const char *env = std::getenv("ATTNC_CPU_TIERS"); env && std::string(env) == "0")
    GTEST_SKIP() << "ATTNC_CPU_TIERS=0";
  std::string dir = ::testing::TempDir() + "attnc-cpu-tiers-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  // A spec of its own (w = 3), so no other test's kernel is in the memory cache.
  std::string spec = kWindowSpec;
  spec.replace(spec.find("= 2"), 3, "= 3");
  CompileOptions options;
  options.cacheDir = dir;
  Result<Kernel> kernel = compileString(spec, "tiers.attn", options);
  ASSERT_TRUE(kernel) << kernel.error();
  EXPECT_TRUE(kernel->info().quickTier);
  EXPECT_FALSE(kernel->info().fromCache);
  Buffers buf(37);
  std::vector<double> want = windowReference(buf, 3);
  auto expectReference = [&] {
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(buf.o[i], want[i], 1e-5) << "element " << i;
  };
  ASSERT_TRUE(kernel->run(buf.views()));
  expectReference();
  ASSERT_TRUE(kernel->waitForFinalTier());
  std::fill(buf.o.begin(), buf.o.end(), NAN);
  ASSERT_TRUE(kernel->run(buf.views()));
  expectReference();
  // The optimized kernel is what the caches now give.
  Result<Kernel> again = compileString(spec, "tiers.attn", options);
  ASSERT_TRUE(again) << again.error();
  EXPECT_FALSE(again->info().quickTier);
  EXPECT_TRUE(again->info().fromCache);
  int objects = 0;
  for (const auto &entry : std::filesystem::directory_iterator(dir))
    objects += entry.path().extension() == ".o";
  EXPECT_EQ(objects, 1);
  std::filesystem::remove_all(dir);
}

TEST(JitApi, CompileErrorsComeBackAsDiagnostics) {
  Result<Kernel> kernel = compileString(
      "attention x(q: f32[B, 2, S, 8], k: f32[B, 2, S, 8], v: f32[B, 2, S, 8])\n"
      "    -> (o: f32[B, 2, S, 8]) {\n  mask(b, h, i, j) = j <= windw\n}\n",
      "bad.attn", noDiskCache());
  ASSERT_FALSE(kernel);
  EXPECT_NE(kernel.error().find("bad.attn:3:"), std::string::npos) << kernel.error();
  EXPECT_NE(kernel.error().find("unknown name 'windw'"), std::string::npos);
}

TEST(JitApi, RunTimeMistakesAreErrors) {
  Result<Kernel> kernel = compileString(kWindowSpec, "window.attn", noDiskCache());
  ASSERT_TRUE(kernel);
  Buffers buf(4);
  std::vector<TensorView> views = buf.views();

  std::vector<TensorView> fewer(views.begin(), views.begin() + 3);
  EXPECT_EQ(kernel->run(fewer).error(), "kernel 'window' takes 5 tensors, got 3");

  std::vector<TensorView> wrongType = views;
  wrongType[1].dtype = DType::bf16;
  EXPECT_EQ(kernel->run(wrongType).error(), "tensor 'k' expects dtype f32, got bf16");

  std::vector<TensorView> wrongHeads = views;
  wrongHeads[0].shape[1] = 3;
  EXPECT_EQ(kernel->run(wrongHeads).error(), "tensor 'q' expects dim 1 = 2, got 3");

  std::vector<TensorView> wrongLen = views;
  wrongLen[2].shape[2] = 3;
  EXPECT_EQ(kernel->run(wrongLen).error(),
            "tensor 'v' has S = 3 in dim 2, but an earlier tensor has S = 4");

  std::vector<TensorView> strided = views;
  strided[0].strides = {64, 32, 16, 2};
  EXPECT_NE(kernel->run(strided).error().find("not contiguous"), std::string::npos);

  // Outputs that share memory with another tensor would be read after
  // other items wrote them: an error, not a wrong answer.
  std::vector<TensorView> intoK = views;
  intoK[3].data = buf.k.data();
  EXPECT_EQ(kernel->run(intoK).error(),
            "output 'o' overlaps tensor 'k' in memory; an output may not share memory "
            "with another tensor");
  std::vector<TensorView> inPlace = views;
  inPlace[3].data = buf.q.data();
  EXPECT_NE(kernel->run(inPlace).error().find("output 'o' overlaps tensor 'q'"),
            std::string::npos);
  std::vector<TensorView> lseInO = views;
  lseInO[4].data = buf.o.data() + buf.o.size() - 1; // shares o's last element
  EXPECT_NE(kernel->run(lseInO).error().find("overlaps"), std::string::npos);
  std::vector<TensorView> huge = views;
  for (TensorView &t : huge)
    t.shape[0] = int64_t(1) << 60; // B: sizes times strides overflow
  EXPECT_NE(kernel->run(huge).error().find("overflow"), std::string::npos);

  EXPECT_EQ(kernel->run(views, {{"width", 3}}).error(),
            "kernel 'window' has no parameter 'width'");
  EXPECT_EQ(kernel->run(views, {{"w", 2.5}}).error(),
            "parameter 'w' is an integer, got 2.500000");
}

TEST(JitApi, NoKeysGiveZeroAndMinusInfinity) {
  // Cross-attention over an empty memory (T = 0): every row sees nothing.
  const char *spec = R"(
attention cross(q: f32[B, 2, S, 8], k: f32[B, 2, T, 8], v: f32[B, 2, T, 8])
    -> (o: f32[B, 2, S, 8], lse: f32[B, 2, S]) {
}
)";
  Result<Kernel> kernel = compileString(spec, "cross.attn", noDiskCache());
  ASSERT_TRUE(kernel) << kernel.error();
  Buffers buf(3);
  std::vector<TensorView> views = buf.views();
  views[1].shape[2] = 0;
  views[2].shape[2] = 0;
  std::fill(buf.o.begin(), buf.o.end(), std::nanf(""));
  Status st = kernel->run(views);
  ASSERT_TRUE(st) << st.error();
  for (float x : buf.o)
    EXPECT_EQ(x, 0.0f);
  for (float x : buf.lse)
    EXPECT_TRUE(std::isinf(x) && x < 0);
}

TEST(JitApi, RegionReadsStayInsideTheirTensors) {
  // Regions may compute any index; the kernel clamps each to the tensor (the
  // reference reports such reads as errors) and reads an empty tensor as 0.
  const char *spec = R"(
attention oob(q: f32[B, 2, S, 8], k: f32[B, 2, S, 8], v: f32[B, 2, S, 8], g: f32[B, 2, N])
    -> (o: f32[B, 2, S, 8]) {
  score(s, b, h, i, j) = s + g[b, h, j + 100000]
  gate(x, b, h, i, d) = x * g[b, h, i - 100000]
}
)";
  const char *plainSpec = R"(
attention plain(q: f32[B, 2, S, 8], k: f32[B, 2, S, 8], v: f32[B, 2, S, 8])
    -> (o: f32[B, 2, S, 8]) {
}
)";
  Result<Kernel> kernel = compileString(spec, "oob.attn", noDiskCache());
  ASSERT_TRUE(kernel) << kernel.error();
  Result<Kernel> plain = compileString(plainSpec, "plain.attn", noDiskCache());
  ASSERT_TRUE(plain) << plain.error();
  Buffers buf(5);
  std::vector<TensorView> views = buf.views();
  views.pop_back(); // no lse
  std::vector<float> want(buf.o.size());
  std::vector<TensorView> plainViews = views;
  plainViews[3].data = want.data();
  ASSERT_TRUE(plain->run(plainViews));
  // Clamped, the score adds g[b, h, N - 1] to a whole row (no change after
  // the softmax) and the gate multiplies by g[b, h, 0].
  std::vector<float> g = {2.f, 0.5f, 0.25f, -1.f, 3.f, 4.f};
  TensorView gView{g.data(), DType::f32, {1, 2, 3}, {}};
  std::vector<TensorView> withG = {views[0], views[1], views[2], gView, views[3]};
  Status st = kernel->run(withG);
  ASSERT_TRUE(st) << st.error();
  for (size_t n = 0; n < buf.o.size(); ++n) {
    float scale = n < buf.o.size() / 2 ? g[0] : g[3];
    EXPECT_NEAR(buf.o[n], want[n] * scale, 1e-4f * (1 + std::fabs(want[n]))) << n;
  }
  // An empty g (N = 0, no memory at all) reads as zeros: the gate makes o 0.
  withG[3] = TensorView{nullptr, DType::f32, {1, 2, 0}, {}};
  st = kernel->run(withG);
  ASSERT_TRUE(st) << st.error();
  for (float x : buf.o)
    EXPECT_EQ(x, 0.0f);
}

TEST(JitApi, FullyMaskedRowsGiveZeroAndMinusInfinity) {
  Result<Kernel> kernel = compileString(kWindowSpec, "window.attn", noDiskCache());
  ASSERT_TRUE(kernel);
  Buffers buf(3);
  ASSERT_TRUE(kernel->run(buf.views(), {{"w", 0}})); // nothing visible
  for (float x : buf.o)
    EXPECT_EQ(x, 0.0f);
  for (float x : buf.lse)
    EXPECT_TRUE(std::isinf(x) && x < 0);
}

// A NaN input is not hidden: every row that sees a NaN score gives NaN,
// also a row whose only visible key is that one (its max cannot tell it from
// a fully masked row), and the rows that do not see it stay finite.
TEST(JitApi, NaNScoresReachTheRowsThatSeeThem) {
  Result<Kernel> kernel = compileString(kWindowSpec, "window.attn", noDiskCache());
  ASSERT_TRUE(kernel);
  for (int w : {1, 2}) {
    Buffers buf(4);
    buf.k[1 * 8 + 3] = std::nanf(""); // head 0, key 1
    ASSERT_TRUE(kernel->run(buf.views(), {{"w", w}}));
    for (int i = 0; i < 4; ++i) {
      bool sees = i >= 1 && i - 1 < w;
      for (int d = 0; d < 8; ++d)
        EXPECT_EQ(std::isnan(buf.o[i * 8 + d]), sees) << "w " << w << " row " << i;
      // Head 1 has no NaN.
      for (int d = 0; d < 8; ++d)
        EXPECT_TRUE(std::isfinite(buf.o[(4 + i) * 8 + d]));
    }
  }
}

TEST(JitApi, CudaTargetFailsCleanly) {
  // f32 inputs are a located diagnostic, whatever the machine.
  CompileOptions o = noDiskCache();
  o.target = Target::cuda;
  Result<Kernel> f32 = compileString(kWindowSpec, "window.attn", o);
  ASSERT_FALSE(f32);
  EXPECT_NE(f32.error().find("window.attn:"), std::string::npos) << f32.error();
  EXPECT_NE(f32.error().find("takes bf16 or f16"), std::string::npos) << f32.error();
  o.dtype = DType::bf16;
  o.cudaArch = "hopper";
  Result<Kernel> badArch = compileString(kWindowSpec, "window.attn", o);
  ASSERT_FALSE(badArch);
  EXPECT_NE(badArch.error().find("must look like sm_90a"), std::string::npos) << badArch.error();
  o.cudaArch.clear();
  // bf16: compiles where a GPU is; elsewhere says why, never crashes.
  Result<Kernel> k = compileString(kWindowSpec, "window.attn", o);
  if (!k) {
    EXPECT_NE(k.error().find("the CUDA target needs a GPU"), std::string::npos) << k.error();
    return;
  }
  EXPECT_EQ(k->target(), Target::cuda);
  // Host memory is refused before anything is launched.
  Buffers b(6);
  std::vector<TensorView> views = b.views();
  for (TensorView &t : views)
    if (t.shape.size() == 4)
      t.dtype = DType::bf16;
  Status st = k->run(views, {});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().find("is not in GPU memory"), std::string::npos) << st.error();
}

// CPU kernels bound their tiles inline: a tile plan is empty, and launching
// with it is launching without it. A mistake in the tensors is still an error.
TEST(JitApi, TilePlanIsEmptyOnTheCpu) {
  Result<Kernel> kernel = compileString(kWindowSpec, "window.attn", noDiskCache());
  ASSERT_TRUE(kernel) << kernel.error();
  Buffers buf(6), ref(6);
  Result<TilePlan> plan = kernel->planTiles(buf.views());
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_TRUE(plan->empty());
  EXPECT_EQ(plan->bytes(), 0u);
  ASSERT_TRUE(kernel->launch(buf.views(), {}, nullptr, *plan));
  ASSERT_TRUE(kernel->run(ref.views()));
  EXPECT_EQ(buf.o, ref.o);
  std::vector<TensorView> bad = buf.views();
  bad.pop_back();
  EXPECT_FALSE(kernel->planTiles(bad));
}

// A top-k selection is a hidden argument: the caller passes q, k, v and o
// only, and the runtime fills the selection. With one key block per query
// block kept (top 1 of blocks of 2 keys, non-causal), every row sees the two
// keys of one block, so no row is fully masked (an unfilled table would
// mask them all).
TEST(JitApi, TopKSelectionIsHiddenFromTheCaller) {
  const char *spec = R"(
attention pick(q: f32[B, 2, S, 8], k: f32[B, 2, S, 8], v: f32[B, 2, S, 8])
    -> (o: f32[B, 2, S, 8], lse: f32[B, 2, S]) {
  mask(b, h, i, j) = topk(1, 4, 2)
}
)";
  Result<Kernel> kernel = compileString(spec, "pick.attn", noDiskCache());
  ASSERT_TRUE(kernel) << kernel.error();
  EXPECT_EQ(kernel->info().args.size(), 5u); // q, k, v, o, lse
  Buffers buf(8);
  ASSERT_TRUE(kernel->run(buf.views()));
  for (int64_t row = 0; row < 2 * 8; ++row)
    EXPECT_TRUE(std::isfinite(buf.lse[row])) << row;
  std::vector<TensorView> extra = buf.views();
  extra.push_back(extra.back()); // one tensor too many: the table is not the caller's
  EXPECT_FALSE(kernel->run(extra));
}

TEST(JitApi, CacheWritesFromTwoThreadsLeaveOneWholeEntry) {
  // A final tier compiled in the background may write an entry while
  // another thread of the process writes the same one: each write has a
  // temporary file of its own, so the entry that stays is one of them, whole.
  std::string dir = ::testing::TempDir() + "/attnc_cache_threads_" +
                    std::to_string(::getpid());
  std::string path = dir + "/entry";
  std::string a(1 << 20, 'a'), b(1 << 20, 'b');
  auto writer = [&](const std::string &data) {
    for (int n = 0; n < 20; ++n)
      writeCacheEntry(dir, path, "key", data);
  };
  for (int round = 0; round < 12; ++round) {
    std::thread ta(writer, std::cref(a)), tb(writer, std::cref(b));
    ta.join();
    tb.join();
    std::optional<std::string> entry = readCacheEntry(path, "key");
    ASSERT_TRUE(entry.has_value()) << "round " << round;
    EXPECT_TRUE(*entry == a || *entry == b);
  }
  std::filesystem::remove_all(dir);
}

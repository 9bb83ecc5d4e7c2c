//===- FmaPeak.cpp - Measure one core's f32 FMA peak ------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Independent FMA chains, as wide as the CPU allows (AVX-512, AVX2+FMA, or
// scalar), picked at run time: the denominator of "percent of peak".
//
//===----------------------------------------------------------------------===//

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace {
template <int Lanes> struct Chains {
  typedef float V __attribute__((vector_size(Lanes * 4)));
};

template <int Lanes>
__attribute__((always_inline)) inline double run(int64_t iters) {
  using V = typename Chains<Lanes>::V;
  // 12 independent accumulators hide the FMA latency (4 cycles x 2 ports).
  V a[12], x, y;
  for (int i = 0; i < Lanes; ++i) {
    x[i] = 0.999999f;
    y[i] = 1e-7f;
  }
  for (auto &v : a)
    v = x;
  auto start = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) {
#pragma unroll
    for (int k = 0; k < 12; ++k)
      a[k] = a[k] * x + y;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  float total = 0;
  for (auto &v : a)
    total += v[0] + v[Lanes - 1];
  volatile float sink = total; // keeps every chain alive
  (void)sink;
  return 12.0 * 2 * Lanes * iters / s / 1e9;
}

__attribute__((target("avx512f"))) double peak512(int64_t n) { return run<16>(n); }
__attribute__((target("avx2,fma"))) double peak256(int64_t n) { return run<8>(n); }
double peakScalar(int64_t n) { return run<4>(n); }
} // namespace

/// GFLOP/s of one core doing nothing but f32 FMAs, and the ISA it used.
double measureFmaPeak(const char **isa) {
  const int64_t iters = 200000000;
  if (__builtin_cpu_supports("avx512f")) {
    *isa = "avx512";
    return peak512(iters);
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *isa = "avx2";
    return peak256(iters);
  }
  *isa = "sse";
  return peakScalar(iters);
}

/// GFLOP/s of `threads` cores doing f32 FMAs at once: with every core busy
/// the clock may drop (AVX-512 licences, a shared host), so this is the
/// denominator for a many-thread run.
double measureFmaPeakAllThreads(unsigned threads) {
  std::vector<double> each(threads);
  std::vector<std::thread> pool;
  const char *isa = "";
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&each, &isa, t] { each[t] = measureFmaPeak(&isa); });
  double sum = 0;
  for (unsigned t = 0; t < threads; ++t) {
    pool[t].join();
    sum += each[t];
  }
  return sum;
}

//===- CpuBench.cpp - CPU attention benchmark -------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Times attnc's CPU kernels for dense, causal, sliding-window, document,
// block-sparse (a user-supplied block mask, about 1/8 of 64 x 64 blocks),
// gated, causal sigmoid attention and causal GQA with 4 query heads per KV
// head (--variants sigmoid, gqa: not in the default list) over head dims and
// lengths, and prints GFLOP/s over
// visible (query, key) pairs: 2 * (D + Dv) flops each. With --json it prints
// one JSON object per line for bench/cpu_vs_torch.py.
//
//   attnc-cpu-bench [--variants dense,causal,...] [--dims 64,128]
//                   [--lens 1024,2048,4096,8192] [--heads 16] [--batch 1]
//                   [--threads N] [--dtype f32|bf16] [--reps 3] [--json]
//                   [--no-skip]   (evaluate the mask on every tile)
//                   [--no-peak]   (skip the FMA peak: %peak reads 0)
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

double measureFmaPeak(const char **isa);
double measureFmaPeakAllThreads(unsigned threads);

using namespace attnc;

namespace {
std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty())
      out.push_back(item);
  return out;
}

std::vector<int64_t> splitInts(const std::string &s) {
  std::vector<int64_t> out;
  for (const std::string &x : split(s))
    out.push_back(std::atoll(x.c_str()));
  return out;
}

constexpr int64_t kWindow = 1024;
constexpr int64_t kDocLen = 1000; // documents of 1000 tokens, the last shorter

/// The spec of a variant for H heads of dim D (dims are symbolic B and S).
std::string specFor(const std::string &variant, int64_t heads, int64_t dim) {
  std::string h = std::to_string(heads), d = std::to_string(dim);
  std::string t = "f32[B, " + h + ", S, " + d + "]";
  // gqa: causal with 4 query heads per KV head.
  std::string kv = variant == "gqa" ? "f32[B, " + std::to_string(heads / 4) + ", S, " + d + "]" : t;
  std::string head = "attention " + variant + "(q: " + t + ", k: " + kv + ", v: " + kv;
  std::string outs = ") -> (o: " + t + ") {\n";
  if (variant == "dense")
    return head + outs + "}\n";
  if (variant == "causal" || variant == "gqa")
    return head + outs + "  mask(b, h, i, j) = j <= i\n}\n";
  if (variant == "sliding_window")
    return head + outs + "  param window: i32 = " + std::to_string(kWindow) +
           "\n  mask(b, h, i, j) = j <= i && i - j < window\n}\n";
  if (variant == "document")
    return head + ", docs: i32[B, S]" + outs +
           "  mask(b, h, i, j) = docs[b, i] == docs[b, j] && j <= i\n}\n";
  if (variant == "block_sparse") // a user-supplied mask of 64 x 64 blocks
    return head + ", blocks: i32[B, " + h + ", QB, KB]" + outs +
           "  mask(b, h, i, j) = blocks[b, h, i / 64, j / 64] != 0\n}\n";
  if (variant == "sigmoid") // sigmoid attention (FlashSigmoid), causal
    return head + outs + "  kernel = sigmoid\n  mask(b, h, i, j) = j <= i\n}\n";
  if (variant == "gated")
    return head + ", g: f32[B, " + h + ", S]" + outs +
           "  mask(b, h, i, j) = j <= i\n"
           "  gate(x, b, h, i, d) = x * sigmoid(g[b, h, i])\n}\n";
  return "";
}

/// Visible (query, key) pairs of one (batch, head).
double visiblePairs(const std::string &variant, int64_t n) {
  auto causal = [](double m) { return m * (m + 1) / 2; };
  if (variant == "dense")
    return double(n) * n;
  if (variant == "sliding_window") {
    double w = std::min(kWindow, n);
    return causal(w) + double(n - w) * w;
  }
  if (variant == "document") {
    double total = 0;
    for (int64_t s = 0; s < n; s += kDocLen)
      total += causal(std::min(kDocLen, n - s));
    return total;
  }
  return causal(n);
}
} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> variants = {"dense", "causal", "sliding_window", "document", "gated"};
  std::vector<int64_t> dims = {64, 128}, lens = {1024, 2048, 4096, 8192};
  int64_t heads = 16, batch = 1;
  unsigned threads = std::thread::hardware_concurrency();
  int reps = 3;
  bool json = false;
  bool skipTiles = true;
  bool measurePeak = true;
  DType dtype = DType::f32;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--variants") variants = split(next());
    else if (a == "--dims") dims = splitInts(next());
    else if (a == "--lens") lens = splitInts(next());
    else if (a == "--heads") heads = std::atoll(next().c_str());
    else if (a == "--batch") batch = std::atoll(next().c_str());
    else if (a == "--threads") threads = static_cast<unsigned>(std::atoi(next().c_str()));
    else if (a == "--reps") reps = std::atoi(next().c_str());
    else if (a == "--json") json = true;
    else if (a == "--no-skip") skipTiles = false;
    else if (a == "--no-peak") measurePeak = false;
    else if (a == "--dtype") {
      if (!parseDType(next(), dtype) || (dtype != DType::f32 && dtype != DType::bf16)) {
        std::fprintf(stderr, "--dtype takes f32 or bf16\n");
        return 1;
      }
    } else {
      std::fprintf(stderr, "unknown argument '%s'\n", a.c_str());
      return 1;
    }
  }

  const char *isa = "";
  double peak = measurePeak ? measureFmaPeak(&isa) : 0.0;
  // With several threads, also the peak of that many cores at once.
  double peakAll = threads > 1 && measurePeak ? measureFmaPeakAllThreads(threads) : peak;
  if (json)
    std::printf("{\"peak_gflops_one_core\": %.1f, \"peak_gflops_all_threads\": %.1f, "
                "\"isa\": \"%s\"}\n",
                peak, peakAll, isa);
  else
    std::printf("one core f32 FMA peak: %.1f GFLOP/s (%s); %u threads at once: %.1f GFLOP/s; "
                "dtype %s\n",
                peak, isa, threads, peakAll, dtypeName(dtype));

  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (const std::string &variant : variants) {
    for (int64_t dim : dims) {
      CompileOptions options;
      options.dtype = dtype;
      options.skipTiles = skipTiles;
      Result<Kernel> kernel = compileString(specFor(variant, heads, dim), variant + ".attn", options);
      if (!kernel) {
        std::fprintf(stderr, "%s", kernel.error().c_str());
        return 1;
      }
      // Time the optimized kernel, not the quick tier of a cold compile.
      if (Status st = kernel->waitForFinalTier(); !st) {
        std::fprintf(stderr, "%s\n", st.error().c_str());
        return 1;
      }
      for (int64_t n : lens) {
        size_t elems = static_cast<size_t>(batch * heads * n * dim);
        size_t bytes = elems * dtypeSize(dtype);
        std::vector<char> q(bytes), k(bytes), v(bytes), o(bytes);
        std::vector<int32_t> docs(batch * n);
        // block_sparse: keep the diagonal block and about 1 in 8 others.
        int64_t nb = (n + 63) / 64;
        std::vector<int32_t> blocks(batch * heads * nb * nb);
        int64_t keptBlocks = 0;
        for (size_t x = 0; x < blocks.size(); ++x) {
          int64_t qb = static_cast<int64_t>(x) / nb % nb, kb = static_cast<int64_t>(x) % nb;
          blocks[x] = qb == kb || (x * 2654435761u >> 7) % 8 == 0;
          keptBlocks += blocks[x];
        }
        std::vector<float> g(batch * heads * n);
        for (auto *buf : {&q, &k, &v}) {
          TensorView t{buf->data(), dtype, {static_cast<int64_t>(elems)}, {}};
          for (int64_t e = 0; e < static_cast<int64_t>(elems); ++e)
            t.store(&e, normal(rng));
        }
        for (int64_t t = 0; t < batch * n; ++t)
          docs[t] = static_cast<int32_t>((t % n) / kDocLen);
        for (float &x : g)
          x = normal(rng);
        std::vector<int64_t> shape = {batch, heads, n, dim};
        std::vector<int64_t> kvShape = {batch, variant == "gqa" ? heads / 4 : heads, n, dim};
        std::vector<TensorView> views = {{q.data(), dtype, shape, {}},
                                         {k.data(), dtype, kvShape, {}},
                                         {v.data(), dtype, kvShape, {}}};
        if (variant == "document")
          views.push_back({docs.data(), DType::i32, {batch, n}, {}});
        if (variant == "gated")
          views.push_back({g.data(), DType::f32, {batch, heads, n}, {}});
        if (variant == "block_sparse")
          views.push_back({blocks.data(), DType::i32, {batch, heads, nb, nb}, {}});
        views.push_back({o.data(), dtype, shape, {}});
        double best = 1e30;
        for (int r = 0; r < reps + 1; ++r) { // the first run warms up
          auto start = std::chrono::steady_clock::now();
          Status st = kernel->run(views, {}, threads);
          double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start).count();
          if (!st) {
            std::fprintf(stderr, "%s\n", st.error().c_str());
            return 1;
          }
          if (r > 0)
            best = std::min(best, ms);
        }
        double flops = 2.0 * (dim + dim) * visiblePairs(variant, n) * batch * heads;
        if (variant == "block_sparse") // n is a multiple of 64 in every preset
          flops = 2.0 * (dim + dim) * 64.0 * 64.0 * static_cast<double>(keptBlocks);
        double gflops = flops / (best * 1e6);
        double pct = peakAll > 0 ? 100.0 * gflops / peakAll : 0.0;
        if (json)
          std::printf("{\"variant\": \"%s\", \"dim\": %lld, \"n\": %lld, \"heads\": %lld, "
                      "\"batch\": %lld, \"threads\": %u, \"dtype\": \"%s\", \"ms\": %.3f, "
                      "\"gflops\": %.2f, \"pct_peak\": %.1f}\n",
                      variant.c_str(), (long long)dim, (long long)n, (long long)heads,
                      (long long)batch, threads, dtypeName(dtype), best, gflops, pct);
        else
          std::printf("%-15s D=%-4lld N=%-6lld %9.2f ms %8.2f GFLOP/s %5.1f%% of %u-thread peak\n",
                      variant.c_str(), (long long)dim, (long long)n, best, gflops, pct, threads);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

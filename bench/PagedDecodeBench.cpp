//===- PagedDecodeBench.cpp - Decode steps over a BlockPool's pages -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// One decode step (S = 1) of `--seqs` sequences of `--tokens` tokens each,
// GQA `--q-heads`/`--kv-heads`, D = 128, pages of 16 tokens, read in place
// from a BlockPool of bf16, q8 and q4 pages by the paged CPU kernel. Prints
// the step time (best of --runs), the bytes of one layer's pages the step
// must read (codes and scales), that over the time, and decode tokens per
// second (sequences per step time), with q8/q4 against bf16.
//
//   attnc-paged-decode-bench [--seqs=8] [--tokens=4096] [--q-heads=32]
//                            [--kv-heads=8] [--threads=0] [--runs=5]
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "attnc/runtime/KvCache.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace attnc;

static std::string specFor(kv::Quant quant, int hq, int hkv) {
  bool plain = quant == kv::Quant::bf16;
  std::string codes = plain ? "bf16" : kv::quantName(quant);
  std::string h = std::to_string(hkv), g = std::to_string(hq);
  std::string scales = plain ? "" : ", ks: f32[P, " + h + ", 16, 4], vs: f32[P, " + h + ", 16, 4]";
  return "attention decode(q: bf16[B, " + g + ", 1, 128], k: " + codes + "[P, " + h +
         ", 16, 128], v: " + codes + "[P, " + h + ", 16, 128]" + scales +
         ", pages: i32[B, M], lens: i32[B]) -> (o: bf16[B, " + g + ", 1, 128]) {\n  kv = paged(" +
         (plain ? "pages, lens" : "pages, lens, ks, vs") + ")\n  align = end\n}\n";
}

int main(int argc, char **argv) {
  int seqs = 8, hq = 32, hkv = 8, runs = 5;
  int64_t tokens = 4096;
  unsigned threads = 0;
  for (int n = 1; n < argc; ++n) {
    std::string a = argv[n];
    auto value = [&](const char *flag) -> const char * {
      size_t len = std::strlen(flag);
      return a.compare(0, len, flag) == 0 ? a.c_str() + len : nullptr;
    };
    if (const char *v = value("--seqs=")) seqs = std::atoi(v);
    else if (const char *v = value("--tokens=")) tokens = std::atoll(v);
    else if (const char *v = value("--q-heads=")) hq = std::atoi(v);
    else if (const char *v = value("--kv-heads=")) hkv = std::atoi(v);
    else if (const char *v = value("--threads=")) threads = static_cast<unsigned>(std::atoi(v));
    else if (const char *v = value("--runs=")) runs = std::atoi(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (seqs < 1 || hq < 1 || hkv < 1 || hq % hkv || tokens < 1 || runs < 1) {
    std::fprintf(stderr, "sizes must be positive, q heads a multiple of KV heads\n");
    return 2;
  }
  std::printf("# decode step: %d sequences x %lld tokens, GQA %d/%d, D=128, pages of 16, one "
              "layer, threads=%u\n",
              seqs, static_cast<long long>(tokens), hq, hkv, threads);
  std::printf("%-5s %10s %12s %10s %14s %10s\n", "quant", "step ms", "KV MB read", "GB/s",
              "tokens/s", "vs bf16");
  double bf16TokensPerS = 0;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (kv::Quant quant : {kv::Quant::bf16, kv::Quant::q8, kv::Quant::q4}) {
    kv::PoolConfig cfg;
    cfg.layers = 1;
    cfg.kvHeads = hkv;
    cfg.headDim = 128;
    cfg.pageTokens = 16;
    cfg.quant = quant;
    cfg.groupSize = 32;
    cfg.maxPages = seqs * ((tokens + 15) / 16) + 1;
    kv::Error error;
    auto pool = kv::BlockPool::create(cfg, error);
    if (!pool) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::vector<kv::SeqId> ids;
    const int64_t chunk = 512;
    std::vector<float> k(hkv * chunk * 128), v(k.size());
    for (int s = 0; s < seqs; ++s) {
      ids.push_back(pool->createSequence());
      for (int64_t done = 0; done < tokens; done += chunk) {
        int64_t n = std::min(chunk, tokens - done);
        for (size_t x = 0; x < static_cast<size_t>(hkv * n * 128); ++x) {
          k[x] = normal(rng);
          v[x] = normal(rng);
        }
        // append takes [layers][kvHeads][tokens][D]: pack the chunk densely.
        if (kv::Error e = pool->append(ids.back(), k.data(), v.data(), n); !e.empty()) {
          std::fprintf(stderr, "%s\n", e.c_str());
          return 1;
        }
      }
    }
    std::vector<int32_t> table, lens;
    int64_t width = 0;
    if (kv::Error e = pool->batchTables(ids, table, lens, width); !e.empty()) {
      std::fprintf(stderr, "%s\n", e.c_str());
      return 1;
    }
    CompileOptions options;
    Result<Kernel> kernel = compileString(specFor(quant, hq, hkv), "decode.attn", options);
    if (!kernel) {
      std::fprintf(stderr, "%s\n", kernel.error().c_str());
      return 1;
    }
    std::vector<uint16_t> q(static_cast<size_t>(seqs) * hq * 128), o(q.size());
    for (uint16_t &x : q)
      x = floatToBF16(normal(rng));
    std::vector<TensorView> tensors = {{q.data(), DType::bf16, {seqs, hq, 1, 128}, {}},
                                       pool->kvView(0, 0), pool->kvView(0, 1)};
    if (quant != kv::Quant::bf16) {
      tensors.push_back(pool->scaleView(0, 0));
      tensors.push_back(pool->scaleView(0, 1));
    }
    tensors.push_back({table.data(), DType::i32, {seqs, width}, {}});
    tensors.push_back({lens.data(), DType::i32, {seqs}, {}});
    tensors.push_back({o.data(), DType::bf16, {seqs, hq, 1, 128}, {}});
    double best = 1e30;
    for (int r = 0; r <= runs; ++r) { // the first run warms up
      auto start = std::chrono::steady_clock::now();
      if (Status st = kernel->run(tensors, {}, threads); !st) {
        std::fprintf(stderr, "%s\n", st.error().c_str());
        return 1;
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                      .count();
      if (r)
        best = std::min(best, ms);
    }
    // The bytes a step must read: every token's K and V rows and scales.
    double bytes = static_cast<double>(seqs) * tokens * 2 * hkv *
                   (pool->rowBytes() + pool->scaleCount() * sizeof(float));
    double tokensPerS = seqs / (best / 1e3);
    if (quant == kv::Quant::bf16)
      bf16TokensPerS = tokensPerS;
    std::printf("%-5s %10.3f %12.1f %10.2f %14.0f %9.2fx\n", kv::quantName(quant), best,
                bytes / 1e6, bytes / (best / 1e3) / 1e9, tokensPerS, tokensPerS / bf16TokensPerS);
  }
  return 0;
}

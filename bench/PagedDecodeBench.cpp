//===- PagedDecodeBench.cpp - Decode steps over a BlockPool's pages -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// One decode step (S = 1) of `--seqs` sequences of `--tokens` tokens each,
// GQA `--q-heads`/`--kv-heads`, D = `--head-dim` (128; a multiple of 32),
// pages of `--page-tokens` tokens (16), read in place
// from a BlockPool of bf16, q8 and q4 pages by the paged CPU kernel. Prints
// the step time (best of --runs), the bytes of one layer's pages the step
// must read (codes and scales), that over the time, and decode tokens per
// second (sequences per step time), with q8/q4 against bf16.
//
// With --target=cuda the kernel runs on the GPU over a DevicePages copy of
// the pool, and two more figures time the whole serving step: append one
// token to every sequence on the host (quantizing it), upload the pages that
// changed, upload tables and lengths, decode. "serving step" waits for each
// step (synchronous uploads); "pipelined" runs the steps back to back on
// one stream (syncAsync, staged tables, Kernel::launch), so the host
// appends and stages step r + 1 while the GPU copies and decodes step r:
// the figure for steps whose new rows do not wait for the previous step's
// output (other agents' batches, restored caches).
//
//   attnc-paged-decode-bench [--seqs=8] [--tokens=4096] [--q-heads=32]
//                            [--kv-heads=8] [--head-dim=128] [--page-tokens=16]
//                            [--threads=0] [--runs=5]
//                            [--target=cpu|cuda]
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "attnc/runtime/Cuda.h"
#include "attnc/runtime/DevicePages.h"
#include "attnc/runtime/KvCache.h"
#include "attnc/runtime/StagedUploads.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace attnc;

static std::string specFor(kv::Quant quant, int hq, int hkv, int d, int pageTokens) {
  bool plain = quant == kv::Quant::bf16;
  std::string codes = plain ? "bf16" : kv::quantName(quant);
  std::string h = std::to_string(hkv), g = std::to_string(hq), dd = std::to_string(d);
  std::string ng = std::to_string(d / 32); // groups of 32
  std::string ps = std::to_string(pageTokens);
  std::string scales = plain ? "" : ", ks: f32[P, " + h + ", " + ps + ", " + ng +
                                        "], vs: f32[P, " + h + ", " + ps + ", " + ng + "]";
  return "attention decode(q: bf16[B, " + g + ", 1, " + dd + "], k: " + codes + "[P, " + h +
         ", " + ps + ", " + dd + "], v: " + codes + "[P, " + h + ", " + ps + ", " + dd + "]" +
         scales +
         ", pages: i32[B, M], lens: i32[B]) -> (o: bf16[B, " + g + ", 1, " + dd +
         "]) {\n  kv = paged(" +
         (plain ? "pages, lens" : "pages, lens, ks, vs") + ")\n  align = end\n}\n";
}

int main(int argc, char **argv) {
  int seqs = 8, hq = 32, hkv = 8, runs = 5, headDim = 128, pageTokens = 16;
  int64_t tokens = 4096;
  unsigned threads = 0;
  bool gpu = false;
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
    else if (const char *v = value("--head-dim=")) headDim = std::atoi(v);
    else if (const char *v = value("--page-tokens=")) pageTokens = std::atoi(v);
    else if (const char *v = value("--target=")) gpu = std::string(v) == "cuda";
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (seqs < 1 || hq < 1 || hkv < 1 || hq % hkv || tokens < 1 || runs < 1) {
    std::fprintf(stderr, "sizes must be positive, q heads a multiple of KV heads\n");
    return 2;
  }
  if (headDim <= 0 || headDim % 32 != 0 || headDim > 512) {
    std::fprintf(stderr, "--head-dim must be a multiple of 32 up to 512\n");
    return 1;
  }
  if (pageTokens <= 0 || pageTokens > 1024) {
    std::fprintf(stderr, "--page-tokens must be 1 to 1024\n");
    return 1;
  }
  std::string why;
  if (gpu && !cuda::init(why)) {
    std::fprintf(stderr, "--target=cuda: %s\n", why.c_str());
    return 1;
  }
  std::printf("# decode step: %d sequences x %lld tokens, GQA %d/%d, D=%d, pages of %d, one "
              "layer, %s\n",
              seqs, static_cast<long long>(tokens), hq, hkv, headDim, pageTokens,
              gpu ? cuda::deviceDescription().c_str()
                  : ("CPU, threads=" + std::to_string(threads)).c_str());
  std::printf("%-5s %10s %12s %10s %14s %10s%s\n", "quant", "step ms", "KV MB read", "GB/s",
              "tokens/s", "vs bf16", gpu ? "   serving step ms (append+sync+tables ms, sync ms)   pipelined ms" : "");
  double bf16TokensPerS = 0;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (kv::Quant quant : {kv::Quant::bf16, kv::Quant::q8, kv::Quant::q4}) {
    kv::PoolConfig cfg;
    cfg.layers = 1;
    cfg.kvHeads = hkv;
    cfg.headDim = headDim;
    cfg.pageTokens = pageTokens;
    cfg.quant = quant;
    cfg.groupSize = 32;
    // Room for the tokens the serving steps append.
    cfg.maxPages = seqs * ((tokens + 2 * runs + 2 + pageTokens - 1) / pageTokens) + 1;
    kv::Error error;
    auto pool = kv::BlockPool::create(cfg, error);
    if (!pool) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::vector<kv::SeqId> ids;
    const int64_t chunk = 512;
    // One chunk of random rows, appended over and over (timing does not
    // depend on the values; drawing them all would dominate the set-up).
    std::vector<float> k(hkv * chunk * headDim), v(k.size());
    for (size_t x = 0; x < k.size(); ++x) {
      k[x] = normal(rng);
      v[x] = normal(rng);
    }
    for (int s = 0; s < seqs; ++s) {
      ids.push_back(pool->createSequence());
      for (int64_t done = 0; done < tokens; done += chunk) {
        int64_t n = std::min(chunk, tokens - done);
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
    if (gpu)
      options.target = Target::cuda;
    Result<Kernel> kernel = compileString(specFor(quant, hq, hkv, headDim, pageTokens), "decode.attn", options);
    if (!kernel) {
      std::fprintf(stderr, "%s\n", kernel.error().c_str());
      return 1;
    }
    // Time the optimized kernel, not the quick tier of a cold compile.
    if (Status st = kernel->waitForFinalTier(); !st) {
      std::fprintf(stderr, "%s\n", st.error().c_str());
      return 1;
    }
    std::vector<uint16_t> q(static_cast<size_t>(seqs) * hq * headDim), o(q.size());
    for (uint16_t &x : q)
      x = floatToBF16(normal(rng));
    // On the GPU: the pool's pages, q, o, tables and lengths in GPU memory.
    std::unique_ptr<kv::DevicePages> dev;
    void *qD = nullptr, *oD = nullptr, *tableD = nullptr, *lensD = nullptr;
    const size_t qBytes = q.size() * 2, tableCap = static_cast<size_t>(seqs) * (width + (2 * runs + 1) / pageTokens + 2) * 4;
    auto upload = [&](void *dst, const void *src, size_t bytes) {
      if (!cuda::copyToDevice(dst, src, bytes, why)) {
        std::fprintf(stderr, "%s\n", why.c_str());
        std::exit(1);
      }
    };
    if (gpu) {
      dev = kv::DevicePages::create(*pool, cfg.maxPages, error);
      if (!dev) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
      }
      auto start = std::chrono::steady_clock::now();
      if (kv::Error e = dev->sync(*pool); !e.empty()) {
        std::fprintf(stderr, "%s\n", e.c_str());
        return 1;
      }
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      std::printf("# %s: first sync uploaded %.1f MB in %.1f ms (%.2f GB/s)\n",
                  kv::quantName(quant), dev->bytesUploaded() / 1e6, ms,
                  dev->bytesUploaded() / (ms / 1e3) / 1e9);
      if (!cuda::malloc(&qD, qBytes, why) || !cuda::malloc(&oD, qBytes, why) ||
          !cuda::malloc(&tableD, tableCap, why) || !cuda::malloc(&lensD, seqs * 4, why)) {
        std::fprintf(stderr, "%s\n", why.c_str());
        return 1;
      }
      upload(qD, q.data(), qBytes);
      upload(tableD, table.data(), table.size() * 4);
      upload(lensD, lens.data(), lens.size() * 4);
    }
    auto views = [&]() {
      std::vector<TensorView> t = {
          {gpu ? qD : q.data(), DType::bf16, {seqs, hq, 1, headDim}, {}},
          gpu ? dev->kvView(*pool, 0, 0) : pool->kvView(0, 0),
          gpu ? dev->kvView(*pool, 0, 1) : pool->kvView(0, 1)};
      if (quant != kv::Quant::bf16) {
        t.push_back(gpu ? dev->scaleView(*pool, 0, 0) : pool->scaleView(0, 0));
        t.push_back(gpu ? dev->scaleView(*pool, 0, 1) : pool->scaleView(0, 1));
      }
      t.push_back({gpu ? tableD : table.data(), DType::i32, {seqs, width}, {}});
      t.push_back({gpu ? lensD : lens.data(), DType::i32, {seqs}, {}});
      t.push_back({gpu ? oD : o.data(), DType::bf16, {seqs, hq, 1, headDim}, {}});
      return t;
    };
    std::vector<TensorView> tensors = views();
    auto since = [](std::chrono::steady_clock::time_point t) {
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
    };
    double best = 1e30;
    for (int r = 0; r <= runs; ++r) { // the first run warms up
      auto start = std::chrono::steady_clock::now();
      if (Status st = kernel->run(tensors, {}, threads); !st) {
        std::fprintf(stderr, "%s\n", st.error().c_str());
        return 1;
      }
      double ms = since(start);
      if (r)
        best = std::min(best, ms);
    }
    // A failed step ends the bench with its message.
    auto must = [](const std::string &error) {
      if (!error.empty()) {
        std::fprintf(stderr, "%s\n", error.c_str());
        std::exit(1);
      }
    };
    auto mustCuda = [&](bool ok) { must(ok ? "" : why); };
    auto appendOneToken = [&] {
      for (kv::SeqId id : ids)
        must(pool->append(id, k.data(), v.data(), 1));
    };
    // The serving step on the GPU: one new token per sequence.
    double bestStep = 1e30, bestHost = 1e30, bestSync = 1e30;
    for (int r = 0; gpu && r < runs; ++r) {
      auto start = std::chrono::steady_clock::now();
      appendOneToken();
      auto syncStart = std::chrono::steady_clock::now();
      must(dev->sync(*pool));
      bestSync = std::min(bestSync, since(syncStart));
      must(pool->batchTables(ids, table, lens, width));
      upload(tableD, table.data(), table.size() * 4);
      upload(lensD, lens.data(), lens.size() * 4);
      double host = since(start);
      tensors = views();
      if (Status st = kernel->run(tensors, {}, threads); !st)
        must(st.error());
      bestStep = std::min(bestStep, since(start));
      bestHost = std::min(bestHost, host);
    }
    // The same steps pipelined on one stream, after one warm-up step.
    double pipelined = 0;
    if (gpu) {
      void *stream = nullptr;
      cuda::StagedUploads tableUploads;
      mustCuda(cuda::streamCreate(&stream, why));
      auto step = [&] {
        appendOneToken();
        must(dev->syncAsync(*pool, stream));
        must(pool->batchTables(ids, table, lens, width));
        mustCuda(tableUploads.add(tableD, table.data(), table.size() * 4, why) &&
                 tableUploads.add(lensD, lens.data(), lens.size() * 4, why) &&
                 tableUploads.submit(stream, why));
        tensors = views();
        if (Status st = kernel->launch(tensors, {}, stream); !st)
          must(st.error());
      };
      step();
      mustCuda(cuda::streamSynchronize(stream, why));
      auto start = std::chrono::steady_clock::now();
      for (int r = 0; r < runs; ++r)
        step();
      mustCuda(cuda::streamSynchronize(stream, why));
      pipelined = since(start) / runs;
      cuda::streamDestroy(stream);
    }
    // The bytes a step must read: every token's K and V rows and scales.
    double bytes = static_cast<double>(seqs) * tokens * 2 * hkv *
                   (pool->rowBytes() + pool->scaleCount() * sizeof(float));
    double tokensPerS = seqs / (best / 1e3);
    if (quant == kv::Quant::bf16)
      bf16TokensPerS = tokensPerS;
    std::printf("%-5s %10.3f %12.1f %10.2f %14.0f %9.2fx", kv::quantName(quant), best,
                bytes / 1e6, bytes / (best / 1e3) / 1e9, tokensPerS, tokensPerS / bf16TokensPerS);
    if (gpu)
      std::printf("   %8.3f (%.3f, sync %.3f)   %8.3f", bestStep, bestHost, bestSync, pipelined);
    std::printf("\n");
    for (void *p : {qD, oD, tableD, lensD})
      if (p)
        cuda::free(p);
  }
  return 0;
}

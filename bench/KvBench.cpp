//===- KvBench.cpp - KV cache: memory per token, quantization, file speed -===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// For bf16, int8 and 4-bit pages at one model shape: bytes per token and the
// saving against bf16, the relative RMS error of the quantized values,
// append (quantize) speed, and save (to the page cache and fsync'd) and
// restore speed in GB/s of file: into a new pool (its pages mapped in as
// they are filled) and again into the same pool's freed pages; the best of
// --restores rounds each.
//
//   attnc-kv-bench [--layers 16] [--kv-heads 8] [--head-dim 128]
//                  [--tokens 4096] [--dir /tmp] [--restores 3]
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/KvCache.h"
#include "attnc/runtime/KvFile.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace attnc::kv;

namespace {
double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
} // namespace

int main(int argc, char **argv) {
  int layers = 16, heads = 8, dim = 128;
  long long tokens = 4096;
  std::string dir = "/tmp";
  int restores = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--layers") layers = std::atoi(argv[i + 1]);
    else if (a == "--kv-heads") heads = std::atoi(argv[i + 1]);
    else if (a == "--head-dim") dim = std::atoi(argv[i + 1]);
    else if (a == "--tokens") tokens = std::atoll(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
    else if (a == "--restores") restores = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  std::printf("# %d layers x %d KV heads x head dim %d, %lld tokens; group size 32\n", layers,
              heads, dim, tokens);
  std::printf("%-5s %12s %8s %10s %12s %12s %12s %12s %12s\n", "quant", "bytes/token",
              "vs bf16", "rms error", "append Ktok/s", "save GB/s", "fsync GB/s",
              "restore GB/s", "reused GB/s");
  double bf16Bytes = 0;
  // Values in chunks of 256 tokens, reused (the content does not matter to speed).
  const long long chunk = 256;
  size_t per = static_cast<size_t>(layers) * heads * dim;
  std::vector<float> k(per * chunk), v(per * chunk);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = normal(rng);
    v[i] = normal(rng);
  }
  for (Quant q : {Quant::bf16, Quant::q8, Quant::q4}) {
    PoolConfig c;
    c.layers = layers;
    c.kvHeads = heads;
    c.headDim = dim;
    c.pageTokens = 16;
    c.quant = q;
    c.groupSize = 32;
    Error e;
    auto pool = BlockPool::create(c, e);
    if (!pool) {
      std::fprintf(stderr, "%s\n", e.c_str());
      return 1;
    }
    SeqId s = pool->createSequence();
    auto t0 = std::chrono::steady_clock::now();
    for (long long done = 0; done < tokens; done += chunk)
      if (!(e = pool->append(s, k.data(), v.data(), std::min(chunk, tokens - done))).empty()) {
        std::fprintf(stderr, "%s\n", e.c_str());
        return 1;
      }
    double appendS = seconds(t0);
    // Error of the first chunk against its input.
    std::vector<float> k2(per * chunk), v2(per * chunk);
    long long first = std::min(chunk, tokens);
    pool->read(s, 0, first, k2.data(), v2.data());
    double num = 0, den = 0;
    for (size_t i = 0; i < per * static_cast<size_t>(first); ++i) {
      num += (k2[i] - k[i]) * (k2[i] - k[i]);
      den += k[i] * k[i];
    }
    double bytesPerToken = static_cast<double>(pool->pageBytes()) / c.pageTokens;
    if (q == Quant::bf16)
      bf16Bytes = bytesPerToken;
    std::string path = dir + "/attnc_kv_bench_" + std::to_string(::getpid()) + ".safetensors";
    // Save without the fsync's cost first (rename atomicity only), then with.
    ::setenv("ATTNC_KV_NO_FSYNC", "1", 1);
    t0 = std::chrono::steady_clock::now();
    e = saveSequence(*pool, s, path, "bench");
    double saveS = seconds(t0);
    ::unsetenv("ATTNC_KV_NO_FSYNC");
    t0 = std::chrono::steady_clock::now();
    if (e.empty())
      e = saveSequence(*pool, s, path, "bench");
    double fsyncS = seconds(t0);
    KvFileMeta meta;
    SeqId r = -1;
    double restoreS = 1e30, reusedS = 1e30;
    for (int round = 0; round < restores && e.empty(); ++round) {
      auto other = BlockPool::create(c, e);
      t0 = std::chrono::steady_clock::now();
      if (e.empty())
        e = restoreSequence(*other, path, r, meta);
      restoreS = std::min(restoreS, seconds(t0));
      if (!e.empty())
        break;
      // Into the pages the first restore mapped in: the file's read and
      // checksum without the new memory's cost.
      other->free(r);
      t0 = std::chrono::steady_clock::now();
      e = restoreSequence(*other, path, r, meta);
      reusedS = std::min(reusedS, seconds(t0));
    }
    std::remove(path.c_str());
    if (!e.empty()) {
      std::fprintf(stderr, "%s\n", e.c_str());
      return 1;
    }
    double gb = static_cast<double>(meta.fileBytes) / 1e9;
    std::printf("%-5s %12.0f %7.2fx %10.2e %12.2f %12.2f %12.2f %12.2f %12.2f\n",
                quantName(q), bytesPerToken, bf16Bytes / bytesPerToken, std::sqrt(num / den),
                tokens / appendS / 1e3, gb / saveS, gb / fsyncS, gb / restoreS, gb / reusedS);
  }
  return 0;
}

//===- KvFileFuzzer.cpp - libFuzzer entry point for KV cache files --------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// KV files are untrusted input. This writes arbitrary bytes to a file and
// hands it to readHeader, verifyFile and restoreSequence (into bf16, q8 and
// q4 pools of the seeds' shapes). Every one must answer with an Error or a
// sequence: a crash, a sanitizer report or a timeout is a bug, and so is a
// failed restore that leaves the pool changed, or a successful one whose
// sequence does not hold the file's tokens.
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/KvFile.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

using namespace attnc::kv;

static const std::string &scratchPath() {
  static std::string path = [] {
    char name[] = "/tmp/attnc-kv-fuzz-XXXXXX";
    int fd = mkstemp(name);
    if (fd < 0)
      std::abort();
    close(fd);
    return std::string(name);
  }();
  return path;
}

static void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "attnc-kv-fuzzer: %s\n", what);
    std::abort();
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string &path = scratchPath();
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    std::abort();
  if (size)
    std::fwrite(data, 1, size, f);
  std::fclose(f);

  KvFileMeta meta;
  (void)readHeader(path, meta);
  meta = KvFileMeta();
  (void)verifyFile(path, meta);

  // The seeds are 2 layers x 2 KV heads x head dim 32 with pages of 16:
  // pools of that shape get past the shape checks into the page reads.
  for (Quant quant : {Quant::bf16, Quant::q8, Quant::q4}) {
    PoolConfig config;
    config.layers = 2;
    config.kvHeads = 2;
    config.headDim = 32;
    config.pageTokens = 16;
    config.quant = quant;
    config.groupSize = 16;
    config.maxPages = 256;
    Error error;
    auto pool = BlockPool::create(config, error);
    check(pool != nullptr, "the pool for the seeds' shape was refused");
    SeqId seq = -1;
    meta = KvFileMeta();
    Error restored = restoreSequence(*pool, path, seq, meta);
    if (!restored.empty()) {
      check(pool->pagesInUse() == 0, "a failed restore left pages in the pool");
      continue;
    }
    check(pool->hasSequence(seq), "a restore succeeded without a sequence");
    check(pool->length(seq) == meta.tokens, "a restored sequence has another length");
    pool->free(seq);
    check(pool->pagesInUse() == 0, "freeing a restored sequence left pages in use");
  }
  return 0;
}

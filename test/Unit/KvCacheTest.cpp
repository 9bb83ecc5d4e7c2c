//===- KvCacheTest.cpp - The paged KV cache and its files -----------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/KvCache.h"
#include "attnc/runtime/KvFile.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <glob.h>
#include <limits>
#include <random>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace attnc::kv;

namespace {
PoolConfig config(Quant q, int pageTokens = 4, size_t budget = 0) {
  PoolConfig c;
  c.layers = 2;
  c.kvHeads = 3;
  c.headDim = 64;
  c.pageTokens = pageTokens;
  c.quant = q;
  c.groupSize = 16;
  c.byteBudget = budget;
  return c;
}

std::unique_ptr<BlockPool> makePool(const PoolConfig &c) {
  Error e;
  auto pool = BlockPool::create(c, e);
  EXPECT_TRUE(pool) << e;
  return pool;
}

/// Random K and V for `tokens` tokens in append's layout.
struct Tokens {
  std::vector<float> k, v;
  Tokens(const PoolConfig &c, int64_t tokens, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    size_t n = static_cast<size_t>(c.layers) * c.kvHeads * tokens * c.headDim;
    k.resize(n);
    v.resize(n);
    for (size_t i = 0; i < n; ++i) {
      k[i] = normal(rng);
      v[i] = normal(rng);
    }
  }
};

std::vector<float> readAllK(const BlockPool &pool, SeqId seq) {
  const PoolConfig &c = pool.config();
  int64_t n = pool.length(seq);
  std::vector<float> k(static_cast<size_t>(c.layers) * c.kvHeads * n * c.headDim),
      v(k.size());
  EXPECT_EQ(pool.read(seq, 0, n, k.data(), v.data()), "");
  k.insert(k.end(), v.begin(), v.end());
  return k;
}

std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string tempPath(const char *name) {
  return ::testing::TempDir() + "/attnc_kv_" + std::to_string(::getpid()) + "_" + name;
}
} // namespace

TEST(KvCacheTest, RejectsBadConfigs) {
  Error e;
  PoolConfig c = config(Quant::q8);
  c.groupSize = 24; // does not divide 64
  EXPECT_FALSE(BlockPool::create(c, e));
  EXPECT_NE(e.find("must divide the head dim"), std::string::npos) << e;
  c = config(Quant::q4);
  c.groupSize = 1;
  EXPECT_FALSE(BlockPool::create(c, e));
  EXPECT_NE(e.find("even"), std::string::npos) << e;
  c = config(Quant::bf16, 4, 100);
  EXPECT_FALSE(BlockPool::create(c, e));
  EXPECT_NE(e.find("smaller than one page"), std::string::npos) << e;
  c = config(Quant::bf16);
  c.kvHeads = 0;
  EXPECT_FALSE(BlockPool::create(c, e));
  // Every size in range, their product not: 2^64 bytes per page wrapped to 0
  // and divided by zero; now an error.
  c = config(Quant::bf16);
  c.layers = 16384;
  c.kvHeads = 65536;
  c.headDim = 65536;
  c.pageTokens = 65536;
  EXPECT_FALSE(BlockPool::create(c, e));
  EXPECT_NE(e.find("more than 1 TiB"), std::string::npos) << e;
  c.layers = 4096; // 2^62 bytes: no wrap, still too large
  EXPECT_FALSE(BlockPool::create(c, e));
  EXPECT_NE(e.find("more than 1 TiB"), std::string::npos) << e;
}

TEST(KvCacheTest, QuantizationErrorBounds) {
  for (Quant q : {Quant::bf16, Quant::q8, Quant::q4}) {
    PoolConfig c = config(q);
    auto pool = makePool(c);
    Tokens t(c, 10, 7);
    SeqId s = pool->createSequence();
    ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 10), "");
    std::vector<float> k(t.k.size()), v(t.v.size());
    ASSERT_EQ(pool->read(s, 0, 10, k.data(), v.data()), "");
    // Per group: |x - x'| <= scale / 2 with scale = max|x| / levels (q8:
    // 127, q4: 7) rounded up to bf16 (at most 2^-7 more); bf16 rounds to 8
    // significant bits.
    int levels = q == Quant::q8 ? 127 : 7;
    if (q != Quant::bf16) {
      // The stored scales are bf16 values (the GPU kernels' dequantizing
      // then rounds once).
      for (int which = 0; which < 2; ++which) {
        attnc::TensorView sv = pool->scaleView(0, which);
        const uint32_t *bits = static_cast<const uint32_t *>(sv.data);
        int nonZero = 0;
        for (int64_t n = 0; n < c.kvHeads * c.pageTokens * (c.headDim / c.groupSize); ++n) {
          ASSERT_EQ(bits[n] & 0xffffu, 0u) << quantName(q) << " scale " << n;
          nonZero += bits[n] != 0;
        }
        ASSERT_GT(nonZero, 0) << "page 0 holds the sequence's first tokens";
      }
    }
    for (size_t g = 0; g < k.size(); g += c.groupSize) {
      float maxAbs = 0;
      for (int d = 0; d < c.groupSize; ++d)
        maxAbs = std::max(maxAbs, std::fabs(t.k[g + d]));
      for (int d = 0; d < c.groupSize; ++d) {
        float err = std::fabs(k[g + d] - t.k[g + d]);
        float bound = q == Quant::bf16 ? std::fabs(t.k[g + d]) * 0x1p-8f
                                       : maxAbs / levels * 0.5f * (1.0f + 0x1p-7f);
        ASSERT_LE(err, bound) << quantName(q) << " element " << g + d;
      }
    }
  }
}

// The scale rounded up to the next value bf16 holds exactly.
static float bf16Ceil(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if (bits & 0xffffu)
    bits = (bits | 0xffffu) + 1;
  std::memcpy(&x, &bits, 4);
  return x;
}

// The quantizer's rounding and edge cases, element by element, against a
// plain statement of the rule: scale = max finite |x| / levels rounded up to
// bf16 (1 when that is 0), q = round-half-even(clamp(x / scale)), non-finite
// x as 0.
TEST(KvCacheTest, QuantizesHalvesToEvenAndNonFiniteToZero) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (Quant q : {Quant::q8, Quant::q4}) {
    PoolConfig c = config(q);
    c.layers = 1;
    c.kvHeads = 1;
    const float levels = q == Quant::q8 ? 127.0f : 7.0f;
    // Four groups of 16: ties at scale 1; non-finite values beside finite
    // ones; all zero (and -0); tiny and huge magnitudes.
    std::vector<float> x(64, 0.0f);
    const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -3.5f};
    for (int d = 0; d < 8; ++d)
      x[d] = ties[d];
    x[8] = levels; // the group's max: scale 1
    x[9] = -6.49f;
    x[16] = nan;
    x[17] = inf;
    x[18] = -inf;
    x[19] = 3.0f;
    x[20] = -1.0f;
    x[32] = -0.0f;
    x[48] = 1e-40f; // subnormal
    x[49] = -3e38f;
    x[50] = 1e38f;
    std::vector<float> expected(64);
    for (int g = 0; g < 4; ++g) {
      float maxAbs = 0;
      for (int d = 0; d < 16; ++d)
        if (std::isfinite(x[g * 16 + d]))
          maxAbs = std::max(maxAbs, std::fabs(x[g * 16 + d]));
      float scale = maxAbs > 0 ? bf16Ceil(maxAbs / levels) : 1.0f, inv = 1.0f / scale;
      for (int d = 0; d < 16; ++d) {
        float v = x[g * 16 + d] * inv;
        v = std::isfinite(v) ? std::min(std::max(v, -levels), levels) : 0.0f;
        expected[g * 16 + d] = std::nearbyint(v) * scale;
      }
    }
    auto pool = makePool(c);
    SeqId s = pool->createSequence();
    ASSERT_EQ(pool->append(s, x.data(), x.data(), 1), "");
    std::vector<float> k(64), v(64);
    ASSERT_EQ(pool->read(s, 0, 1, k.data(), v.data()), "");
    for (int d = 0; d < 64; ++d) {
      EXPECT_EQ(k[d], expected[d]) << quantName(q) << " element " << d << " of " << x[d];
      EXPECT_EQ(v[d], expected[d]) << quantName(q) << " element " << d << " of " << x[d];
    }
    // The ties went to even.
    EXPECT_EQ(k[0], 0.0f);
    EXPECT_EQ(k[1], 2.0f);
    EXPECT_EQ(k[2], 2.0f);
    EXPECT_EQ(k[5], -2.0f);
  }
}

TEST(KvCacheTest, FourBitPagesAreSmaller) {
  PoolConfig c = config(Quant::bf16);
  c.headDim = 128;
  c.groupSize = 32;
  auto bf16 = makePool(c);
  c.quant = Quant::q4;
  auto q4 = makePool(c);
  c.quant = Quant::q8;
  auto q8 = makePool(c);
  // bf16: 256 bytes a row; q4: 64 bytes plus 4 f32 scales; q8: 128 + 16.
  EXPECT_EQ(bf16->pageBytes() * 80, q4->pageBytes() * 256);
  EXPECT_EQ(bf16->pageBytes() * 144, q8->pageBytes() * 256);
}

TEST(KvCacheTest, ForkSharesPagesAndCopiesOnWrite) {
  PoolConfig c = config(Quant::q8);
  auto pool = makePool(c);
  Tokens a(c, 6, 1), b(c, 3, 2);
  SeqId parent = pool->createSequence();
  ASSERT_EQ(pool->append(parent, a.k.data(), a.v.data(), 6), "");
  EXPECT_EQ(pool->pagesInUse(), 2u); // 4 + 2 tokens
  std::vector<float> before = readAllK(*pool, parent);
  SeqId child = pool->fork(parent);
  EXPECT_EQ(pool->pagesInUse(), 2u); // shared
  EXPECT_EQ(pool->blockTable(child), pool->blockTable(parent));
  ASSERT_EQ(pool->append(child, b.k.data(), b.v.data(), 3), "");
  // The shared, partly filled last page was copied; the full one is shared.
  EXPECT_EQ(pool->blockTable(child)[0], pool->blockTable(parent)[0]);
  EXPECT_NE(pool->blockTable(child)[1], pool->blockTable(parent)[1]);
  EXPECT_EQ(pool->pagesInUse(), 4u);
  EXPECT_EQ(readAllK(*pool, parent), before);
  EXPECT_EQ(pool->length(child), 9);
  pool->free(parent);
  EXPECT_EQ(pool->pagesInUse(), 3u);
  ASSERT_EQ(pool->truncate(child, 4), "");
  EXPECT_EQ(pool->pagesInUse(), 1u);
  EXPECT_NE(pool->truncate(child, 5), "");
  pool->free(child);
  EXPECT_EQ(pool->pagesInUse(), 0u);
}

TEST(KvCacheTest, BudgetFailsCleanlyAndEvictsCachedPrefixes) {
  PoolConfig c = config(Quant::bf16);
  auto probe = makePool(c);
  c.byteBudget = 3 * probe->pageBytes();
  auto pool = makePool(c);
  Tokens t(c, 16, 3);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 8), ""); // 2 pages
  Error e = pool->append(s, t.k.data(), t.v.data(), 8);      // needs 2 more
  EXPECT_NE(e.find("the KV pool is full"), std::string::npos) << e;
  EXPECT_EQ(pool->length(s), 8); // unchanged
  EXPECT_EQ(pool->pagesInUse(), 2u);
  // Cache the prefix, drop the sequence: the index keeps the pages until
  // room is needed, then gives the least recently used one up.
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(pool->cachePrefix(s, ids), "");
  pool->free(s);
  EXPECT_EQ(pool->pagesInUse(), 2u);
  SeqId other = pool->createSequence();
  ASSERT_EQ(pool->append(other, t.k.data(), t.v.data(), 8), ""); // evicts one cached page
  EXPECT_EQ(pool->pagesInUse(), 3u);
  int64_t matched = -1;
  SeqId again = pool->adoptPrefix(ids, matched);
  EXPECT_EQ(matched, 4); // the second page of the prefix was evicted (a leaf)
  pool->free(again);
  pool->free(other);
  pool->evictTo(0);
  EXPECT_EQ(pool->pagesInUse(), 0u);
}

TEST(KvCacheTest, AFailedAppendEvictsNoCachedPrefix) {
  // An append that cannot fit even with every cached page evicted fails
  // before it takes or evicts anything: the cached prefix stays whole.
  PoolConfig c = config(Quant::q8);
  auto probe = makePool(c);
  c.byteBudget = 4 * probe->pageBytes();
  auto pool = makePool(c);
  Tokens t(c, 20, 4);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 8), ""); // 2 pages
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(pool->cachePrefix(s, ids), "");
  pool->free(s);
  SeqId big = pool->createSequence();
  Error e = pool->append(big, t.k.data(), t.v.data(), 20); // 5 pages of 4
  EXPECT_NE(e.find("the KV pool is full"), std::string::npos) << e;
  EXPECT_EQ(pool->length(big), 0);
  EXPECT_EQ(pool->pagesInUse(), 2u);
  int64_t matched = -1;
  SeqId cached = pool->adoptPrefix(ids, matched);
  EXPECT_EQ(matched, 8);
  pool->free(cached);
  // One that fits once the cached pages go still evicts them.
  ASSERT_EQ(pool->append(big, t.k.data(), t.v.data(), 16), ""); // 4 pages
  SeqId none = pool->adoptPrefix(ids, matched);
  EXPECT_EQ(matched, 0);
  pool->free(none);
  pool->free(big);
}

TEST(KvCacheTest, MaxPagesFailsCleanlyAndKeepsCachedPrefixes) {
  // Without a budget, maxPages bounds the pool and nothing is evicted to
  // stay under it: an append past it fails whole, the prefix stays cached.
  PoolConfig c = config(Quant::bf16);
  c.maxPages = 3;
  auto pool = makePool(c);
  Tokens t(c, 12, 6);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 8), ""); // 2 pages
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(pool->cachePrefix(s, ids), "");
  pool->free(s);
  SeqId other = pool->createSequence();
  Error e = pool->append(other, t.k.data(), t.v.data(), 8); // 2 more: 4 > 3
  EXPECT_NE(e.find("maxPages = 3"), std::string::npos) << e;
  EXPECT_EQ(pool->length(other), 0);
  EXPECT_EQ(pool->pagesInUse(), 2u);
  ASSERT_EQ(pool->append(other, t.k.data(), t.v.data(), 4), ""); // 1 fits
  int64_t matched = -1;
  SeqId cached = pool->adoptPrefix(ids, matched);
  EXPECT_EQ(matched, 8);
  pool->free(cached);
  pool->free(other);
}

TEST(KvCacheTest, PrefixIndexFindsTheLongestCachedPrefix) {
  PoolConfig c = config(Quant::q4);
  auto pool = makePool(c);
  Tokens t(c, 10, 4);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 10), "");
  std::vector<int32_t> ids = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
  ASSERT_EQ(pool->cachePrefix(s, ids), "");
  int64_t matched = 0;
  std::vector<int32_t> query = {9, 8, 7, 6, 5, 4, 3, 2, 42, 42, 42};
  SeqId hit = pool->adoptPrefix(query, matched);
  EXPECT_EQ(matched, 8); // two whole pages
  std::vector<float> k(static_cast<size_t>(c.layers) * c.kvHeads * 8 * c.headDim), v(k.size());
  std::vector<float> k2(k.size()), v2(k.size());
  ASSERT_EQ(pool->read(hit, 0, 8, k.data(), v.data()), "");
  ASSERT_EQ(pool->read(s, 0, 8, k2.data(), v2.data()), "");
  EXPECT_EQ(k, k2);
  SeqId miss = pool->adoptPrefix({1, 2, 3, 4}, matched);
  EXPECT_EQ(matched, 0);
  pool->free(miss);
  pool->free(hit);
  pool->free(s);
}

/// Page versions, which a GPU copy (DevicePages) uses to find the pages to
/// upload: a write to a page changes its version, reads, forks, saves and
/// prefix lookups do not, and the first write into a shared page changes
/// only the new private copy's.
TEST(KvCacheTest, PageVersionsChangeExactlyWithWrites) {
  PoolConfig c = config(Quant::q4);
  auto pool = makePool(c);
  auto versions = [&]() {
    std::vector<uint64_t> v;
    for (size_t p = 0; p < pool->pagesCreated(); ++p)
      v.push_back(pool->pageVersion(static_cast<PageId>(p)));
    return v;
  };
  Tokens t(c, 10, 9);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 6), ""); // pages 0 and 1 (2 of 4 rows)
  std::vector<PageId> table = pool->blockTable(s);
  ASSERT_EQ(table.size(), 2u);
  std::vector<uint64_t> before = versions();

  // Nothing that only reads changes a version.
  (void)readAllK(*pool, s);
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  ASSERT_EQ(pool->cachePrefix(s, ids), "");
  int64_t matched = 0;
  SeqId adopted = pool->adoptPrefix(ids, matched);
  EXPECT_EQ(matched, 4);
  pool->free(adopted);
  SeqId f = pool->fork(s);
  std::string path = tempPath("versions");
  ASSERT_EQ(saveSequence(*pool, s, path, "m", 0), "");
  std::remove(path.c_str());
  EXPECT_EQ(versions(), before);

  // Two more tokens fill the shared, partly filled page 1 of the fork: it is
  // copied to a new page, and only the copy changes.
  ASSERT_EQ(pool->append(f, t.k.data(), t.v.data(), 2), "");
  std::vector<PageId> forked = pool->blockTable(f);
  ASSERT_EQ(forked.size(), 2u);
  EXPECT_EQ(forked[0], table[0]);
  EXPECT_NE(forked[1], table[1]);
  std::vector<uint64_t> after = versions();
  EXPECT_EQ(after[table[0]], before[table[0]]);
  EXPECT_EQ(after[table[1]], before[table[1]]);
  EXPECT_GT(after[forked[1]], *std::max_element(before.begin(), before.end()));

  // An append to the original writes its own page 1 (not shared any more),
  // and nothing else.
  before = after;
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 1), "");
  after = versions();
  for (size_t p = 0; p < after.size(); ++p)
    if (static_cast<PageId>(p) == table[1])
      EXPECT_NE(after[p], before[p]);
    else
      EXPECT_EQ(after[p], before[p]) << "page " << p;
}

TEST(KvCacheTest, SaveAndRestoreAreExact) {
  // 200 tokens in pages of 3 make some 1,600 runs, several read batches.
  // Both ways of restoring: read once (the pool has room) and checked first.
  for (const char *checkFirst : {"0", "1"})
    for (int64_t tokens : {11, 200})
      for (Quant q : {Quant::bf16, Quant::q8, Quant::q4}) {
        ::setenv("ATTNC_KV_CHECK_FIRST", checkFirst, 1);
        PoolConfig c = config(q);
        auto pool = makePool(c);
        Tokens t(c, tokens, 5);
        SeqId s = pool->createSequence();
        ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), tokens), "");
        std::string path = tempPath((std::string("exact_") + quantName(q)).c_str());
        ASSERT_EQ(saveSequence(*pool, s, path, "model-\"x\"", 100), "");
        KvFileMeta meta;
        ASSERT_EQ(verifyFile(path, meta), "");
        EXPECT_EQ(meta.tokens, tokens);
        EXPECT_EQ(meta.positionOffset, 100);
        EXPECT_EQ(meta.modelId, "model-\"x\"");
        EXPECT_EQ(meta.quant, q);
        // Into a pool with another page size: rows move, values do not change.
        PoolConfig c2 = c;
        c2.pageTokens = 3;
        auto other = makePool(c2);
        SeqId r = -1;
        ASSERT_EQ(restoreSequence(*other, path, r, meta, "model-\"x\""), "");
        EXPECT_EQ(readAllK(*other, r), readAllK(*pool, s))
            << quantName(q) << " " << tokens << " check first " << checkFirst;
        ::unsetenv("ATTNC_KV_CHECK_FIRST");
        std::remove(path.c_str());
      }
}

TEST(KvCacheTest, ARestoreThatMustEvictChecksTheFileFirst) {
  // A pool full of a cached prefix: restoring needs its pages. A corrupted
  // file must be rejected before any of them is evicted; a whole one evicts
  // what it needs.
  PoolConfig c = config(Quant::q4);
  auto probe = makePool(c);
  c.byteBudget = 4 * probe->pageBytes();
  auto pool = makePool(c);
  Tokens t(c, 16, 8);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 16), ""); // 4 pages
  std::string path = tempPath("evict");
  ASSERT_EQ(saveSequence(*pool, s, path, "m"), "");
  std::vector<int32_t> ids(16);
  for (int i = 0; i < 16; ++i)
    ids[i] = 100 + i;
  ASSERT_EQ(pool->cachePrefix(s, ids), "");
  pool->free(s);
  EXPECT_EQ(pool->pagesFreeWithoutEviction(), 0u);
  std::string good = readBytes(path);
  std::string bad = good;
  bad[bad.size() - 5] ^= 0x10;
  std::string badPath = tempPath("evict_bad");
  writeBytes(badPath, bad);
  SeqId r = 7;
  KvFileMeta meta;
  Error e = restoreSequence(*pool, badPath, r, meta);
  EXPECT_NE(e.find("corrupted"), std::string::npos) << e;
  EXPECT_EQ(r, -1);
  int64_t matched = -1;
  SeqId cached = pool->adoptPrefix(ids, matched);
  EXPECT_EQ(matched, 16); // nothing was evicted
  pool->free(cached);
  ASSERT_EQ(restoreSequence(*pool, path, r, meta), "");
  EXPECT_EQ(pool->length(r), 16);
  pool->adoptPrefix(ids, matched);
  EXPECT_EQ(matched, 0); // evicted to make room
  std::remove(path.c_str());
  std::remove(badPath.c_str());
}

TEST(KvCacheTest, BadFilesAreRejectedAndLeaveThePoolAlone) {
  PoolConfig c = config(Quant::q8);
  auto pool = makePool(c);
  Tokens t(c, 9, 6);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 9), "");
  std::string path = tempPath("bad");
  ASSERT_EQ(saveSequence(*pool, s, path, "m"), "");
  std::string good = readBytes(path);
  auto tryRestore = [&](const std::string &bytes, const char *expect) {
    std::string p = tempPath("bad_variant");
    writeBytes(p, bytes);
    size_t pagesBefore = pool->pagesInUse();
    SeqId r = 7;
    KvFileMeta meta;
    Error e = restoreSequence(*pool, p, r, meta);
    EXPECT_NE(e.find(expect), std::string::npos) << "got: " << e;
    EXPECT_EQ(r, -1);
    EXPECT_EQ(pool->pagesInUse(), pagesBefore);
    std::remove(p.c_str());
  };
  tryRestore(good.substr(0, 5), "too short");
  tryRestore(good.substr(0, 40), "runs past the end");
  tryRestore(good.substr(0, good.size() - 1), "truncated");
  tryRestore(good + "x", "trailing bytes");
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x40;
  tryRestore(flipped, "corrupted");
  std::string version = good;
  size_t at = version.find("\"format_version\":\"1\"");
  ASSERT_NE(at, std::string::npos);
  version[at + 18] = '2';
  tryRestore(version, "format version 2");
  // Sizes whose product wraps 64 bits must not pass for a small file.
  std::string huge = good;
  size_t tok = huge.find("\"tokens\":\"9\"");
  ASSERT_NE(tok, std::string::npos);
  huge.replace(tok, 12, "\"tokens\":\"1099511627776\"");
  uint64_t hl = 0;
  for (int i = 7; i >= 0; --i)
    hl = (hl << 8) | static_cast<uint8_t>(good[i]);
  hl += 12; // the header grew by 12 bytes
  for (int i = 0; i < 8; ++i)
    huge[i] = static_cast<char>(hl >> (8 * i));
  tryRestore(huge, "more data than the file's");
  std::string notJson = good;
  notJson[9] = '[';
  tryRestore(notJson, "malformed header JSON");
  // Another shape of pool.
  PoolConfig c2 = c;
  c2.kvHeads = 4;
  auto other = makePool(c2);
  SeqId r;
  KvFileMeta meta;
  Error e = restoreSequence(*other, path, r, meta);
  EXPECT_NE(e.find("the pool holds"), std::string::npos) << e;
  EXPECT_EQ(other->pagesInUse(), 0u);
  e = restoreSequence(*pool, path, r, meta, "another-model");
  EXPECT_NE(e.find("not 'another-model'"), std::string::npos) << e;
  std::remove(path.c_str());
}

TEST(KvCacheTest, AKilledWriterLeavesThePreviousFile) {
  PoolConfig c = config(Quant::bf16);
  auto pool = makePool(c);
  Tokens t(c, 64, 8);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 32), "");
  std::string path = tempPath("killed");
  ASSERT_EQ(saveSequence(*pool, s, path, "m"), "");
  KvFileMeta before;
  ASSERT_EQ(verifyFile(path, before), "");
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 32), "");
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Dies after 10000 bytes of the new, longer file.
    ::setenv("ATTNC_KV_TEST_DIE_AFTER", "10000", 1);
    saveSequence(*pool, s, path, "m");
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 86); // it did die part way
  KvFileMeta after;
  ASSERT_EQ(verifyFile(path, after), "");
  EXPECT_EQ(after.tokens, 32);
  EXPECT_EQ(after.checksum, before.checksum);
  std::remove(path.c_str());
  // The child's temporary: path.tmp.<pid>.<its save number>.
  glob_t left;
  if (::glob((path + ".tmp." + std::to_string(child) + ".*").c_str(), 0,
             nullptr, &left) == 0) {
    EXPECT_EQ(left.gl_pathc, 1u);
    for (size_t n = 0; n < left.gl_pathc; ++n)
      std::remove(left.gl_pathv[n]);
  }
  ::globfree(&left);
}

TEST(KvCacheTest, ThreadsSavingToOnePathLeaveOneWholeFile) {
  // Each save writes a temporary of its own: two threads saving different
  // sequences to one path leave one of them, whole, never a mix.
  PoolConfig c = config(Quant::q8);
  auto pool = makePool(c);
  Tokens t(c, 64, 9);
  SeqId a = pool->createSequence(), b = pool->createSequence();
  ASSERT_EQ(pool->append(a, t.k.data(), t.v.data(), 24), "");
  ASSERT_EQ(pool->append(b, t.k.data(), t.v.data(), 40), "");
  std::string path = tempPath("threads");
  std::string errors[2];
  auto saver = [&](SeqId s, std::string &error) {
    for (int n = 0; n < 20 && error.empty(); ++n)
      error = saveSequence(*pool, s, path, "m");
  };
  std::thread ta(saver, a, std::ref(errors[0])),
      tb(saver, b, std::ref(errors[1]));
  ta.join();
  tb.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  KvFileMeta meta;
  ASSERT_EQ(verifyFile(path, meta), "");
  EXPECT_TRUE(meta.tokens == 24 || meta.tokens == 40) << meta.tokens;
  std::remove(path.c_str());
}

TEST(KvCacheTest, AFileChangedDuringARestoreLeavesThePoolAsItWas) {
  // A restore that checks first (one that must evict, or forced here)
  // checksums the data, then reads it again into the pages; a file changed
  // in place between the two reads (a test hook does it) is reported, and
  // the pages it took are given back.
  PoolConfig c = config(Quant::q4);
  auto pool = makePool(c);
  Tokens t(c, 40, 5);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 40), "");
  std::string path = tempPath("touched");
  ASSERT_EQ(saveSequence(*pool, s, path, "m"), "");
  size_t pagesBefore = pool->pagesInUse();
  ::setenv("ATTNC_KV_TEST_TOUCH_BETWEEN_READS", "1", 1);
  ::setenv("ATTNC_KV_CHECK_FIRST", "1", 1);
  SeqId r = 7;
  KvFileMeta meta;
  Error e = restoreSequence(*pool, path, r, meta);
  ::unsetenv("ATTNC_KV_TEST_TOUCH_BETWEEN_READS");
  ::unsetenv("ATTNC_KV_CHECK_FIRST");
  EXPECT_NE(e.find("changed while it was read"), std::string::npos) << e;
  EXPECT_EQ(r, -1);
  EXPECT_EQ(pool->pagesInUse(), pagesBefore);
  // The file is now corrupt for every later reader.
  KvFileMeta after;
  EXPECT_NE(verifyFile(path, after).find("corrupted"), std::string::npos);
  std::remove(path.c_str());
}

TEST(KvCacheTest, Crc32cKnownAnswer) {
  // The standard check value of CRC-32C, in one piece and in two.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Long inputs (three streams joined, on x86) against the byte-at-a-time
  // definition, at lengths around the 3 x 8192-byte blocks and in pieces.
  std::mt19937 rng(5);
  std::vector<uint8_t> data(3 * 3 * 8192 + 77);
  for (uint8_t &x : data)
    x = static_cast<uint8_t>(rng());
  auto reference = [&](size_t n) {
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; ++i) {
      c ^= data[i];
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
    }
    return ~c;
  };
  for (size_t n : {size_t(24575), size_t(24576), size_t(24577), size_t(49152 + 13), data.size()})
    EXPECT_EQ(crc32c(data.data(), n), reference(n)) << n;
  EXPECT_EQ(crc32c(data.data() + 30001, data.size() - 30001, crc32c(data.data(), 30001)),
            reference(data.size()));
}

TEST(KvCacheTest, SurvivesMutatedFiles) {
  // Files are untrusted: random bit flips, truncations and header edits
  // must give an error or (for flips the checksum cannot see, never in
  // practice) a restore, and never a crash or a changed pool on error.
  PoolConfig c = config(Quant::q4);
  auto pool = makePool(c);
  Tokens t(c, 7, 9);
  SeqId s = pool->createSequence();
  ASSERT_EQ(pool->append(s, t.k.data(), t.v.data(), 7), "");
  std::string path = tempPath("mutate");
  ASSERT_EQ(saveSequence(*pool, s, path, "m"), "");
  std::string good = readBytes(path);
  std::mt19937 rng(11);
  int rejected = 0;
  for (int round = 0; round < 600; ++round) {
    std::string bad = good;
    switch (round % 4) {
    case 0: // flip bits anywhere
      for (int n = 0; n < 1 + static_cast<int>(rng() % 4); ++n)
        bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
      break;
    case 1: // truncate
      bad.resize(rng() % bad.size());
      break;
    case 2: // overwrite header bytes with printable junk
      for (int n = 0; n < 1 + static_cast<int>(rng() % 6); ++n)
        bad[8 + rng() % std::min<size_t>(bad.size() - 8, 600)] = static_cast<char>(32 + rng() % 95);
      break;
    case 3: // a random header length
      for (int n = 0; n < 8; ++n)
        bad[n] = static_cast<char>(rng() % (n < 2 ? 256 : 2));
      break;
    }
    std::string p = tempPath("mutated");
    writeBytes(p, bad);
    size_t pagesBefore = pool->pagesInUse();
    SeqId r = -1;
    KvFileMeta meta;
    Error e = restoreSequence(*pool, p, r, meta);
    if (!e.empty()) {
      ++rejected;
      EXPECT_EQ(r, -1);
      EXPECT_EQ(pool->pagesInUse(), pagesBefore);
    } else {
      pool->free(r); // a mutation that left the file valid (header spaces)
    }
    std::remove(p.c_str());
  }
  EXPECT_GT(rejected, 500);
  std::remove(path.c_str());
}

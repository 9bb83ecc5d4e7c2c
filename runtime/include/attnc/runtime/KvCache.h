//===- KvCache.h - A paged, quantized, persistent KV cache ------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A pool of fixed-size pages, each holding `pageTokens` tokens of K and V for
// every layer and KV head, stored as bf16, int8 or 4-bit with one f32 scale
// per group of `groupSize` features. Sequences own block tables of page ids.
// Pages are reference counted: fork() shares a prefix and the first write to
// a shared page copies it. A radix index over token ids finds the longest
// cached prefix; under a byte budget, cached pages no sequence uses are
// evicted least recently used first. Sequences are saved to and restored
// from safetensors files (KvFile.h).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_KVCACHE_H
#define ATTNC_RUNTIME_KVCACHE_H

#include "attnc/runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace attnc {
namespace kv {

enum class Quant : uint8_t { bf16, q8, q4 };
const char *quantName(Quant q);
bool parseQuant(const std::string &name, Quant &out);

struct PoolConfig {
  int layers = 1, kvHeads = 1, headDim = 64;
  int pageTokens = 16;
  Quant quant = Quant::bf16;
  int groupSize = 32; // q8/q4: features per scale; must divide headDim
  /// Bytes the pages may take; 0 for no limit.
  size_t byteBudget = 0;
  /// Pages the pool can ever hold (address space reserved up front, so
  /// pages never move and kernels can read them through one base pointer);
  /// 0: byteBudget / page size, or 65536 pages without a budget.
  int64_t maxPages = 0;
};

/// Why a call failed; empty when it did not.
using Error = std::string;

using SeqId = int64_t;
using PageId = int32_t;

/// Chooses which cached page to drop when the pool is full. The pool calls
/// touched() when a page is used and victim() with the pages only the
/// prefix index holds.
class EvictionPolicy {
public:
  virtual ~EvictionPolicy() = default;
  virtual void touched(PageId page, uint64_t tick) = 0;
  virtual void released(PageId page) = 0;
  /// One of `candidates` (non-empty) to evict.
  virtual PageId victim(const std::vector<PageId> &candidates) = 0;
};
std::unique_ptr<EvictionPolicy> makeLruPolicy();

class BlockPool {
public:
  /// Checks `config` (sizes positive, group size dividing the head dim, an
  /// even group size for q4); `error` says what is wrong.
  static std::unique_ptr<BlockPool> create(const PoolConfig &config, Error &error,
                                           std::unique_ptr<EvictionPolicy> policy = nullptr);
  ~BlockPool();

  const PoolConfig &config() const { return cfg; }
  /// Bytes of one page (all layers, K and V, scales included).
  size_t pageBytes() const { return pageSize; }
  size_t pagesInUse() const { return used; }
  size_t bytesInUse() const { return pagesInUse() * pageSize; }

  SeqId createSequence();
  bool hasSequence(SeqId seq) const;
  int64_t length(SeqId seq) const;
  const std::vector<PageId> &blockTable(SeqId seq) const;

  /// Appends `tokens` tokens; k and v are f32 [layers][kvHeads][tokens][headDim].
  /// Quantizes on the way in. Fails (and changes nothing) when the budget
  /// cannot make room.
  Error append(SeqId seq, const float *k, const float *v, int64_t tokens);
  /// Reads tokens [begin, begin + count) back as f32, same layout as append.
  Error read(SeqId seq, int64_t begin, int64_t count, float *k, float *v) const;
  /// A new sequence sharing all of `seq`'s pages (copy on write).
  SeqId fork(SeqId seq);
  Error truncate(SeqId seq, int64_t length);
  void free(SeqId seq);

  /// Records `seq`'s full pages in the prefix index under `tokens` (its
  /// token ids, one per cached position); the index keeps the pages alive.
  Error cachePrefix(SeqId seq, const std::vector<int32_t> &tokens);
  /// A new sequence holding the longest cached prefix of `tokens` (whole
  /// pages); `matched` gets its length in tokens.
  SeqId adoptPrefix(const std::vector<int32_t> &tokens, int64_t &matched);
  /// Drops cached prefixes until at most `bytes` are in use, or none is left.
  void evictTo(size_t bytes);

  // Raw page access, for kernels and persistence. A page holds, per layer,
  // K then V: [kvHeads][pageTokens] rows of the quantized features, then
  // (q8/q4) the f32 scales [kvHeads][pageTokens][headDim / groupSize].
  uint8_t *pageData(PageId page);
  const uint8_t *pageData(PageId page) const;
  size_t rowBytes() const;   // one token's features for one head
  size_t scaleCount() const; // scales per row (0 for bf16)
  /// Byte offset in a page of the row (or, with `scales`, the row's scales)
  /// of K (which = 0) or V (1) for `head` and page slot `slot`. The rows of
  /// one (layer, which, head) are consecutive in slot order.
  size_t rowOffset(int layer, int which, int head, int slot, bool scales = false) const;
  /// Layer `layer`'s keys (which = 0) or values (1) in every page, as the
  /// paged kernels take them: [pages, kvHeads, pageTokens, headDim] of
  /// bf16, q8 or q4, with the pool's page stride. Pages allocated later are
  /// not in the view: take views after appending.
  TensorView kvView(int layer, int which) const;
  /// The f32 scales that go with kvView (q8 and q4 only):
  /// [pages, kvHeads, pageTokens, headDim / groupSize].
  TensorView scaleView(int layer, int which) const;
  /// The block tables and lengths of `seqs` as the paged kernels take
  /// them: table i32 [seqs, width] (rows padded with page 0), lens i32
  /// [seqs]. `width` is the longest table.
  Error batchTables(const std::vector<SeqId> &seqs, std::vector<int32_t> &table,
                    std::vector<int32_t> &lens, int64_t &width) const;
  /// Adds a sequence made of `pages` fresh pages (for restore); none on
  /// failure.
  SeqId createWithPages(int64_t tokens, std::vector<PageId> &pages, Error &error);
  /// Pages that can be allocated without evicting a cached prefix.
  size_t pagesFreeWithoutEviction() const;

  /// Unique to this pool among every pool the process has made, so that a
  /// copy keyed to it (DevicePages) cannot mistake another pool, even one
  /// at the same address, for it.
  uint64_t uniqueId() const { return id; }
  /// Pages created so far (in use, free or cached): ids are below this.
  size_t pagesCreated() const { return pageCount; }
  bool pageInUse(PageId page) const { return refs[page] > 0; }
  /// Changes whenever the page's bytes may have changed (append, copy on
  /// write, the non-const pageData()), so that a copy elsewhere (a GPU
  /// mirror, DevicePages.h) knows which pages to bring up to date. The
  /// non-const pageData() counts as the write when it is called: write
  /// through its pointer before the next copy is brought up to date, and
  /// call it again for later writes.
  uint64_t pageVersion(PageId page) const { return versions[page]; }

private:
  BlockPool(const PoolConfig &config, std::unique_ptr<EvictionPolicy> policy);
  struct Seq {
    std::vector<PageId> pages;
    int64_t length = 0;
  };
  struct RadixNode;
  PageId allocatePage(Error &error);
  /// "" when `pages` more pages can be allocated (free ones, new ones
  /// within the budget and capacity, cached ones the index alone holds),
  /// else allocatePage's error; evicts nothing, so a request that cannot
  /// succeed fails before it changes the pool.
  Error canAllocate(size_t pages) const;
  void release(PageId page);
  /// Maps the arena in up to byte `end` (and on to a 2 MiB boundary) before
  /// fresh pages there are written.
  void populateThrough(size_t end);
  template <typename Fn>
  void forEachRow(const std::vector<PageId> &table, int64_t begin, int64_t count, Fn fn) const;
  void quantizeRow(const float *x, uint8_t *row, float *scales) const;
  void dequantizeRow(const uint8_t *row, const float *scales, float *x) const;
  void dropIndexed(RadixNode *node);

  PoolConfig cfg;
  size_t pageSize = 0;
  /// Every page in one reserved mapping; the first `pageCount` are in use
  /// or on the free list.
  uint8_t *arena = nullptr;
  size_t arenaBytes = 0;
  /// Bytes of the arena mapped in ahead by populateThrough (all of it once
  /// the kernel has refused, so that it is not asked again).
  size_t populated = 0;
  size_t capacity = 0, pageCount = 0;
  std::vector<int32_t> refs; // 0: free
  std::vector<uint64_t> versions;
  uint64_t writeClock = 0;
  uint64_t id = 0;
  void wrote(PageId page) { versions[page] = ++writeClock; }
  size_t used = 0;           // pages with refs > 0
  std::vector<PageId> freeList;
  std::map<SeqId, Seq> seqs;
  SeqId nextSeq = 1;
  uint64_t tick = 0;
  std::unique_ptr<EvictionPolicy> policy;
  std::unique_ptr<RadixNode> root;
};

} // namespace kv
} // namespace attnc

#endif // ATTNC_RUNTIME_KVCACHE_H

//===- KvCache.cpp - A paged, quantized, persistent KV cache --------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/KvCache.h"
#include "attnc/runtime/Tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

using namespace attnc;
using namespace attnc::kv;

const char *kv::quantName(Quant q) {
  switch (q) {
  case Quant::bf16: return "bf16";
  case Quant::q8: return "q8";
  case Quant::q4: return "q4";
  }
  return "?";
}

bool kv::parseQuant(const std::string &name, Quant &out) {
  if (name == "bf16") out = Quant::bf16;
  else if (name == "q8") out = Quant::q8;
  else if (name == "q4") out = Quant::q4;
  else return false;
  return true;
}

namespace {
class LruPolicy : public EvictionPolicy {
public:
  void touched(PageId page, uint64_t tick) override {
    if (static_cast<size_t>(page) >= last.size())
      last.resize(page + 1, 0);
    last[page] = tick;
  }
  void released(PageId page) override {
    if (static_cast<size_t>(page) < last.size())
      last[page] = 0;
  }
  PageId victim(const std::vector<PageId> &candidates) override {
    PageId best = candidates.front();
    for (PageId p : candidates)
      if (at(p) < at(best))
        best = p;
    return best;
  }

private:
  uint64_t at(PageId p) const { return static_cast<size_t>(p) < last.size() ? last[p] : 0; }
  std::vector<uint64_t> last;
};
} // namespace

std::unique_ptr<EvictionPolicy> kv::makeLruPolicy() { return std::make_unique<LruPolicy>(); }

/// One page's worth of token ids below its parent; holds a reference to the
/// page with those tokens' K and V.
struct BlockPool::RadixNode {
  std::vector<int32_t> tokens;
  PageId page = -1;
  RadixNode *parent = nullptr;
  std::map<std::vector<int32_t>, std::unique_ptr<RadixNode>> children;
};

BlockPool::BlockPool(const PoolConfig &config, std::unique_ptr<EvictionPolicy> policy)
    : cfg(config), policy(policy ? std::move(policy) : makeLruPolicy()),
      root(std::make_unique<RadixNode>()) {
  static std::atomic<uint64_t> pools{0};
  id = ++pools;
  size_t perLayer = 2 * static_cast<size_t>(cfg.kvHeads) * cfg.pageTokens *
                    (rowBytes() + scaleCount() * sizeof(float));
  pageSize = perLayer * cfg.layers;
}

BlockPool::~BlockPool() {
  if (arena)
    munmap(arena, arenaBytes);
}

std::unique_ptr<BlockPool> BlockPool::create(const PoolConfig &c, Error &error,
                                             std::unique_ptr<EvictionPolicy> policy) {
  constexpr int kMax = 1 << 16;
  if (c.layers < 1 || c.kvHeads < 1 || c.headDim < 1 || c.pageTokens < 1 || c.layers > kMax ||
      c.kvHeads > kMax || c.headDim > kMax || c.pageTokens > kMax) {
    error = "layers, KV heads, head dim and page size must be between 1 and 65536";
    return nullptr;
  }
  if (c.quant != Quant::bf16) {
    if (c.groupSize < 1 || c.headDim % c.groupSize) {
      error = "the group size (" + std::to_string(c.groupSize) + ") must divide the head dim (" +
              std::to_string(c.headDim) + ")";
      return nullptr;
    }
    if (c.quant == Quant::q4 && c.groupSize % 2) {
      error = "4-bit groups pack two features per byte: the group size must be even";
      return nullptr;
    }
  }
  auto pool = std::unique_ptr<BlockPool>(new BlockPool(c, std::move(policy)));
  // Each size fits, but their product may not (2^64 wraps to 0): a page
  // may span at most the 1 TiB of address space a pool reserves.
  constexpr unsigned __int128 kMaxPageBytes = static_cast<unsigned __int128>(1) << 40;
  unsigned __int128 pageBytes = static_cast<unsigned __int128>(2) * c.kvHeads * c.pageTokens *
                                (pool->rowBytes() + pool->scaleCount() * sizeof(float)) *
                                c.layers;
  if (pageBytes > kMaxPageBytes) {
    error = "one page would take " +
            std::to_string(static_cast<unsigned long long>(pageBytes >> 30)) +
            " GiB (layers x KV heads x page tokens x head dim), more than 1 TiB";
    return nullptr;
  }
  // The f32 scales follow the codes of a layer: keep them 4-byte aligned.
  if (c.quant != Quant::bf16 && (2 * static_cast<size_t>(c.kvHeads) * c.pageTokens *
                                 pool->rowBytes()) % 4) {
    error = "q8 and q4 pools need 2 x KV heads x page tokens x row bytes to be a multiple of 4, "
            "so that the f32 scales stay aligned";
    return nullptr;
  }
  if (c.byteBudget && c.byteBudget < pool->pageSize) {
    error = "the byte budget (" + std::to_string(c.byteBudget) + ") is smaller than one page (" +
            std::to_string(pool->pageSize) + " bytes)";
    return nullptr;
  }
  // Reserve address space for every page the pool may hold; the kernel
  // hands out zeroed memory as pages are first touched.
  // Without maxPages: what the budget allows, or 65536 pages, within 1 TiB.
  size_t limit = std::max<size_t>(1, (size_t(1) << 40) / pool->pageSize);
  size_t cap = c.maxPages > 0 ? static_cast<size_t>(c.maxPages)
               : std::min(limit, c.byteBudget ? c.byteBudget / pool->pageSize : size_t(1) << 16);
  if (c.maxPages < 0 || cap > limit) {
    error = "the pool may hold at most 1 TiB of pages; lower maxPages (" + std::to_string(cap) +
            " pages of " + std::to_string(pool->pageSize) + " bytes)";
    return nullptr;
  }
  pool->capacity = cap;
  pool->arenaBytes = cap * pool->pageSize;
  void *mem = mmap(nullptr, pool->arenaBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    error = "cannot reserve " + std::to_string(pool->arenaBytes) +
            " bytes of address space for the KV pool: " + std::strerror(errno);
    return nullptr;
  }
  pool->arena = static_cast<uint8_t *>(mem);
  return pool;
}

size_t BlockPool::rowBytes() const {
  switch (cfg.quant) {
  case Quant::bf16: return 2 * static_cast<size_t>(cfg.headDim);
  case Quant::q8: return static_cast<size_t>(cfg.headDim);
  case Quant::q4: return static_cast<size_t>(cfg.headDim) / 2;
  }
  return 0;
}

size_t BlockPool::scaleCount() const {
  return cfg.quant == Quant::bf16 ? 0 : static_cast<size_t>(cfg.headDim / cfg.groupSize);
}


size_t BlockPool::rowOffset(int layer, int which, int head, int slot, bool scales) const {
  size_t perLayer = pageSize / cfg.layers;
  size_t rows = 2 * static_cast<size_t>(cfg.kvHeads) * cfg.pageTokens;
  size_t row = (static_cast<size_t>(which) * cfg.kvHeads + head) * cfg.pageTokens + slot;
  return layer * perLayer + (scales ? rows * rowBytes() + row * scaleCount() * sizeof(float)
                                    : row * rowBytes());
}

uint8_t *BlockPool::pageData(PageId page) {
  if (page >= 0 && static_cast<size_t>(page) < versions.size())
    wrote(page); // the caller may write through it (restore does)
  return arena + static_cast<size_t>(page) * pageSize;
}
const uint8_t *BlockPool::pageData(PageId page) const {
  return arena + static_cast<size_t>(page) * pageSize;
}

TensorView BlockPool::kvView(int layer, int which) const {
  TensorView t;
  t.dtype = cfg.quant == Quant::bf16 ? DType::bf16 : cfg.quant == Quant::q8 ? DType::q8 : DType::q4;
  t.data = arena + rowOffset(layer, which, 0, 0);
  t.shape = {static_cast<int64_t>(pageCount), cfg.kvHeads, cfg.pageTokens, cfg.headDim};
  // Strides count elements: bytes / 2 for bf16, bytes * 2 for q4 nibbles.
  int64_t page = static_cast<int64_t>(pageSize);
  int64_t pageStride = cfg.quant == Quant::bf16 ? page / 2 : cfg.quant == Quant::q8 ? page : 2 * page;
  t.strides = {pageStride, static_cast<int64_t>(cfg.pageTokens) * cfg.headDim, cfg.headDim, 1};
  return t;
}

TensorView BlockPool::scaleView(int layer, int which) const {
  TensorView t;
  t.dtype = DType::f32;
  int64_t groups = static_cast<int64_t>(scaleCount());
  t.data = arena + rowOffset(layer, which, 0, 0, /*scales=*/true);
  t.shape = {static_cast<int64_t>(pageCount), cfg.kvHeads, cfg.pageTokens, groups};
  t.strides = {static_cast<int64_t>(pageSize / sizeof(float)),
               static_cast<int64_t>(cfg.pageTokens) * groups, groups, 1};
  return t;
}

Error BlockPool::batchTables(const std::vector<SeqId> &ids, std::vector<int32_t> &table,
                             std::vector<int32_t> &lens, int64_t &width) const {
  width = 1;
  for (SeqId id : ids) {
    auto it = seqs.find(id);
    if (it == seqs.end())
      return "no sequence " + std::to_string(id);
    if (it->second.length > INT32_MAX)
      return "sequence " + std::to_string(id) + " is too long for an i32 length";
    width = std::max<int64_t>(width, static_cast<int64_t>(it->second.pages.size()));
  }
  table.assign(ids.size() * static_cast<size_t>(width), 0);
  lens.assign(ids.size(), 0);
  for (size_t n = 0; n < ids.size(); ++n) {
    const Seq &s = seqs.at(ids[n]);
    std::copy(s.pages.begin(), s.pages.end(), table.begin() + n * width);
    lens[n] = static_cast<int32_t>(s.length);
  }
  return {};
}

namespace {
/// Round to nearest even bf16; NaN stays NaN. Inline so loops vectorize.
inline uint16_t toBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint32_t rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
  bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
  return static_cast<uint16_t>(nan ? (bits >> 16) | 0x40 : rounded);
}
/// The least float at or above positive `x` that bf16 holds exactly. Scales
/// stored so dequantize on the GPU with one rounding (the code times the
/// scale, in bf16), not two (the scale to bf16 first): a third less error.
inline float roundUpToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0xffffu) & 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}
/// x rounded to the nearest integer, ties to even, for |x| <= 2^22: adding
/// and subtracting 1.5 * 2^23 leaves no fraction bits. The same result as
/// std::nearbyint in the default rounding mode, without its libm call on
/// x86-64 before SSE4.1, so the quantizing loops vectorize.
inline float roundHalfEven(float x) {
  constexpr float kMagic = 12582912.0f;
  return (x + kMagic) - kMagic;
}
/// x if finite, else 0 (non-finite inputs quantize as 0).
inline float finiteOrZero(float x) {
  return std::fabs(x) <= std::numeric_limits<float>::max() ? x : 0.0f;
}
inline float fromBf16(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
} // namespace

// Quantization is symmetric per group: scale = max|x| / levels rounded up
// to a bf16 value, q = round(x / scale) in [-levels, levels]; non-finite
// inputs count as 0. The loops are plain enough for the compiler to
// vectorize.
void BlockPool::quantizeRow(const float *x, uint8_t *row, float *scales) const {
  const int dim = cfg.headDim;
  if (cfg.quant == Quant::bf16) {
    uint16_t tmp[1024];
    for (int base = 0; base < dim; base += 1024) {
      int n = std::min(1024, dim - base);
      for (int d = 0; d < n; ++d)
        tmp[d] = toBf16(x[base + d]);
      std::memcpy(row + 2 * base, tmp, 2 * static_cast<size_t>(n));
    }
    return;
  }
  const int levels = cfg.quant == Quant::q8 ? 127 : 7;
  const int group = cfg.groupSize;
  for (int g = 0; g < dim / group; ++g) {
    const float *xs = x + g * group;
    // max |x| over the finite inputs, on the bit patterns: for floats of
    // one sign they order as the values, and an integer max vectorizes.
    uint32_t maxBits = 0;
    for (int d = 0; d < group; ++d) {
      uint32_t bits;
      std::memcpy(&bits, xs + d, 4);
      bits &= 0x7fffffffu;
      maxBits = std::max(maxBits, bits <= 0x7f7fffffu ? bits : 0u);
    }
    float maxAbs;
    std::memcpy(&maxAbs, &maxBits, 4);
    float scale = maxAbs > 0 ? roundUpToBf16(maxAbs / levels) : 1.0f;
    float inv = 1.0f / scale;
    scales[g] = scale;
    if (cfg.quant == Quant::q8) {
      int8_t *out = reinterpret_cast<int8_t *>(row) + g * group;
      for (int d = 0; d < group; ++d) {
        float v = std::min(std::max(finiteOrZero(xs[d] * inv), -127.0f), 127.0f);
        out[d] = static_cast<int8_t>(roundHalfEven(v));
      }
    } else {
      uint8_t *out = row + g * group / 2;
      for (int d = 0; d < group; d += 2) {
        float v0 = std::min(std::max(finiteOrZero(xs[d] * inv), -7.0f), 7.0f);
        float v1 = std::min(std::max(finiteOrZero(xs[d + 1] * inv), -7.0f), 7.0f);
        int q0 = static_cast<int>(roundHalfEven(v0)) + 8, q1 = static_cast<int>(roundHalfEven(v1)) + 8;
        out[d / 2] = static_cast<uint8_t>(q0 | (q1 << 4)); // low nibble first
      }
    }
  }
}

void BlockPool::dequantizeRow(const uint8_t *row, const float *scales, float *x) const {
  const int dim = cfg.headDim;
  if (cfg.quant == Quant::bf16) {
    for (int d = 0; d < dim; ++d) {
      uint16_t h;
      std::memcpy(&h, row + 2 * d, 2);
      x[d] = fromBf16(h);
    }
    return;
  }
  const int group = cfg.groupSize;
  for (int g = 0; g < dim / group; ++g) {
    float scale = scales[g];
    if (cfg.quant == Quant::q8) {
      const int8_t *in = reinterpret_cast<const int8_t *>(row) + g * group;
      for (int d = 0; d < group; ++d)
        x[g * group + d] = in[d] * scale;
    } else {
      const uint8_t *in = row + g * group / 2;
      for (int d = 0; d < group; d += 2) {
        x[g * group + d] = static_cast<float>((in[d / 2] & 0x0F) - 8) * scale;
        x[g * group + d + 1] = static_cast<float>((in[d / 2] >> 4) - 8) * scale;
      }
    }
  }
}

PageId BlockPool::allocatePage(Error &error) {
  if (freeList.empty()) {
    bool withinBudget = !cfg.byteBudget || (pageCount + 1) * pageSize <= cfg.byteBudget;
    if (withinBudget && pageCount == capacity) {
      error = "the KV pool is full (maxPages = " + std::to_string(capacity) + " pages of " +
              std::to_string(pageSize) + " bytes)";
      return -1;
    }
    if (withinBudget) {
      ++pageCount;
      populateThrough(pageCount * pageSize);
      refs.push_back(0);
      versions.push_back(++writeClock); // new, so never copied anywhere yet
      freeList.push_back(static_cast<PageId>(pageCount - 1));
    } else {
      // Evict one cached page that only the prefix index holds.
      size_t before = pagesInUse();
      evictTo(before ? (before - 1) * pageSize : 0);
      if (freeList.empty()) {
        error = "the KV pool is full (" + std::to_string(pageCount) + " pages of " +
                std::to_string(pageSize) + " bytes, budget " + std::to_string(cfg.byteBudget) +
                ") and no cached page is free to evict";
        return -1;
      }
    }
  }
  PageId p = freeList.back();
  freeList.pop_back();
  refs[p] = 1;
  ++used;
  policy->touched(p, ++tick);
  return p;
}

Error BlockPool::canAllocate(size_t pages) const {
  size_t have = freeList.size();
  // As allocatePage: new pages up to the budget and the capacity; cached
  // pages are evicted only where the budget, not the capacity, is reached.
  bool budgetBinds = cfg.byteBudget && cfg.byteBudget / pageSize <= capacity;
  size_t limit =
      budgetBinds ? static_cast<size_t>(cfg.byteBudget / pageSize) : capacity;
  if (limit > pageCount)
    have += limit - pageCount;
  if (have >= pages)
    return "";
  if (!budgetBinds)
    return "the KV pool is full (maxPages = " + std::to_string(capacity) +
           " pages of " + std::to_string(pageSize) + " bytes)";
  // Cached pages that eviction can free: index nodes held by the index
  // alone whose descendants are too (evictTo drops leaves first).
  std::function<size_t(const RadixNode &, bool &)> evictable =
      [&](const RadixNode &n, bool &whole) {
        size_t count = 0;
        whole = true;
        for (const auto &c : n.children) {
          bool childWhole;
          count += evictable(*c.second, childWhole);
          if (childWhole && refs[c.second->page] == 1)
            ++count;
          else
            whole = false;
        }
        return count;
      };
  bool rootWhole;
  have += evictable(*root, rootWhole);
  if (have >= pages)
    return "";
  return "the KV pool is full (" + std::to_string(pageCount) + " pages of " +
         std::to_string(pageSize) + " bytes, budget " +
         std::to_string(cfg.byteBudget) +
         ") and no cached page is free to evict";
}

void BlockPool::release(PageId page) {
  if (--refs[page] == 0) {
    --used;
    policy->released(page);
    freeList.push_back(page);
  }
}

/// Calls fn(offset, isV, row, scales) for every row of positions [begin,
/// begin + count) of the sequence with block table `table`: `offset` is the
/// row's place in the [layers][kvHeads][count][headDim] arrays of append and
/// read, `scales` null for bf16.
template <typename Fn>
void BlockPool::forEachRow(const std::vector<PageId> &table, int64_t begin, int64_t count,
                           Fn fn) const {
  size_t rowElems = static_cast<size_t>(cfg.headDim);
  for (int64_t t = 0; t < count; ++t) {
    int64_t pos = begin + t;
    uint8_t *base = arena + static_cast<size_t>(table[pos / cfg.pageTokens]) * pageSize;
    int slot = static_cast<int>(pos % cfg.pageTokens);
    for (int l = 0; l < cfg.layers; ++l)
      for (int which = 0; which < 2; ++which)
        for (int h = 0; h < cfg.kvHeads; ++h) {
          float *scales = scaleCount() ? reinterpret_cast<float *>(
                                             base + rowOffset(l, which, h, slot, true))
                                       : nullptr;
          fn(((static_cast<size_t>(l) * cfg.kvHeads + h) * count + t) * rowElems, which == 1,
             base + rowOffset(l, which, h, slot), scales);
        }
  }
}

SeqId BlockPool::createSequence() {
  SeqId id = nextSeq++;
  seqs[id] = Seq();
  return id;
}

bool BlockPool::hasSequence(SeqId seq) const { return seqs.count(seq) != 0; }

int64_t BlockPool::length(SeqId seq) const {
  auto it = seqs.find(seq);
  return it == seqs.end() ? -1 : it->second.length;
}

const std::vector<PageId> &BlockPool::blockTable(SeqId seq) const {
  static const std::vector<PageId> none;
  auto it = seqs.find(seq);
  return it == seqs.end() ? none : it->second.pages;
}

Error BlockPool::append(SeqId seq, const float *k, const float *v, int64_t tokens) {
  auto it = seqs.find(seq);
  if (it == seqs.end())
    return "no sequence " + std::to_string(seq);
  if (tokens < 0)
    return "cannot append a negative number of tokens";
  Seq &s = it->second;
  // Room first, so a failure leaves the sequence as it was: a private copy
  // of a shared, partly filled last page (copy on write), then new pages.
  int64_t newLength = s.length + tokens;
  size_t needPages = static_cast<size_t>((newLength + cfg.pageTokens - 1) / cfg.pageTokens);
  std::vector<PageId> table = s.pages, acquired;
  PageId sharedLast = -1;
  bool copyLast =
      tokens > 0 && s.length % cfg.pageTokens && refs[table.back()] > 1;
  // Checked before any page is taken: evicting cached prefixes for an
  // append that fails anyway would change the pool.
  Error e = canAllocate((copyLast ? 1 : 0) + (needPages - table.size()));
  if (!e.empty())
    return e;
  if (copyLast) {
    PageId copy = allocatePage(e);
    if (copy < 0)
      return e;
    const BlockPool &self = *this; // reading the shared page changes nothing
    std::memcpy(pageData(copy), self.pageData(table.back()), pageSize);
    sharedLast = table.back();
    table.back() = copy;
    acquired.push_back(copy);
  }
  while (table.size() < needPages) {
    PageId p = allocatePage(e);
    if (p < 0) {
      for (PageId q : acquired)
        release(q);
      return e;
    }
    acquired.push_back(p);
    table.push_back(p);
  }
  if (sharedLast >= 0)
    release(sharedLast);
  s.pages = std::move(table);
  forEachRow(s.pages, s.length, tokens, [&](size_t at, bool isV, uint8_t *row, float *scales) {
    quantizeRow((isV ? v : k) + at, row, scales);
  });
  if (tokens > 0)
    for (size_t i = static_cast<size_t>(s.length / cfg.pageTokens); i < s.pages.size(); ++i)
      wrote(s.pages[i]);
  s.length = newLength;
  return "";
}

Error BlockPool::read(SeqId seq, int64_t begin, int64_t count, float *k, float *v) const {
  auto it = seqs.find(seq);
  if (it == seqs.end())
    return "no sequence " + std::to_string(seq);
  const Seq &s = it->second;
  if (begin < 0 || count < 0 || begin + count > s.length)
    return "tokens [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
           ") are outside the sequence's " + std::to_string(s.length);
  forEachRow(s.pages, begin, count, [&](size_t at, bool isV, uint8_t *row, float *scales) {
    dequantizeRow(row, scales, (isV ? v : k) + at);
  });
  return "";
}

SeqId BlockPool::fork(SeqId seq) {
  auto it = seqs.find(seq);
  if (it == seqs.end())
    return -1;
  SeqId id = nextSeq++;
  seqs[id] = it->second;
  for (PageId p : it->second.pages) {
    ++refs[p];
    policy->touched(p, ++tick);
  }
  return id;
}

Error BlockPool::truncate(SeqId seq, int64_t newLength) {
  auto it = seqs.find(seq);
  if (it == seqs.end())
    return "no sequence " + std::to_string(seq);
  Seq &s = it->second;
  if (newLength < 0 || newLength > s.length)
    return "cannot truncate a sequence of " + std::to_string(s.length) + " tokens to " +
           std::to_string(newLength);
  size_t keep = static_cast<size_t>((newLength + cfg.pageTokens - 1) / cfg.pageTokens);
  while (s.pages.size() > keep) {
    release(s.pages.back());
    s.pages.pop_back();
  }
  s.length = newLength;
  return "";
}

void BlockPool::free(SeqId seq) {
  auto it = seqs.find(seq);
  if (it == seqs.end())
    return;
  for (PageId p : it->second.pages)
    release(p);
  seqs.erase(it);
}

Error BlockPool::cachePrefix(SeqId seq, const std::vector<int32_t> &tokens) {
  auto it = seqs.find(seq);
  if (it == seqs.end())
    return "no sequence " + std::to_string(seq);
  const Seq &s = it->second;
  if (static_cast<int64_t>(tokens.size()) > s.length)
    return "more token ids (" + std::to_string(tokens.size()) + ") than cached positions (" +
           std::to_string(s.length) + ")";
  RadixNode *node = root.get();
  size_t full = tokens.size() / cfg.pageTokens;
  for (size_t p = 0; p < full; ++p) {
    std::vector<int32_t> key(tokens.begin() + p * cfg.pageTokens,
                             tokens.begin() + (p + 1) * cfg.pageTokens);
    auto child = node->children.find(key);
    if (child == node->children.end()) {
      auto fresh = std::make_unique<RadixNode>();
      fresh->tokens = key;
      fresh->page = s.pages[p];
      fresh->parent = node;
      ++refs[fresh->page];
      child = node->children.emplace(key, std::move(fresh)).first;
    }
    policy->touched(child->second->page, ++tick);
    node = child->second.get();
  }
  return "";
}

SeqId BlockPool::adoptPrefix(const std::vector<int32_t> &tokens, int64_t &matched) {
  SeqId id = createSequence();
  Seq &s = seqs[id];
  RadixNode *node = root.get();
  for (size_t p = 0; (p + 1) * cfg.pageTokens <= tokens.size(); ++p) {
    std::vector<int32_t> key(tokens.begin() + p * cfg.pageTokens,
                             tokens.begin() + (p + 1) * cfg.pageTokens);
    auto child = node->children.find(key);
    if (child == node->children.end())
      break;
    node = child->second.get();
    ++refs[node->page];
    policy->touched(node->page, ++tick);
    s.pages.push_back(node->page);
  }
  s.length = static_cast<int64_t>(s.pages.size()) * cfg.pageTokens;
  matched = s.length;
  return id;
}

void BlockPool::dropIndexed(RadixNode *node) {
  RadixNode *parent = node->parent;
  release(node->page);
  parent->children.erase(node->tokens);
}

void BlockPool::evictTo(size_t bytes) {
  while (bytesInUse() > bytes) {
    // Leaves whose page only the index holds; dropping a leaf keeps every
    // cached prefix whole.
    std::vector<RadixNode *> leaves;
    std::vector<RadixNode *> stack = {root.get()};
    while (!stack.empty()) {
      RadixNode *n = stack.back();
      stack.pop_back();
      for (auto &c : n->children) {
        if (c.second->children.empty()) {
          if (refs[c.second->page] == 1)
            leaves.push_back(c.second.get());
        } else {
          stack.push_back(c.second.get());
        }
      }
    }
    if (leaves.empty())
      return;
    std::vector<PageId> candidates;
    for (RadixNode *n : leaves)
      candidates.push_back(n->page);
    PageId victim = policy->victim(candidates);
    for (RadixNode *n : leaves)
      if (n->page == victim) {
        dropIndexed(n);
        break;
      }
  }
}

SeqId BlockPool::createWithPages(int64_t tokens, std::vector<PageId> &out, Error &error) {
  size_t need = static_cast<size_t>((tokens + cfg.pageTokens - 1) / cfg.pageTokens);
  error = canAllocate(need);
  if (!error.empty())
    return -1;
  std::vector<PageId> got;
  for (size_t n = 0; n < need; ++n) {
    PageId p = allocatePage(error);
    if (p < 0) {
      for (PageId q : got)
        release(q);
      return -1;
    }
    got.push_back(p);
  }
  SeqId id = createSequence();
  seqs[id].pages = got;
  seqs[id].length = tokens;
  out = got;
  return id;
}

size_t BlockPool::pagesFreeWithoutEviction() const {
  size_t limit = capacity;
  if (cfg.byteBudget)
    limit = std::min(limit, cfg.byteBudget / pageSize);
  return freeList.size() + (limit > pageCount ? limit - pageCount : 0);
}

void BlockPool::populateThrough(size_t end) {
  // Fresh arena memory would otherwise take a page fault per 4 KiB as the
  // appends or a restore's copies first reach it. MADV_POPULATE_WRITE
  // (Linux 5.14) maps it in ahead, 2 MiB at a time (one call, not 512
  // faults). A failure (an older kernel) leaves the faults to the writes.
  if (end <= populated)
    return;
  if (const char *e = std::getenv("ATTNC_KV_PREFAULT"); e && std::string(e) == "0")
    return;
#ifdef MADV_POPULATE_WRITE
  const size_t chunk = size_t(2) << 20;
  size_t upTo = std::min(arenaBytes, (end + chunk - 1) / chunk * chunk);
  // populated stays a multiple of the OS page (the arena is page aligned).
  if (madvise(arena + populated, upTo - populated, MADV_POPULATE_WRITE) == 0)
    populated = upTo;
  else
    populated = arenaBytes; // not available: stop asking
#else
  populated = arenaBytes;
#endif
}

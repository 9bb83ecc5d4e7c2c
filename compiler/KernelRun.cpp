//===- KernelRun.cpp - A compiled kernel: argument checks, CPU runs -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// What a Kernel does once compiled (Jit.cpp compiles and caches it): check
// tensors and params against its signature, run a CPU kernel on the thread
// pool (chunks of query tiles; paged kernels in split-KV phases), and wait
// for the final tier of a kernel compiled in two. CUDA kernels launch from
// CudaLaunch.cpp.
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "attnc/runtime/ThreadPool.h"
#include "compiler/CompiledKernel.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <tuple>

using namespace attnc;

Kernel::Kernel(std::shared_ptr<CompiledKernel> impl) : impl(std::move(impl)) {}

const KernelInfo &Kernel::info() const { return impl->info; }

Status Kernel::check(const std::vector<TensorView> &tensors,
                     const std::map<std::string, double> &params) const {
  const KernelInfo &info = impl->info;
  size_t numTensors = 0;
  for (const ArgInfo &a : info.args)
    numTensors += a.isTensor;
  if (tensors.size() != numTensors)
    return Status::error("kernel '" + info.name + "' takes " +
                         std::to_string(numTensors) + " tensors, got " +
                         std::to_string(tensors.size()));
  std::map<std::string, int64_t> symbols;
  size_t t = 0;
  for (const ArgInfo &a : info.args) {
    if (!a.isTensor)
      continue;
    const TensorView &view = tensors[t++];
    std::string where = "tensor '" + a.name + "'";
    if (view.dtype != a.dtype)
      return Status::error(where + " expects dtype " + dtypeName(a.dtype) +
                           ", got " + dtypeName(view.dtype));
    if (view.shape.size() != a.dims.size())
      return Status::error(where + " expects rank " + std::to_string(a.dims.size()) +
                           ", got " + std::to_string(view.shape.size()));
    if (!view.strides.empty() && view.strides.size() != view.shape.size())
      return Status::error(where + " has " + std::to_string(view.strides.size()) +
                           " strides for rank " + std::to_string(view.shape.size()));
    TensorView contiguous = view;
    contiguous.strides.clear();
    std::vector<int64_t> rowMajor = contiguous.effectiveStrides();
    if (a.pageStrided && !view.strides.empty()) {
      // Pages may sit apart; within a page the layout is row-major.
      if (!std::equal(view.strides.begin() + 1, view.strides.end(), rowMajor.begin() + 1) ||
          view.strides[0] < 0 || (view.dtype == DType::q4 && view.strides[0] % 2 != 0))
        return Status::error(where + " must be row-major within a page (only the page "
                                     "stride may differ" +
                             std::string(view.dtype == DType::q4 ? ", and be even for q4)" : ")"));
    } else if (!view.strides.empty() && view.strides != rowMajor) {
      return Status::error(where + " is not contiguous; attnc kernels take "
                                   "row-major contiguous tensors for now");
    }
    for (size_t d = 0; d < a.dims.size(); ++d) {
      int64_t size = view.shape[d];
      if (size < 0)
        return Status::error(where + " has a negative size in dim " + std::to_string(d));
      if (a.dims[d] >= 0 && size != a.dims[d])
        return Status::error(where + " expects dim " + std::to_string(d) + " = " +
                             std::to_string(a.dims[d]) + ", got " + std::to_string(size));
      if (a.dims[d] < 0) {
        auto [it, inserted] = symbols.emplace(a.dimNames[d], size);
        if (!inserted && it->second != size)
          return Status::error(where + " has " + a.dimNames[d] + " = " +
                               std::to_string(size) + " in dim " + std::to_string(d) +
                               ", but an earlier tensor has " + a.dimNames[d] +
                               " = " + std::to_string(it->second));
      }
    }
    if (!view.data && view.numel() > 0)
      return Status::error(where + " has no data");
  }
  // GQA divisibility and q/k/v agreement that symbolic names cannot show.
  const TensorView &q = tensors[0], &k = tensors[1], &v = tensors[2];
  if (q.shape.size() == 4 && k.shape.size() == 4 && v.shape.size() == 4) {
    if (k.shape[1] == 0 || q.shape[1] % k.shape[1] != 0)
      return Status::error("query heads (" + std::to_string(q.shape[1]) +
                           ") must be a multiple of KV heads (" +
                           std::to_string(k.shape[1]) + ")");
    if (info.paged) {
      if (k.shape[0] != v.shape[0] || k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2] ||
          q.shape[3] != k.shape[3])
        return Status::error("k and v pages disagree (pages, KV heads or page size), or "
                             "q and k disagree on the head dim");
      if (k.shape[2] < 1)
        return Status::error("the page size (dim 2 of k) must be positive");
      // The table, lengths and scales must fit q's batch and k's pages: the
      // kernels index them by those.
      const PagedInfo &paged = *info.paged;
      const TensorView &table = tensors[paged.table], &lens = tensors[paged.lens];
      if (table.shape[0] != q.shape[0] || lens.shape[0] != q.shape[0])
        return Status::error("the block table has " + std::to_string(table.shape[0]) +
                             " rows and the lengths " + std::to_string(lens.shape[0]) +
                             " entries, but q has batch " + std::to_string(q.shape[0]));
      for (int n : {paged.keyScale, paged.valueScale})
        if (n >= 0 && (tensors[n].shape[0] != k.shape[0] || tensors[n].shape[1] != k.shape[1] ||
                       tensors[n].shape[2] != k.shape[2]))
          return Status::error("the scales must have k's pages, KV heads and page size");
    } else if (q.shape[0] != k.shape[0] || k.shape[0] != v.shape[0] ||
        k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2] ||
        q.shape[3] != k.shape[3])
      return Status::error("q, k and v shapes disagree (batch, KV heads, key "
                           "length or head dim)");
  }
  if (Status st = checkNoOverlaps(info, tensors); !st)
    return st;
  for (const auto &param : params) {
    const std::string &name = param.first;
    double value = param.second;
    auto it = std::find_if(info.args.begin(), info.args.end(), [&](const ArgInfo &a) {
      return !a.isTensor && a.name == name;
    });
    if (it == info.args.end())
      return Status::error("kernel '" + info.name + "' has no parameter '" + name + "'");
    if (it->dtype != DType::f32 && value != static_cast<double>(static_cast<int64_t>(value)))
      return Status::error("parameter '" + name + "' is an integer, got " +
                           std::to_string(value));
    if (it->dtype == DType::i32 && (value < INT32_MIN || value > INT32_MAX))
      return Status::error("parameter '" + name + "' does not fit in i32");
  }
  for (const ArgInfo &a : info.args)
    if (!a.isTensor && !params.count(a.name) && !a.defaultValue)
      return Status::error("parameter '" + a.name + "' has no default and was not given");
  return Status::ok();
}

Status attnc::checkPageTable(const std::vector<TensorView> &tensors, const PagedInfo &paged) {
  const TensorView &k = tensors[1], &table = tensors[paged.table], &lens = tensors[paged.lens];
  int64_t pages = k.shape[0], pageSize = k.shape[2], width = table.shape[1];
  for (int64_t b = 0; b < lens.shape[0]; ++b) {
    int64_t len = static_cast<int64_t>(lens.load(&b));
    if (len < 0 || len > width * pageSize)
      return Status::error("sequence " + std::to_string(b) + " has length " +
                           std::to_string(len) + ", outside [0, " +
                           std::to_string(width * pageSize) + "] (block table width " +
                           std::to_string(width) + " x page size " +
                           std::to_string(pageSize) + ")");
    for (int64_t p = 0; p * pageSize < len; ++p) {
      int64_t index[2] = {b, p};
      int64_t page = static_cast<int64_t>(table.load(index));
      if (page < 0 || page >= pages)
        return Status::error("block table entry [" + std::to_string(b) + ", " +
                             std::to_string(p) + "] is page " + std::to_string(page) +
                             ", but there are " + std::to_string(pages) + " pages");
    }
  }
  return Status::ok();
}

namespace {
/// Storage for one argument as the C interface takes it.
struct ArgStorage {
  struct Desc {
    void *allocated;
    void *aligned;
    int64_t offset;
    int64_t sizesAndStrides[8];
  } desc;
  void *descPtr = &desc;
  int32_t i32 = 0;
  int64_t i64 = 0;
  float f32 = 0;
};

/// How a CPU run is cut into chunks of query tiles for the thread pool.
/// $ATTNC_CPU_CHUNKS (chunks per thread) and $ATTNC_CPU_ORDER
/// (`first`/`last`) are tuning knobs for the benchmarks.
struct CpuSchedule {
  int64_t chunksPerThread = 16;
  bool lastFirst = true;
  /// Guided chunks (ThreadPool::Chunking): long while much is left, down to
  /// items / (chunksPerThread * threads) at the end; $ATTNC_CPU_GUIDED=0
  /// keeps that size throughout.
  bool guided = true;
  /// Paged kernels: key ranges per item (0: chosen per run).
  int64_t splits = 0;
};

CpuSchedule cpuSchedule() {
  static const CpuSchedule schedule = [] {
    CpuSchedule s;
    if (const char *env = std::getenv("ATTNC_CPU_CHUNKS"))
      s.chunksPerThread = std::clamp<int64_t>(std::atoll(env), 1, 1 << 20);
    if (const char *env = std::getenv("ATTNC_CPU_ORDER"))
      s.lastFirst = std::strcmp(env, "first") != 0;
    if (const char *env = std::getenv("ATTNC_CPU_GUIDED"))
      s.guided = std::strcmp(env, "0") != 0;
    if (const char *env = std::getenv("ATTNC_CPU_SPLITS"))
      s.splits = std::clamp<int64_t>(std::atoll(env), 0, 1024);
    return s;
  }();
  return schedule;
}
/// Split-KV for paged kernels: key ranges per item, so that a few long
/// sequences (B = 1 has only one item per KV head) still give every thread
/// work. About two work units per thread, and ranges of at least
/// kMinSplitTiles key tiles, so the combine stays a small part.
int64_t pagedSplits(const TensorView &lens, int64_t items, int64_t blockK, unsigned parts,
                    int64_t forced) {
  constexpr int64_t kMinSplitTiles = 4;
  if (forced > 0)
    return forced;
  int64_t longest = 0;
  for (int64_t n = 0; n < lens.shape[0]; ++n) {
    int64_t index[1] = {n};
    longest = std::max<int64_t>(longest, static_cast<int64_t>(lens.load(index)));
  }
  int64_t wanted = (2 * int64_t(parts) + items - 1) / std::max<int64_t>(1, items);
  int64_t tiles = (longest + blockK - 1) / std::max<int64_t>(1, blockK);
  return std::clamp<int64_t>(std::min(wanted, tiles / kMinSplitTiles), 1, 1024);
}
} // namespace

namespace {
/// The bytes a view may touch, [begin, end) (begin == end: none); nothing
/// when its extent overflows 64 bits.
std::optional<std::pair<uint64_t, uint64_t>> byteSpan(const TensorView &view) {
  std::vector<int64_t> strides = view.effectiveStrides();
  uint64_t lastElement = 0;
  for (size_t d = 0; d < view.shape.size(); ++d) {
    if (view.shape[d] == 0)
      return std::make_pair(uint64_t(0), uint64_t(0));
    uint64_t step = 0;
    if (strides[d] < 0 ||
        __builtin_mul_overflow(static_cast<uint64_t>(view.shape[d] - 1),
                               static_cast<uint64_t>(strides[d]), &step) ||
        __builtin_add_overflow(lastElement, step, &lastElement) || lastElement >= (1ull << 59))
      return std::nullopt;
  }
  uint64_t bytes = storageBytes(view.dtype, static_cast<int64_t>(lastElement + 1));
  uint64_t begin = reinterpret_cast<uintptr_t>(view.data), end = 0;
  if (__builtin_add_overflow(begin, bytes, &end))
    return std::nullopt;
  return std::make_pair(begin, end);
}
} // namespace

Status attnc::checkNoOverlaps(const KernelInfo &info, const std::vector<TensorView> &tensors) {
  // An output that shares memory with another tensor would be read after
  // (or while) it is written, by other work items or threads: a wrong
  // answer with no error. Inputs may share (a pool's k and v pages).
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  std::vector<const ArgInfo *> args;
  for (const ArgInfo &a : info.args) {
    if (!a.isTensor)
      continue;
    const TensorView &view = tensors[args.size()];
    std::optional<std::pair<uint64_t, uint64_t>> span = byteSpan(view);
    if (!span)
      return Status::error("tensor '" + a.name + "' spans more memory than an address can "
                           "hold (its sizes times its strides overflow 64 bits)");
    spans.push_back(*span);
    args.push_back(&a);
  }
  for (size_t x = 0; x < args.size(); ++x) {
    if (!args[x]->isOutput || spans[x].first == spans[x].second)
      continue;
    for (size_t y = 0; y < args.size(); ++y)
      if (y != x && spans[y].first < spans[x].second && spans[x].first < spans[y].second)
        return Status::error("output '" + args[x]->name + "' overlaps tensor '" +
                             args[y]->name +
                             "' in memory; an output may not share memory with another "
                             "tensor");
  }
  return Status::ok();
}

Target Kernel::target() const { return impl->isCuda ? Target::cuda : Target::cpu; }

Status Kernel::run(const std::vector<TensorView> &tensors,
                   const std::map<std::string, double> &params,
                   unsigned threads) const {
  if (Status st = check(tensors, params); !st)
    return st;
  if (impl->isCuda)
    return launchCuda(impl->current(), impl->info, tensors, params, nullptr,
                      /*wait=*/true);
  const KernelInfo &info = impl->info;
  if (info.paged)
    if (Status st = checkPageTable(tensors, *info.paged); !st)
      return st;
  std::vector<ArgStorage> storage(info.args.size());
  std::vector<void *> argPtrs;
  size_t t = 0;
  for (size_t n = 0; n < info.args.size(); ++n) {
    const ArgInfo &a = info.args[n];
    ArgStorage &s = storage[n];
    if (a.isTensor) {
      const TensorView &view = tensors[t++];
      // An empty tensor may have no memory at all; region reads are clamped
      // to index 0, so give them zeros to read there.
      alignas(64) static const unsigned char kZeros[64] = {};
      void *data = view.numel() == 0 ? const_cast<unsigned char *>(kZeros) : view.data;
      s.desc.allocated = s.desc.aligned = data;
      s.desc.offset = 0;
      std::vector<int64_t> strides = view.effectiveStrides();
      size_t rank = view.shape.size();
      for (size_t d = 0; d < rank; ++d) {
        s.desc.sizesAndStrides[d] = view.shape[d];
        s.desc.sizesAndStrides[rank + d] = strides[d];
      }
      if (view.dtype == DType::q4) { // the kernel addresses bytes
        s.desc.sizesAndStrides[rank - 1] = view.shape[rank - 1] / 2;
        for (size_t d = 0; d + 1 < rank; ++d)
          s.desc.sizesAndStrides[rank + d] = strides[d] / 2;
      }
      s.descPtr = &s.desc;
      argPtrs.push_back(&s.descPtr);
      continue;
    }
    auto it = params.find(a.name);
    double value = it != params.end() ? it->second : *a.defaultValue;
    if (a.dtype == DType::f32) {
      s.f32 = static_cast<float>(value);
      argPtrs.push_back(&s.f32);
    } else if (a.dtype == DType::i32) {
      s.i32 = static_cast<int32_t>(value);
      argPtrs.push_back(&s.i32);
    } else {
      s.i64 = static_cast<int64_t>(value);
      argPtrs.push_back(&s.i64);
    }
  }
  const TensorView &q = tensors[0];
  // attn.topk: the selection table, computed here and passed last.
  std::vector<int32_t> selection;
  ArgStorage selectionArg;
  if (impl->topk) {
    const TensorView &k = tensors[1];
    int64_t qb = topKQueryBlocks(*impl->topk, q.shape[2], k.shape[2]);
    int64_t kb = topKKeyBlocks(*impl->topk, k.shape[2]);
    selection.assign(static_cast<size_t>(q.shape[0] * q.shape[1] * qb * kb), 0);
    selectTopKBlocks(q, k, *impl->topk, selection.data(), threads);
    ArgStorage::Desc &d = selectionArg.desc;
    d.allocated = d.aligned = selection.data();
    d.offset = 0;
    int64_t shape[4] = {q.shape[0], q.shape[1], qb, kb};
    int64_t stride = 1;
    for (int n = 3; n >= 0; --n) {
      d.sizesAndStrides[n] = shape[n];
      d.sizesAndStrides[4 + n] = stride;
      stride *= shape[n];
    }
    selectionArg.descPtr = &selectionArg.desc;
    argPtrs.push_back(&selectionArg.descPtr);
  }
  int64_t perItem = info.queriesPerItem > 0 ? info.queriesPerItem : info.blockQ;
  int64_t items = q.shape[0] * (q.shape[1] / info.headsPerItem) *
                  ((q.shape[2] + perItem - 1) / perItem);
  auto entry = impl->current().entry;
  // Chunks of consecutive query tiles of one head, so that a call's range
  // shares its transposed K tiles (the kernel caches them per call), yet
  // several chunks per thread for balance. Paged items (sequences of
  // different lengths) stay one at a time.
  ThreadPool::Chunking chunking;
  bool lastFirst = false;
  CpuSchedule schedule = cpuSchedule();
  unsigned parts = threads == 0 ? ThreadPool::global().size()
                                : std::min(threads, ThreadPool::global().size());
  if (!info.paged) {
    int64_t tilesPerHead = (q.shape[2] + perItem - 1) / perItem;
    chunking.grain = std::max<int64_t>(
        1, std::min(tilesPerHead, items / (schedule.chunksPerThread * int64_t(parts))));
    if (schedule.guided) {
      // A head's query tiles at most, and never two heads' in one chunk:
      // the kernel's K-tile cache holds one head.
      chunking.maxGrain = tilesPerHead;
      chunking.align = tilesPerHead;
    }
    lastFirst = schedule.lastFirst;
  }
  auto runRange = [&](int64_t units, std::vector<void *> args) {
    ThreadPool::global().parallelFor(
        units, threads,
        [&](int64_t begin, int64_t end) {
          // Last chunks first: with a causal mask a head's last query tiles
          // cost the most, and the run should end on cheap ones.
          if (lastFirst)
            std::tie(begin, end) = std::make_pair(units - end, units - begin);
          std::vector<void *> local = args;
          local.push_back(&begin);
          local.push_back(&end);
          entry(local.data());
        },
        chunking);
  };
  if (!info.paged) {
    runRange(items, argPtrs);
    return Status::ok();
  }
  // Paged: whole items (phase 0), or split-KV: every item's key ranges into
  // partial slots (phase 1), then one combine per item (phase 2).
  int64_t splits = pagedSplits(tensors[info.paged->lens], items, info.blockK, parts,
                               schedule.splits);
  int64_t phase = splits > 1 ? 1 : 0;
  int64_t rowsMax = info.headsPerItem * perItem;
  int64_t valueDim = 0;
  for (size_t n = 0, t = 0; n < info.args.size(); ++n) {
    if (!info.args[n].isTensor)
      continue;
    if (info.args[n].isOutput && info.args[n].dims.size() == 4) { // o, not lse
      valueDim = tensors[t].shape[3];
      break;
    }
    ++t;
  }
  int64_t slotFloats = rowsMax * (valueDim + 2);
  // Whole items leave the partials alone: no allocation on that path.
  float unused = 0;
  std::vector<float> partials(splits > 1 ? static_cast<size_t>(items * splits * slotFloats) : 0);
  float *partialsData = splits > 1 ? partials.data() : &unused;
  ArgStorage partialsArg;
  ArgStorage::Desc &pd = partialsArg.desc;
  pd.allocated = pd.aligned = partialsData;
  pd.offset = 0;
  pd.sizesAndStrides[0] = splits > 1 ? static_cast<int64_t>(partials.size()) : 1;
  pd.sizesAndStrides[1] = 1;
  partialsArg.descPtr = &pd;
  argPtrs.push_back(&phase);
  argPtrs.push_back(&splits);
  argPtrs.push_back(&partialsArg.descPtr);
  if (phase == 0) {
    runRange(items, argPtrs);
    return Status::ok();
  }
  runRange(items * splits, argPtrs);
  phase = 2;
  runRange(items, argPtrs);
  return Status::ok();
}

Status Kernel::waitForFinalTier() const {
  if (!impl->upgrade)
    return Status::ok();
  KernelUpgrade &upgrade = *impl->upgrade;
  std::unique_lock<std::mutex> lock(upgrade.mutex);
  upgrade.finished.wait(lock, [&] { return upgrade.done.load(std::memory_order_acquire); });
  return upgrade.error.empty() ? Status::ok() : Status::error(upgrade.error);
}

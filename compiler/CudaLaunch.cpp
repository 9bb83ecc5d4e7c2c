//===- CudaLaunch.cpp - Launch compiled CUDA kernels ----------------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A launch fills the kernel's argument slots from the tensors and params,
// then enqueues on the caller's stream, in order: the top-k selection
// kernels (attn.topk), the tile-class kernel (masks that read tensors, or a
// TilePlan built once), the attention kernel. Scratch memory is
// stream-ordered and given back after the launch.
//
//===----------------------------------------------------------------------===//

#include "compiler/CompiledKernel.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

using namespace attnc;

namespace attnc {
/// A tile-class table in GPU memory and what it was built for.
struct TilePlanData {
  const CompiledKernel *kernel = nullptr;
  int64_t batch = 0, heads = 0, qLen = 0, kvLen = 0;
  void *table = nullptr;
  size_t bytes = 0;
  ~TilePlanData() {
    if (table)
      cuda::free(table);
  }
};
} // namespace attnc

size_t TilePlan::bytes() const { return data ? data->bytes : 0; }

/// The paged form: split the keys of every sequence so that the grid covers
/// the GPU a few times over, run the split kernel into stream-ordered
/// partials, then the combine kernel. A raised error flag (a table entry or
/// length out of range) is reported when the launch waits.
static Status launchPagedDecode(const CompiledKernel &k, const std::vector<TensorView> &tensors,
                                std::vector<uint64_t> &slots, void *stream, bool wait) {
  const CudaKernel &layout = k.layout;
  const PagedInfo &paged = *k.info.paged;
  const TensorView &q = tensors[0], &key = tensors[1], &table = tensors[paged.table];
  int64_t batch = q.shape[0], heads = q.shape[1], qLen = q.shape[2], kvHeads = key.shape[1];
  // Query rows per KV head (GQA rows packed), at most decodeRows per CTA.
  int64_t rows = heads / kvHeads * qLen;
  int64_t rowChunks = (rows + layout.decodeRows - 1) / layout.decodeRows;
  int64_t maxKeys = table.shape[1] * key.shape[2];
  if (maxKeys <= 0)
    maxKeys = 1;
  for (int arg : {1, 2}) {
    const TensorView &view = tensors[arg];
    int64_t stride = view.effectiveStrides()[0];
    int64_t bytes = view.dtype == DType::q4 ? stride / 2
                                            : stride * static_cast<int64_t>(dtypeSize(view.dtype));
    if (bytes % 16)
      return Status::error("the page stride of " + std::string(arg == 1 ? "k" : "v") + " (" +
                           std::to_string(bytes) +
                           " bytes) must be a multiple of 16: pages are read in 16-byte pieces");
  }
  // The tensor-core kernel copies scale rows with bulk copies too, unless a
  // row is under 16 bytes (one or two groups): then lane by lane.
  for (int arg : {paged.keyScale, paged.valueScale}) {
    if (!layout.decodeMma || layout.decodeScaleLanes || arg < 0)
      continue;
    int64_t bytes = tensors[arg].effectiveStrides()[0] * 4;
    if (bytes % 16)
      return Status::error("the page stride of the scales (" + std::to_string(bytes) +
                           " bytes) must be a multiple of 16: pages are read in 16-byte pieces");
  }
  int64_t smem = layout.decodeSmemFixed +
                 layout.decodeSmemPerRow * std::min<int64_t>(rows, layout.decodeRows);
  if (smem > cuda::maxSharedMemoryPerBlock())
    return Status::error("the paged decode kernel needs more shared memory than a CTA may have");
  // Split the keys so that the grid fills whole waves of resident CTAs: the
  // fewest waves (up to 8) that keep at least 90% of the last one busy.
  int64_t ctas = batch * kvHeads * rowChunks;
  int64_t tiles = (maxKeys + layout.decodeTileKeys - 1) / layout.decodeTileKeys;
  int64_t wave = cuda::residentCTAs(k.function, 128, static_cast<size_t>(smem));
  if (wave <= 0)
    wave = 4 * 132;
  int64_t splits = 1;
  for (int64_t waves = 1; waves <= 8; ++waves) {
    splits = std::max<int64_t>(1, std::min<int64_t>(waves * wave / ctas, tiles));
    int64_t grid = splits * ctas;
    double busy = static_cast<double>(grid) / static_cast<double>((grid + wave - 1) / wave * wave);
    if (busy >= 0.9 || splits == tiles)
      break;
  }
  if (const char *env = std::getenv("ATTNC_DECODE_SPLITS")) // a tuning knob
    splits = std::clamp<int64_t>(std::atoll(env), 1, tiles);
  int64_t perSplit = (tiles + splits - 1) / splits * layout.decodeTileKeys;
  splits = (maxKeys + perSplit - 1) / perSplit;
  if (maxKeys > kMaxCudaPositions)
    return Status::error("the block table spans " + std::to_string(maxKeys) +
                         " positions; the CUDA kernels take at most " +
                         std::to_string(kMaxCudaPositions));
  if (splits * rowChunks > INT32_MAX || kvHeads > 65535 || batch > 65535 ||
      perSplit > INT32_MAX || batch * heads * qLen > INT32_MAX)
    return Status::error("too many splits, KV heads or sequences for the paged decode kernel");
  std::string error;
  size_t partBytes = static_cast<size_t>(batch * kvHeads * splits * rows * (q.shape[3] + 2)) * 4;
  // o's value dim may differ from q's head dim: size the partials by it.
  const TensorView *out = nullptr;
  for (size_t n = 0, t = 0; n < k.info.args.size(); ++n)
    if (k.info.args[n].isTensor) {
      if (k.info.args[n].isOutput && !out)
        out = &tensors[t];
      ++t;
    }
  if (out)
    partBytes = static_cast<size_t>(batch * kvHeads * splits * rows * (out->shape[3] + 2)) * 4;
  void *part = nullptr, *flag = nullptr;
  if (!cuda::mallocAsync(&part, std::max<size_t>(partBytes, 4), stream, error) ||
      !cuda::mallocAsync(&flag, 4, stream, error) || !cuda::memset8Async(flag, 0, 4, stream, error))
    return Status::error(error);
  void *argStruct = slots.data();
  int keysPerSplit = static_cast<int>(perSplit), splitCount = static_cast<int>(splits);
  void *params[5] = {argStruct, &part, &keysPerSplit, &splitCount, &flag};
  unsigned grid[3] = {static_cast<unsigned>(splits * rowChunks), static_cast<unsigned>(kvHeads),
                      static_cast<unsigned>(batch)};
  unsigned block[3] = {128, 1, 1};
  unsigned combineGrid[3] = {static_cast<unsigned>(batch * heads * qLen), 1, 1};
  bool ok = batch * heads * qLen == 0 ||
            (cuda::launch(k.function, grid, block, static_cast<unsigned>(smem), stream, params,
                          error) &&
             cuda::launch(k.combine, combineGrid, block, 0, stream, params, error));
  int raised = 0;
  if (ok && wait)
    ok = cuda::copyToHostAsync(&raised, flag, 4, stream, error) && cuda::synchronize(error);
  std::string ignored;
  cuda::freeAsync(part, stream, ignored);
  cuda::freeAsync(flag, stream, ignored);
  if (!ok)
    return Status::error(error);
  if (raised)
    return Status::error("a block table entry or sequence length is out of range (the pages "
                         "it names were not read)");
  return Status::ok();
}

Status attnc::launchCuda(const CompiledKernel &k, const KernelInfo &info,
                         const std::vector<TensorView> &tensors,
                         const std::map<std::string, double> &params,
                         void *stream, bool wait, const TilePlanData *plan,
                         TilePlanData *planOut) {
  std::vector<int> tensorOf(info.args.size(), -1);
  int t = 0;
  for (size_t n = 0; n < info.args.size(); ++n)
    if (info.args[n].isTensor)
      tensorOf[n] = t++;
  for (size_t n = 0; n < info.args.size(); ++n) {
    if (!info.args[n].isTensor)
      continue;
    const TensorView &view = tensors[tensorOf[n]];
    std::string where = "tensor '" + info.args[n].name + "'";
    if (view.numel() == 0)
      continue;
    if (!cuda::isDevicePointer(view.data))
      return Status::error(where + " is not in GPU memory; a CUDA kernel takes device pointers");
    if (reinterpret_cast<uintptr_t>(view.data) % 16)
      return Status::error(where + " is not 16-byte aligned");
  }
  const TensorView &q = tensors[0], &kv = tensors[1];
  int64_t batch = q.shape[0], heads = q.shape[1], qLen = q.shape[2], kvLen = kv.shape[2];
  if (batch == 0 || heads == 0 || qLen == 0)
    return Status::ok();
  if (batch > 65535 || heads > 65535)
    return Status::error("the CUDA kernel takes at most 65535 batches and 65535 heads");
  if (qLen > kMaxCudaPositions || kvLen > kMaxCudaPositions)
    return Status::error("the CUDA kernels take at most " + std::to_string(kMaxCudaPositions) +
                         " query and key positions (S = " + std::to_string(qLen) +
                         ", T = " + std::to_string(kvLen) + ")");
  const CudaKernel &layout = k.layout;
  int64_t keyTiles = (kvLen + layout.blockK - 1) / layout.blockK;
  int64_t smem = layout.smemBytes + (keyTiles + 15) / 16 * 16;
  if (!layout.decode && smem > cuda::maxSharedMemoryPerBlock())
    return Status::error("key length " + std::to_string(kvLen) +
                         " needs more shared memory than a CTA may have");
  std::string error;
  // attn.topk: the selection table (a hidden argument) and the pooled keys,
  // in stream-ordered memory given back on every return, after the launch.
  struct StreamBuffer {
    void *ptr = nullptr;
    void *stream = nullptr;
    ~StreamBuffer() {
      std::string ignored;
      if (ptr)
        cuda::freeAsync(ptr, stream, ignored);
    }
  } selection{nullptr, stream}, pooledKeys{nullptr, stream};
  int64_t selectQB = 0, selectKB = 0;
  if (layout.topk && k.topk && !planOut) {
    selectQB = topKQueryBlocks(*k.topk, qLen, kvLen);
    selectKB = topKKeyBlocks(*k.topk, kvLen);
    size_t tableBytes = static_cast<size_t>(batch * heads * selectQB * selectKB) * 4;
    size_t pooledBytes = static_cast<size_t>(batch * kv.shape[1] * selectKB * q.shape[3]) * 4;
    if (selectKB > 65535 || selectQB > 65535LL * layout.topkChunk)
      return Status::error("too many key or query blocks for the top-k selection kernels");
    if (!cuda::mallocAsync(&selection.ptr, std::max<size_t>(tableBytes, 4), stream, error) ||
        !cuda::mallocAsync(&pooledKeys.ptr, std::max<size_t>(pooledBytes, 4), stream, error))
      return Status::error(error);
  }
  auto tensorData = [&](int arg) -> void * {
    return arg == layout.topkArg ? selection.ptr : tensors[tensorOf[arg]].data;
  };
  auto tensorDim = [&](int arg, int dim) -> int64_t {
    if (arg != layout.topkArg)
      return tensors[tensorOf[arg]].shape[dim];
    int64_t shape[4] = {batch, heads, selectQB, selectKB};
    return shape[dim];
  };
  std::vector<uint64_t> slots(layout.slots.size(), 0);
  for (size_t n = 0; n < layout.slots.size(); ++n) {
    const CudaArgSlot &slot = layout.slots[n];
    void *at = &slots[n];
    switch (slot.kind) {
    case CudaArgSlot::tensor: {
      void *p = tensorData(slot.arg);
      std::memcpy(at, &p, sizeof(p));
      break;
    }
    case CudaArgSlot::tensorDim:
      slots[n] = static_cast<uint64_t>(tensorDim(slot.arg, slot.dim));
      break;
    case CudaArgSlot::size: {
      int64_t sizes[5] = {batch, heads, kv.shape[1], qLen, kvLen};
      slots[n] = static_cast<uint64_t>(sizes[slot.dim]);
      break;
    }
    case CudaArgSlot::scalar: {
      const ArgInfo &a = info.args[slot.arg];
      auto it = params.find(a.name);
      double value = it != params.end() ? it->second : *a.defaultValue;
      if (slot.scalarKind == CudaArgSlot::f32) {
        float f = static_cast<float>(value);
        std::memcpy(at, &f, sizeof(f));
      } else if (slot.scalarKind == CudaArgSlot::i32) {
        int32_t i = static_cast<int32_t>(value);
        std::memcpy(at, &i, sizeof(i));
      } else {
        slots[n] = static_cast<uint64_t>(static_cast<int64_t>(value));
      }
      break;
    }
    case CudaArgSlot::pageBytes: {
      const TensorView &view = tensors[tensorOf[slot.arg]];
      int64_t stride = view.effectiveStrides()[0];
      slots[n] = static_cast<uint64_t>(view.dtype == DType::q4 ? stride / 2
                                                               : stride * static_cast<int64_t>(dtypeSize(view.dtype)));
      break;
    }
    case CudaArgSlot::absent:
    case CudaArgSlot::classes: // filled below
      break;
    }
  }
  if (layout.decode)
    return launchPagedDecode(k, tensors, slots, stream, wait);
  // The selection first: pooled keys, then the top-k per query block (no
  // keys: nothing to select, and no key tile reads the table).
  if (selection.ptr && selectKB > 0 && selectQB > 0) {
    unsigned poolGrid[3] = {static_cast<unsigned>(selectKB),
                            static_cast<unsigned>(kv.shape[1]), static_cast<unsigned>(batch)};
    unsigned poolBlock[3] = {128, 1, 1};
    void *poolParams[2] = {slots.data(), &pooledKeys.ptr};
    int64_t chunk = layout.topkChunk;
    int64_t selectSmem = 4 * chunk * (q.shape[3] + selectKB);
    unsigned selectGrid[3] = {static_cast<unsigned>((selectQB + chunk - 1) / chunk),
                              static_cast<unsigned>(heads), static_cast<unsigned>(batch)};
    unsigned selectBlock[3] = {256, 1, 1};
    void *selectParams[2] = {slots.data(), &pooledKeys.ptr};
    if (selectSmem > cuda::maxSharedMemoryPerBlock())
      return Status::error("key length " + std::to_string(kvLen) +
                           " has too many blocks for the top-k selection kernel");
    if (!cuda::launch(k.topkPool, poolGrid, poolBlock, 0, stream, poolParams, error) ||
        !cuda::launch(k.topkSelect, selectGrid, selectBlock, static_cast<unsigned>(selectSmem),
                      stream, selectParams, error))
      return Status::error(error);
  }
  // Tile classes for the launch, when the mask's bounds scan tensors: a
  // table in stream-ordered memory, filled by its own kernel first.
  void *table = nullptr; // a per-launch table, freed after the launch
  int64_t queryTiles = (qLen + layout.blockQ - 1) / layout.blockQ;
  auto useTable = [&](void *t) {
    for (size_t n = 0; n < layout.slots.size(); ++n)
      if (layout.slots[n].kind == CudaArgSlot::classes)
        std::memcpy(&slots[n], &t, sizeof(t));
  };
  if (plan && plan->table) {
    if (plan->kernel != &k)
      return Status::error("the tile plan was built for another kernel");
    if (plan->batch != batch || plan->heads != heads || plan->qLen != qLen ||
        plan->kvLen != kvLen)
      return Status::error("the tile plan was built for other shapes (B=" +
                           std::to_string(plan->batch) + " Hq=" + std::to_string(plan->heads) +
                           " S=" + std::to_string(plan->qLen) + " T=" +
                           std::to_string(plan->kvLen) + ")");
    useTable(plan->table);
  } else if (layout.classTable && keyTiles > 0) {
    int64_t batches = layout.classUsesBatch ? batch : 1, headsC = layout.classUsesHead ? heads : 1;
    if (batches * headsC > 65535 || queryTiles > 65535)
      return Status::error("too many batches x heads or query tiles for the tile-class kernel");
    size_t bytes = static_cast<size_t>(batches * headsC * queryTiles * keyTiles);
    bool ok = planOut ? cuda::malloc(&table, bytes, error)
                      : cuda::mallocAsync(&table, bytes, stream, error);
    if (!ok)
      return Status::error(error);
    useTable(table);
    unsigned grid[3] = {static_cast<unsigned>((keyTiles + 127) / 128),
                        static_cast<unsigned>((queryTiles + layout.classQueryTiles - 1) /
                                              layout.classQueryTiles),
                        static_cast<unsigned>(batches * headsC)};
    // The split kernel shares the query tiles out by the grid's height: 8
    // per CTA ran it in 14 us against 15 with 16 and 19 with 2 (H200,
    // documents). $ATTNC_CUDA_CLASS_ROWS sets the height for experiments,
    // never below grid[1] (the AOT header's height: a CTA's share stays
    // within one pass of its shared rows).
    if (layout.classQueryTiles > 1) {
      constexpr int64_t kQueryTilesPerCta = 8;
      static const int64_t rowsEnv = [] {
        const char *e = std::getenv("ATTNC_CUDA_CLASS_ROWS");
        return e ? std::atoll(e) : int64_t(0);
      }();
      int64_t rows = rowsEnv > 0 ? rowsEnv
                                 : (queryTiles + kQueryTilesPerCta - 1) /
                                       kQueryTilesPerCta;
      grid[1] =
          static_cast<unsigned>(std::clamp<int64_t>(rows, grid[1], queryTiles));
    }
    unsigned block[3] = {128, 1, 1};
    void *argStruct = slots.data();
    if (!cuda::launch(k.classes, grid, block, 0, stream, &argStruct, error)) {
      std::string ignored;
      if (planOut)
        cuda::free(table);
      else
        cuda::freeAsync(table, stream, ignored);
      return Status::error(error);
    }
    if (planOut) {
      planOut->kernel = &k;
      planOut->batch = batch;
      planOut->heads = heads;
      planOut->qLen = qLen;
      planOut->kvLen = kvLen;
      planOut->table = table;
      planOut->bytes = bytes;
      return Status::ok();
    }
  }
  if (planOut)
    return Status::ok(); // nothing to plan
  unsigned grid[3] = {static_cast<unsigned>((qLen + layout.blockQ - 1) / layout.blockQ),
                      static_cast<unsigned>(heads), static_cast<unsigned>(batch)};
  unsigned block[3] = {static_cast<unsigned>(layout.threads), 1, 1};
  // The warp-specialized Hopper kernel also takes tensor maps of K and V
  // (rows of all (batch, KV head) planes), read in boxes of 64 columns.
  // Without keys it reads neither (and the driver refuses empty maps).
  cuda::TensorMap keyMap{}, valueMap{};
  void *kernelParams[3] = {slots.data(), &keyMap, &valueMap};
  if (layout.warpSpecialized && kvLen > 0) {
    const TensorView &v = tensors[2];
    unsigned long long planes = static_cast<unsigned long long>(kv.shape[0] * kv.shape[1]);
    if (!cuda::encodeTensorMap(keyMap, kv.data, kv.shape[3], kvLen, planes, 64, layout.blockK,
                               error) ||
        !cuda::encodeTensorMap(valueMap, v.data, v.shape[3], kvLen, planes, 64, layout.blockK,
                               error)) {
      std::string ignored;
      if (table)
        cuda::freeAsync(table, stream, ignored);
      return Status::error(error);
    }
  }
  bool launched =
      cuda::launch(k.function, grid, block, static_cast<unsigned>(smem), stream, kernelParams, error);
  std::string freeError;
  if (table && !cuda::freeAsync(table, stream, freeError) && launched)
    return Status::error(freeError);
  if (!launched)
    return Status::error(error);
  if (wait && !cuda::synchronize(error))
    return Status::error(error);
  return Status::ok();
}

Status Kernel::launch(const std::vector<TensorView> &tensors,
                      const std::map<std::string, double> &params, void *stream) const {
  if (!impl->isCuda)
    return run(tensors, params);
  if (Status st = check(tensors, params); !st)
    return st;
  return launchCuda(impl->current(), impl->info, tensors, params, stream,
                    /*wait=*/false);
}

Status Kernel::launch(const std::vector<TensorView> &tensors,
                      const std::map<std::string, double> &params, void *stream,
                      const TilePlan &plan) const {
  if (!impl->isCuda || plan.empty())
    return launch(tensors, params, stream);
  if (Status st = check(tensors, params); !st)
    return st;
  const CompiledKernel &current = impl->current();
  // A plan of the quick tier after the final one took over: its tiles have
  // the quick kernel's shape, so build the classes per launch instead.
  if (plan.data->kernel == impl.get() && &current != impl.get())
    return launchCuda(current, impl->info, tensors, params, stream,
                      /*wait=*/false);
  return launchCuda(current, impl->info, tensors, params, stream,
                    /*wait=*/false, plan.data.get());
}

Result<TilePlan> Kernel::planTiles(const std::vector<TensorView> &tensors,
                                   const std::map<std::string, double> &params,
                                   void *stream) const {
  if (Status st = check(tensors, params); !st)
    return st;
  TilePlan plan;
  // A top-k selection depends on q and k, which change every call: its
  // tables are built with every launch.
  const CompiledKernel &current = impl->current();
  if (!current.isCuda || !current.layout.classTable || current.topk)
    return plan;
  auto data = std::make_shared<TilePlanData>();
  if (Status st = launchCuda(current, impl->info, tensors, params, stream,
                             /*wait=*/false, nullptr, data.get());
      !st)
    return st;
  if (data->table)
    plan.data = std::move(data);
  return plan;
}


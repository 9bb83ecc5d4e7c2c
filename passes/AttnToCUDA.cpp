//===- AttnToCUDA.cpp - Emit a CUDA kernel for an attn program --*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The forward kernels: the variant's regions (CudaRegions.cpp) and defines,
// then a kernel template (portable mma.sync, Hopper wgmma, or its
// warp-specialized form). The paged form goes to PagedDecodeToCUDA.cpp. Why
// text into a template and not the gpu/nvgpu dialects: docs/cuda-backend.md.
//
//===----------------------------------------------------------------------===//

#include "passes/AttnToCUDA.h"
#include "passes/CudaEmission.h"
#include "dialects/attn/AttnOps.h"
#include "passes/KernelTemplates.h"
#include "passes/RegionInlining.h"
#include "passes/TileIntervals.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdlib>

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;
using namespace attnc::cuda_emit;

/// Whether an op of `root` (an op or a region), nested ones included,
/// satisfies `pred`.
template <typename Root>
static bool anyNested(Root &root, function_ref<bool(Operation *)> pred) {
  return root
      .walk([&](Operation *inner) {
        return pred(inner) ? WalkResult::interrupt() : WalkResult::advance();
      })
      .wasInterrupted();
}

/// Whether a region reads a tensor.
static bool readsTensor(Region &region) { return anyNested(region, isTensorRead); }

/// Whether an op of a region, with what it nests, computes from the region's
/// values and constants alone: it reads no tensor and uses no value from
/// outside the region (a param). A size (attn.size) counts as positional: it
/// is one scalar of the launch.
static bool fromPositions(Operation &o, Region &region) {
  return !anyNested(o, [&](Operation *inner) {
    return isTensorRead(inner) || llvm::any_of(inner->getOperands(), [&](Value v) {
             Operation *def = v.getDefiningOp();
             return !region.isAncestor(v.getParentRegion()) &&
                    (!def || !def->hasTrait<OpTrait::ConstantLike>());
           });
  });
}

/// Whether a whole region computes from positions (fromPositions).
static bool computesFromPositions(Region &region) {
  return region.empty() ||
         llvm::all_of(region.front(), [&](Operation &o) { return fromPositions(o, region); });
}

/// Whether some op of what a region computes per key, the ops that depend
/// on an argument flagged in `perKey`, satisfies `pred`. What varies with
/// neither (ALiBi's slope per head, a bias per row) lands in the row part
/// (emitSplitRegion) and is computed once per row.
static bool anyPerKey(Region &region, ArrayRef<bool> perKey,
                      function_ref<bool(Operation &)> pred) {
  if (region.empty())
    return false;
  llvm::DenseSet<Value> dependent = valuesDependingOn(region, perKey);
  return llvm::any_of(region.front(), [&](Operation &o) {
    return o.getNumResults() != 0 && dependent.contains(o.getResult(0)) && pred(o);
  });
}

LogicalResult attnc::emitCudaKernel(func::FuncOp fn, StringRef arch, CudaKernel &out,
                                    bool quickTier) {
  AttentionOp op;
  fn.walk([&](AttentionOp a) { op = a; });
  if (!op)
    return emitError(fn.getLoc(), "no attn.attention to emit for CUDA");
  MemRefType qType = op.getQuery().getType(), oType = op.getOutput().getType();
  Type elem = qType.getElementType();
  if (op.getMask().walk([](TopKOp) { return WalkResult::interrupt(); }).wasInterrupted())
    return emitError(op.getLoc(), "attn.topk needs its selection table; run "
                                  "attn-materialize-topk before emitting CUDA");
  if (int sm = cuda_emit::smNumber(arch); sm > 0 && sm < 80)
    return emitError(op.getLoc(), "the CUDA kernels need sm_80 or newer (bf16 mma.sync and "
                                  "cp.async), not ")
           << arch;
  if (elem.isF32())
    return emitError(op.getLoc(), "the CUDA target takes bf16 or f16 q, k and v (the tensor cores' "
                        "types); this spec has f32: convert the inputs, or pass --dtype=bf16");
  int64_t d = qType.getDimSize(3), dv = oType.getDimSize(3);
  // A top-k block selection: its table is a hidden argument the two
  // selection kernels fill (attn-materialize-topk), whose attribute holds
  // [top_k, block_q, block_k, causal].
  int topkArg = -1;
  ArrayAttr topkParams;
  for (BlockArgument arg : fn.getArguments())
    if (auto params = fn.getArgAttrOfType<ArrayAttr>(arg.getArgNumber(), "attn.topk");
        params && params.size() == 4) {
      topkArg = static_cast<int>(arg.getArgNumber());
      topkParams = params;
    }
  auto topkParam = [&](int n) { return cast<IntegerAttr>(topkParams[n]).getInt(); };
  std::optional<KVQuant> quant = op.getKvQuant();
  if (op.isPaged()) {
    // The decode kernel copies rows in 16-byte pieces; eight lanes share a
    // key, each reading its slice of the row in 32-bit words that sit in
    // one scale group.
    int64_t align = quant == KVQuant::q4 ? 64 : quant == KVQuant::q8 ? 32 : 16;
    if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv) || d % align || dv % align ||
        d > 256 || dv > 256)
      return emitError(op.getLoc(), "the CUDA paged decode kernel takes static head dims that are "
                                    "multiples of ")
             << align << " up to 256; got D = " << d << ", Dv = " << dv;
    if (quant) {
      int64_t perWord = *quant == KVQuant::q4 ? 8 : 4;
      int64_t gk = d / cast<MemRefType>(op.getKeyScale().getType()).getDimSize(3);
      int64_t gv = dv / cast<MemRefType>(op.getValueScale().getType()).getDimSize(3);
      if (gk % perWord || gv % 8)
        return emitError(op.getLoc(), "the CUDA paged decode kernel takes key scale groups of a "
                                      "multiple of ")
               << perWord << " features and value groups of a multiple of 8; got " << gk
               << " and " << gv;
    }
    if (128 % (dv / 8))
      return emitError(op.getLoc(), "the CUDA paged decode kernel takes value dims of 16, 32, 64, "
                                    "128 or 256 (8 features per thread, keys spread over 128 "
                                    "threads); got ")
             << dv;
    if (op.getStaticGroupSize() == 0)
      return emitError(op.getLoc(), "the CUDA paged decode kernel needs static head counts");
    return emitPagedDecode(fn, op, d, dv, arch, out);
  }
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv))
    return emitError(op.getLoc(), "the CUDA target needs static head dims; give them with -D");
  if (d % 8 || dv % 8 || d > 256 || dv > 256 || d <= 0 || dv <= 0)
    return emitError(op.getLoc(), "the CUDA target takes head dims that are multiples of 8 up to 256; "
                        "got D = ")
           << d << ", Dv = " << dv;

  ScheduleAttr schedule = op.getScheduleAttr();
  if (!schedule)
    return emitError(op.getLoc(), "the CUDA emitter needs a schedule (run attn-select-schedule)");
  int64_t blockQ = schedule.getBlockQ(), blockK = schedule.getBlockK();
  // Warps take 16 query rows each, or 32 (two row tiles sharing every K and
  // V fragment they load) once there are four warps and the accumulators fit.
  int64_t mTiles = blockQ == 128 && std::max(d, dv) <= 128 ? 2 : 1;
  if (blockQ % 16 || blockQ < 16 || (blockQ > 64 && mTiles == 1) || blockK % 16 ||
      blockK < 16 || blockK > 128)
    return emitError(op.getLoc(), "the portable CUDA kernel takes block_q in {16, 32, 48, 64} "
                                  "(or 128 with head dims up to 128) and block_k a multiple of "
                                  "16 up to 128; the schedule has ")
           << blockQ << " x " << blockK;
  out = CudaKernel();
  // Hopper: two warpgroups of 64 rows each, the matrix products as wgmma
  // from 128-byte-swizzled shared memory (head dims that are whole rows of
  // the swizzle pattern).
  out.hopper = arch == "sm_90a" && d == dv && (d == 64 || d == 128) && blockQ == 128 &&
               blockK == 64;
  if (out.hopper)
    mTiles = 1;
  // The Hopper kernel is warp-specialized (attn_fwd_ws.cuh): a TMA producer
  // warpgroup and two consumers with 232 registers each (three with 160 at
  // D = 64, below), room for 128-key tiles and two tiles' products in
  // flight. $ATTNC_CUDA_WS=0 selects the earlier kernel (two warpgroups, two
  // CTAs per SM, cp.async by every thread) for comparisons.
  const char *wsEnv = std::getenv("ATTNC_CUDA_WS");
  out.warpSpecialized =
      !quickTier && out.hopper && !(wsEnv && std::string(wsEnv) == "0");
  // Both Hopper kernels take 128-key tiles (one wgmma per k step for S,
  // half the per-tile softmax bookkeeping), the two-CTA one only at D = 64
  // without a mask: with mask code its 128-register cap would spill.
  if (out.warpSpecialized || (out.hopper && d == 64 && op.getMask().empty()))
    blockK = 128;
  // A top-k selection of key blocks of 64 or fewer keys: 64-key tiles, so a
  // picked 64-key block is one tile, not half of a masked 128-key one (MoBA
  // picks blocks of 64). $ATTNC_CUDA_WS_BLOCK_K=64|128 overrides it (for
  // comparisons).
  if (out.warpSpecialized) {
    if (topkParams && topkParam(2) <= 64)
      blockK = 64;
    if (const char *env = std::getenv("ATTNC_CUDA_WS_BLOCK_K"))
      blockK = std::string(env) == "64" ? 64 : 128;
  }
  // Consumer warpgroups of the warp-specialized kernel, 64 query rows each.
  // At D = 64 a tile's products take half as long as at D = 128 while its
  // softmax is as long, so a third consumer (192-row tiles) keeps the tensor
  // cores busy while two run their softmax: dense +20%, causal +10% at N =
  // 16384 on the H200. Its consumers have 160 registers, room for a mask
  // that computes from positions alone and a score that does, or whose
  // per-key part does on rows known to be long (ALiBi's slope, read once per
  // row: +4.6% at D = 64, N = 16384); sigmoid's split P spilled. Masked rows
  // shorter than 4096 keep fewer: a 192-row tile wastes more at the diagonal
  // and the ragged end (causal N = 1024: 11% slower).
  //
  // Where each CTA visits few key tiles, one consumer of 64 rows with two
  // CTAs per SM: a CTA's fixed costs (its start, the first tiles' latency,
  // the epilogue) then overlap the other CTA's products, which one CTA of
  // two consumers cannot hide. Documents +12% (D = 128) and +13% (D = 64);
  // at D = 64 the window +6% and causal N = 1024 +6%. Where CTAs visit many
  // tiles the ping-pong of two consumers wins (causal N = 16384 at D = 128:
  // 19% slower with one, the window at D = 128: 5%), so one consumer is for
  // masks that read a tensor per key (documents: ranges that data make
  // short) and, at D = 64, for masks with params (the window) or short
  // masked rows (not measured: long-ranged masks with params).
  //
  // $ATTNC_CUDA_WS_CONSUMERS=1|2|3 overrides it where the registers could
  // hold it (for comparisons).
  int consumers = 2;
  bool keysNearRows = false; // ranges that data make short: documents
  if (out.warpSpecialized) {
    bool threeFit = d == 64 && dv == 64 && op.getKernel() != KernelKind::sigmoid;
    int64_t qLen = qType.getDimSize(2);
    bool masked = !op.getMask().empty();
    bool shortMasked = masked && !ShapedType::isDynamic(qLen) && qLen < 4096;
    // The score's (s, b, h, i, j): per key means depending on s or j. One
    // that reads a tensor per row paid off only on long rows (ALiBi at D = 64:
    // +4.6% at N = 16384, -3.5% at 4096), so it needs them known.
    Region &score = op.getScore(), &mask = op.getMask();
    bool scoreFits = computesFromPositions(score) ||
                     (!anyPerKey(score, {true, false, false, false, true},
                                 [&](Operation &o) { return !fromPositions(o, score); }) &&
                      !ShapedType::isDynamic(qLen) && qLen >= 16384);
    // Data decide how many tiles a CTA visits where the mask reads a tensor
    // per key (a document id), and where a top-k selection picks the blocks
    // (MoBA: 118.7 against 116.6 TFLOP/s with two, H200, 2026-12-05). Listed
    // blocks pass the GPU conformance with one consumer too, but are left at
    // two until one is timed on them.
    bool listsBlocks = anyNested(mask, [](Operation *o) { return isa<ListedOp>(o); });
    bool readsPerKey = anyPerKey(mask, {false, false, false, true},
                                 [](Operation &o) { return readsTensor(&o); });
    keysNearRows = !topkParams && !listsBlocks && readsPerKey;
    bool dataDecidesRanges = topkParams || keysNearRows;
    bool maskHasParams = !computesFromPositions(mask) && !readsTensor(mask);
    if (dataDecidesRanges || (d == 64 && dv == 64 && (maskHasParams || shortMasked)))
      consumers = 1;
    else if (threeFit && computesFromPositions(mask) && scoreFits && !shortMasked)
      consumers = 3;
    if (const char *env = std::getenv("ATTNC_CUDA_WS_CONSUMERS")) {
      if (std::string(env) == "2")
        consumers = 2;
      else if (std::string(env) == "3" && threeFit)
        consumers = 3;
      else if (std::string(env) == "1")
        consumers = 1;
    }
    blockQ = 64 * consumers;
    // One consumer runs two CTAs per SM, whose shared memory must fit twice:
    // 64-key tiles past D = 64.
    if (consumers == 1 && std::max(d, dv) > 64)
      blockK = 64;
  }
  // The quick tier's kernels are named apart: its launch header and cubin
  // go together, not with the default form's (other threads, grids).
  out.entry = "attnc_" + fn.getSymName().str() + (quickTier ? "_quick" : "");
  out.threads = out.warpSpecialized ? 128 * (consumers + 1)
                                    : static_cast<int>(2 * blockQ / mTiles);
  out.blockQ = static_cast<int>(blockQ);
  out.blockK = static_cast<int>(blockK);
  int64_t dp = (d + 15) / 16 * 16, dvp = (dv + 15) / 16 * 16;
  // Stages of the warp-specialized kernel's K and V rings: two. A third does
  // not fit at D = 128; at D = 64, where a tile's products take half as
  // long, three or four measured the same as two (within 1%, H200), so the
  // copies are not what bounds it. $ATTNC_CUDA_WS_STAGES asks for more (for
  // comparisons), within what shared memory holds.
  int64_t stages = 2;
  if (out.warpSpecialized)
    if (const char *env = std::getenv("ATTNC_CUDA_WS_STAGES"))
      stages = std::clamp<int64_t>(std::atoi(env), 2, 4);
  // Hopper: 1024 bytes of slack to align the swizzled tiles; the
  // warp-specialized kernel adds four mbarriers per stage.
  auto hopperBytes = [&](int64_t n) {
    return 2 * (blockQ * d + n * blockK * d + n * blockK * dv) + 1024 +
           (out.warpSpecialized ? 32 * n : 0);
  };
  constexpr int64_t kMaxSharedBytes = 227 * 1024; // sm_90's per-CTA limit
  // One consumer runs two CTAs per SM: each gets half.
  int64_t sharedBytes = out.warpSpecialized && consumers == 1 ? kMaxSharedBytes / 2
                                                              : kMaxSharedBytes;
  while (stages > 2 && hopperBytes(stages) + 4096 > sharedBytes)
    --stages;
  out.wsStages = static_cast<int>(stages);
  out.smemBytes = out.hopper ? hopperBytes(stages)
                             : 2 * (blockQ * (dp + 8) + 2 * blockK * (dp + 8) +
                                    2 * blockK * (dvp + 8));

  std::string text;
  llvm::raw_string_ostream os(text);
  if (failed(emitArgsAndRegions(fn, op, os, out)))
    return failure();

  // The mask's interval bounds over a tile, built in a scratch block whose
  // arguments stand for the box and the sizes, then translated like a region.
  bool hasTileClass = !op.getMask().empty();
  if (hasTileClass) {
    // The bounds code is built from these dialects' ops.
    op.getContext()->loadDialect<arith::ArithDialect, memref::MemRefDialect, scf::SCFDialect>();
    // The block lives in a temporary op at the top of `fn`, so the ops
    // built into it sit in a real region (scf.for's builder needs one).
    OpBuilder ob = OpBuilder::atBlockBegin(&fn.getBody().front());
    auto holder = scf::ExecuteRegionOp::create(ob, op.getLoc(), TypeRange{});
    Block *scratch = new Block();
    holder.getRegion().push_back(scratch);
    for (int k = 0; k < 11; ++k)
      scratch->addArgument(ob.getIndexType(), op.getLoc());
    ImplicitLocOpBuilder b(op.getLoc(), op.getContext());
    b.setInsertionPointToEnd(scratch);
    TileBox box{scratch->getArgument(0), scratch->getArgument(1), scratch->getArgument(2),
                scratch->getArgument(3), scratch->getArgument(4), scratch->getArgument(5)};
    auto sizeOf = [&](int kind) -> Value {
      if (kind <= 4)
        return scratch->getArgument(6 + kind);
      return arith::ConstantIndexOp::create(b, kind == 5 ? d : dv);
    };
    TileClass cls = classifyTile(b, op.getMask(), box, sizeOf);
    // Bounds that scan tensors are worth computing once per launch.
    scratch->walk([&](scf::ForOp) { out.classTable = true; });
    out.classUsesBatch = !op.getMask().getArgument(0).use_empty();
    out.classUsesHead = !op.getMask().getArgument(1).use_empty();
    os << "ATTNC_DEV int attnc_tile_class(const AttncArgs &a, attnc_index b, attnc_index h, "
          "attnc_index iLo, attnc_index iHi, attnc_index jLo, attnc_index jHi) {\n";
    RegionEmitter em(op, fn, os);
    const char *boxNames[] = {"b", "h", "iLo", "iHi", "jLo", "jHi",
                              "a.B", "a.Hq", "a.Hkv", "a.S", "a.T"};
    for (int k = 0; k < 11; ++k)
      em.bind(scratch->getArgument(k), boxNames[k]);
    LogicalResult emitted = em.emitBlock(*scratch, 2);
    if (succeeded(emitted))
      os << "  return (" << em.nameOf(cls.mayKeep) << " ? 1 : 0) | ("
         << em.nameOf(cls.mayDrop) << " ? 2 : 0);\n}\n";
    // The bounds again, as a row part (the query tile's scans), a column
    // part (the key tile's) and the rest, so that the class kernel scans
    // each query tile's rows once and each key tile's columns once per CTA
    // of up to 16 query tiles, not both for every tile
    // (docs/cuda-backend.md).
    // $ATTNC_CUDA_CLASS_SPLIT=0 keeps the one-function form.
    LogicalResult splitEmitted = success(); // reports its own errors
    const char *splitEnv = std::getenv("ATTNC_CUDA_CLASS_SPLIT");
    // Only where a scan reads the query tile's positions alone or the key
    // tile's alone (document ids): a block mask's lookup of both stays in
    // the rest, and 16 tiles per thread would only serialize it.
    auto scansOneSide = [&] {
      SmallVector<bool> cols(11, false), rows(11, false);
      cols[4] = cols[5] = true;
      rows[2] = rows[3] = true;
      llvm::DenseSet<Value> onCols = valuesDependingOn(holder.getRegion(), cols);
      llvm::DenseSet<Value> onRows = valuesDependingOn(holder.getRegion(), rows);
      return llvm::any_of(*scratch, [&](Operation &o) {
        return isa<scf::ForOp>(o) && o.getNumResults() != 0 &&
               (!onCols.contains(o.getResult(0)) || !onRows.contains(o.getResult(0)));
      });
    };
    if (succeeded(emitted) && out.classTable && !quickTier &&
        !(splitEnv && std::atoi(splitEnv) == 0) && scansOneSide()) {
      Value zero32 = arith::ConstantIntOp::create(b, 0, 32);
      Value bits = arith::OrIOp::create(
          b, arith::SelectOp::create(b, cls.mayKeep, arith::ConstantIntOp::create(b, 1, 32), zero32),
          arith::SelectOp::create(b, cls.mayDrop, arith::ConstantIntOp::create(b, 2, 32), zero32));
      YieldOp::create(b, bits);
      // The launch bounds batches and heads by 65535 and lengths by
      // kMaxCudaPositions; the sizes get those bounds too, so that the
      // narrowing types nothing `int` that could overflow.
      const IndexBounds batchOrHead{0, 65535},
          position{-kMaxCudaPositions, kMaxCudaPositions + 1024},
          length{0, kMaxCudaPositions};
      SmallVector<RegionArg> args = {{"b", batchOrHead},          {"h", batchOrHead},
                                     {"iLo", position},           {"iHi", position},
                                     {"jLo", position},           {"jHi", position},
                                     {"a.B", batchOrHead, true},  {"a.Hq", batchOrHead, true},
                                     {"a.Hkv", batchOrHead, true}, {"a.S", length, true},
                                     {"a.T", length, true}};
      SmallVector<HoistedPart> parts = {
          {"attnc_tile_row", "AttncTileRow", "row", {0, 1, 2, 3}},
          {"attnc_tile_col", "AttncTileCol", "col", {0, 1, 4, 5}}};
      // Opt-in until timed on the GPU ($ATTNC_CUDA_CLASS_SCAN_UNROLL=N): the
      // parts' scans with N loads in flight. A part scans one tile's ids
      // (64 or 128) with 8 in flight, about 8 memory round trips per thread,
      // which is where most of the class kernel's 14 us likely go.
      if (const char *unroll = std::getenv("ATTNC_CUDA_CLASS_SCAN_UNROLL")) {
        int n = std::atoi(unroll);
        if (n >= 1 && n <= 128)
          for (HoistedPart &part : parts)
            part.scanUnroll = n;
      }
      splitEmitted = emitSplitRegion(op, fn, os, holder.getRegion(), args, parts, "int",
                                     "attnc_tile_class_at", nullptr);
      out.classQueryTiles = 16;
      os << "#define ATTNC_CLASS_SPLIT " << out.classQueryTiles << "\n";
    }
    // Drop the scratch ops before the block goes: they use values of `fn`.
    for (Operation &o : llvm::make_early_inc_range(llvm::reverse(*scratch))) {
      o.dropAllUses();
      o.erase();
    }
    scratch->dropAllUses();
    holder.erase();
    if (failed(emitted))
      return emitError(op.getLoc(), em.error);
    if (failed(splitEmitted))
      return failure();
  }

  double scale = op.getScale().convertToDouble();
  os << "\n#define ATTNC_KERNEL " << out.entry << "\n"
     << "#define ATTNC_D " << d << "\n#define ATTNC_DV " << dv << "\n"
     << "#define ATTNC_OUT " << dtypeCode(oType.getElementType()) << "\n"
     << "#define ATTNC_BLOCK_M " << blockQ << "\n"
     << "#define ATTNC_MTILES " << mTiles << "\n"
     << "#define ATTNC_WGMMA " << (out.hopper ? 1 : 0) << "\n"
     << "#define ATTNC_WS " << (out.warpSpecialized ? 1 : 0) << "\n";
  if (out.warpSpecialized)
    os << "#define ATTNC_WS_CONSUMERS " << consumers << "\n";
  os << "#define ATTNC_BLOCK_N " << blockK << "\n"
     << "#define ATTNC_SCALE " << floatLiteral(scale) << "\n";
  emitVariantDefines(op, os);
  os << "#define ATTNC_HAS_TILE_CLASS " << (hasTileClass ? 1 : 0) << "\n"
     << "#define ATTNC_CLASS_TABLE " << (out.classTable ? 1 : 0) << "\n";
  if (out.classTable)
    os << "#define ATTNC_CLASS_KERNEL " << out.classEntry() << "\n"
       << "#define ATTNC_CLASS_USES_B " << (out.classUsesBatch ? 1 : 0) << "\n"
       << "#define ATTNC_CLASS_USES_H " << (out.classUsesHead ? 1 : 0) << "\n";
  // The two-CTA Hopper kernel: registers capped for two CTAs per SM, so
  // that while one warpgroup runs its softmax another keeps the tensor
  // cores busy (+21% at D = 128 on the H100, docs/cuda-backend.md). The
  // warp-specialized kernel is one CTA per SM. $ATTNC_CUDA_MIN_BLOCKS
  // overrides it for tuning; the source, hence the cache key, records it.
  int minBlocks = out.hopper && (!out.warpSpecialized || consumers == 1) ? 2 : 1;
  if (const char *env = std::getenv("ATTNC_CUDA_MIN_BLOCKS"))
    minBlocks = std::max(1, std::atoi(env));
  os << "#define ATTNC_MIN_BLOCKS " << minBlocks << "\n";
  // A score that reads tensors runs on masked elements too, branch-free, so
  // that its loads fold across a tile; one that reads nothing keeps the
  // branch (softcap's tanh on every masked element measured 2.6% slower).
  // The mask's and score's row and column parts run once per row and
  // column of a tile (CudaRegions.cpp, emitSplitRegion);
  // $ATTNC_CUDA_SPLIT_REGIONS=0 evaluates whole regions per element, as
  // before (for comparisons).
  const char *splitEnv = std::getenv("ATTNC_CUDA_SPLIT_REGIONS");
  os << "#define ATTNC_SPLIT_REGIONS " << (splitEnv && std::atoi(splitEnv) == 0 ? 0 : 1) << "\n";
  os << "#define ATTNC_SCORE_READS " << (readsTensor(op.getScore()) ? 1 : 0) << "\n"
     << "#define ATTNC_SCALE_POSITIVE " << (scale > 0 ? 1 : 0) << "\n";
  // The running max moves only past a slack of 8 (log2 units), so most key
  // tiles skip O's rescale: +5% for the warp-specialized kernel at Dv = 128
  // on the H200. At Dv = 64 the rescale is half as long and skipping it
  // measured 6-8% slower, so those kernels rescale every tile, as do the
  // two-CTA and portable kernels, where it was not measured.
  // $ATTNC_CUDA_RESCALE_SLACK sets another slack; a negative one rescales
  // every tile (for comparisons).
  int rescaleSlack = out.warpSpecialized && dv >= 128 ? 8 : -1;
  if (const char *env = std::getenv("ATTNC_CUDA_RESCALE_SLACK"))
    rescaleSlack = std::clamp(std::atoi(env), -1, 12); // f16 holds weights up to 2^12
  os << "#define ATTNC_RESCALE_SLACK " << rescaleSlack << "\n";
  os << kAttnFwdCommonCuh << kAttnTileClassesCuh << kAttnFwdMmaCuh;
  // $ATTNC_NVRTC_OPTIONS (extra NVRTC options, for compile-time
  // comparisons): named in the source, so the cubin caches key on them.
  if (const char *nvrtcEnv = std::getenv("ATTNC_NVRTC_OPTIONS"))
    os << "// ATTNC_NVRTC_OPTIONS=" << nvrtcEnv << "\n";
  if (out.warpSpecialized) {
    // $ATTNC_CUDA_PV_N=64 splits each P V product in two (for comparisons).
    const char *pvEnv = std::getenv("ATTNC_CUDA_PV_N");
    // $ATTNC_CUDA_TRACE=N prints the phase times of every N-th CTA (a
    // profiling aid, docs/cuda-backend.md).
    const char *traceEnv = std::getenv("ATTNC_CUDA_TRACE");
    // $ATTNC_CUDA_DESC_BASE=0 converts every operand address into a wgmma
    // descriptor again, as before base-plus-offset descriptors (for
    // comparisons).
    const char *descEnv = std::getenv("ATTNC_CUDA_DESC_BASE");
    // The CTAs' order (attnc_cta_tile in attn_fwd_ws.cuh): planes (batch,
    // head) one after another, or (0) all planes' query tiles interleaved,
    // query tile by query tile. Interleaved, documents ran 3.5-4.3% faster
    // (their keys are near their rows, so the launch's keys in flight stay
    // few); causal N = 16384 ran 2-5% slower with groups of 4 or more planes
    // (the keys of every plane in flight at once), N = 1024 and GQA no
    // faster (H200, 2026-12-05, docs/cuda-backend.md). $ATTNC_CUDA_PLANE_GROUP=G
    // sets groups of G planes (for comparisons).
    int planeGroup = keysNearRows ? 0 : 1;
    if (const char *env = std::getenv("ATTNC_CUDA_PLANE_GROUP")) {
      char *end = nullptr;
      long g = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && g >= 0 && g <= 65535)
        planeGroup = static_cast<int>(g); // anything else: the default
    }
    os << "#define ATTNC_WS_STAGES " << out.wsStages << "\n"
       << "#define ATTNC_PLANE_GROUP " << planeGroup << "\n"
       << "#define ATTNC_WS_PV_N " << (pvEnv && std::string(pvEnv) == "64" ? 64 : 128) << "\n"
       << "#define ATTNC_WS_DESC_BASE " << (descEnv && std::string(descEnv) == "0" ? 0 : 1)
       << "\n"
       << "#define ATTNC_TRACE " << (traceEnv ? std::max(0, std::atoi(traceEnv)) : 0) << "\n"
       << kAttnFwdWsCuh;
  }
  // The selection kernels of a top-k block selection.
  if (topkParams) {
    out.topk = true;
    out.topkArg = topkArg;
    out.topkBlockQ = topkParam(1);
    out.topkBlockK = topkParam(2);
    os << "\n#define ATTNC_TOPK_POOL " << out.entry << "_topk_pool\n"
       << "#define ATTNC_TOPK_SELECT " << out.entry << "_topk\n"
       << "#define ATTNC_TOPK_TABLE x" << topkArg << "\n"
       << "#define ATTNC_TOPK_TABLE_d2 x" << topkArg << "_d2\n"
       << "#define ATTNC_TOPK_TABLE_d3 x" << topkArg << "_d3\n"
       << "#define ATTNC_TOPK_K " << topkParam(0) << "\n"
       << "#define ATTNC_TOPK_BQ " << topkParam(1) << "\n"
       << "#define ATTNC_TOPK_BK " << topkParam(2) << "\n"
       << "#define ATTNC_TOPK_CAUSAL " << topkParam(3) << "\n"
       << "#define ATTNC_TOPK_CHUNK " << out.topkChunk << "\n";
    os << kAttnTopkCuh;
  }
  out.source = std::move(text);
  return success();
}

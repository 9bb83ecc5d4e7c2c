//===- AttnToCPU.cpp - Lower attn.attention to a CPU loop nest --*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Rewrites each attn.attention into a fused online-softmax loop nest on
// scf/vector/memref/math. The work is split into items (batch, query head,
// query tile); the enclosing function gains two index arguments, the first
// and one-past-last item, so the runtime's thread pool can hand out ranges.
//
// Per item and query row the kernel keeps the row's running max `m`, sum `l`
// and a vector accumulator; per key tile it evaluates scores (dot products
// vectorized over the head dim, mask and score regions inlined), rescales the
// accumulator once, then adds `p * v` vectorized over the value dim.
//
// This file is the pass: it checks the op, sizes the scratch buffers and
// hands them to the builder in CpuLowering.h, whose loop nest is in
// CpuLoopNest.cpp (a row group's work on a key tile in CpuRowGroup.cpp) and
// whose tensor and page reads are in CpuTensorAccess.cpp.
//
//===----------------------------------------------------------------------===//

#include "passes/CpuLowering.h"
#include "passes/Passes.h"
#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace attnc {
#define GEN_PASS_DEF_CONVERTATTNTOCPUPASS
#include "passes/Passes.h.inc"
} // namespace attnc

using namespace mlir;
using namespace attnc::attn;
using attnc::cpu_lowering::Lowering;

attnc::CpuItemShape attnc::cpuItemShape(AttentionOp op, int64_t blockQ) {
  CpuItemShape shape;
  shape.queriesPerItem = blockQ;
  // Paged decode packs a KV head's query heads into one item. The mask's
  // tile bounds take one head, so a mask that reads h keeps items per head.
  int64_t group = op.getStaticGroupSize();
  bool maskUsesHead = !op.getMask().empty() && !op.getMask().getArgument(1).use_empty();
  if (op.isPaged() && group > 1 && !maskUsesHead) {
    shape.headsPerItem = group;
    shape.queriesPerItem = std::max<int64_t>(1, blockQ / group);
  }
  return shape;
}

namespace {
struct ConvertAttnToCPUPass
    : attnc::impl::ConvertAttnToCPUPassBase<ConvertAttnToCPUPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp fn = getOperation();
    SmallVector<AttentionOp> ops(fn.getOps<AttentionOp>());
    if (ops.empty())
      return;
    if (ops.size() > 1) {
      fn.emitError("convert-attn-to-cpu: expects one attn.attention per "
                   "function, found ")
          << ops.size();
      return signalPassFailure();
    }
    // Lanes are unrolled at compile time: a width of millions would build
    // millions of ops.
    if (vectorWidth <= 0 || vectorWidth > 64 ||
        (vectorWidth & (vectorWidth - 1))) {
      fn.emitError("convert-attn-to-cpu: vector-width must be a power of two "
                   "from 1 to 64");
      return signalPassFailure();
    }
    if (int8Dot != "off" && int8Dot != "q4" && int8Dot != "all") {
      fn.emitError("convert-attn-to-cpu: int8-dot must be off, q4 or all, got '")
          << int8Dot << "'";
      return signalPassFailure();
    }
    AttentionOp op = ops.front();
    if (op.getKvQuant() == KVQuant::q4 && vectorWidth < 2) {
      op.emitOpError("with q4 codes needs a vector width of at least 2 (two codes per byte)");
      return signalPassFailure();
    }
    ScheduleAttr schedule = op.getScheduleAttr();
    if (!schedule) {
      op.emitOpError("has no schedule; run attn-select-schedule first");
      return signalPassFailure();
    }
    WalkResult selects = op.getMask().walk([](TopKOp t) {
      t.emitOpError("needs its selection table; run attn-materialize-topk first");
      return WalkResult::interrupt();
    });
    if (selects.wasInterrupted())
      return signalPassFailure();

    // The work range arguments come last; paged kernels take the split-KV
    // phase, split count and partials before them (CpuLowering.h).
    Location loc = op.getLoc();
    MLIRContext *ctx = &getContext();
    unsigned n = fn.getNumArguments();
    Type indexTy = IndexType::get(ctx);
    SmallVector<Type> added;
    if (op.isPaged())
      added = {indexTy, indexTy, MemRefType::get({ShapedType::kDynamic}, Float32Type::get(ctx))};
    added.append({indexTy, indexTy});
    SmallVector<unsigned> at(added.size(), n);
    SmallVector<DictionaryAttr> attrs(added.size(), DictionaryAttr::get(ctx));
    SmallVector<Location> locs(added.size(), loc);
    if (failed(fn.insertArguments(at, added, attrs, locs)))
      return signalPassFailure();
    unsigned range = fn.getNumArguments() - 2;
    Value workBegin = fn.getArgument(range), workEnd = fn.getArgument(range + 1);

    // Scratch buffers live in the entry block: scf.for bodies are not
    // allocation scopes, and an alloca there would grow the stack per row.
    ImplicitLocOpBuilder b(loc, op);
    Value kTAllBytes, vAllBytes;
    Lowering low(op, b, vectorWidth, skipTiles);
    attnc::CpuItemShape items = attnc::cpuItemShape(op, schedule.getBlockQ());
    low.pack = items.headsPerItem;
    low.blockQ = items.queriesPerItem;
    low.blockK = schedule.getBlockK();
    Value q = op.getQuery(), k = op.getKey();
    // AMX: bf16 operands whose head and value dims are whole 32-element
    // chunks of a tile row, 16-lane vectors for the rows' softmax.
    auto staticChunks = [](Value mem) {
      int64_t d = cast<MemRefType>(mem.getType()).getDimSize(3);
      return !ShapedType::isDynamic(d) && d % 32 == 0;
    };
    auto isBF16 = [](Value mem) { return cast<MemRefType>(mem.getType()).getElementType().isBF16(); };
    // Softmax only: a sigmoid's weights are not normalised, so rounding
    // them to bf16 for the tiles puts long rows past the bf16 tolerance.
    low.amx = amx && vectorWidth == 16 && op.getKernel() == KernelKind::softmax &&
              !op.isPaged() && !op.getKvQuant() && isBF16(q) &&
              isBF16(k) && isBF16(op.getValue()) && staticChunks(q) &&
              staticChunks(op.getValue()) && low.blockK % 32 == 0;
    low.amxDot = low.amx && amxDot;
    low.fastExp = fastExp && vectorWidth == 16;
    low.keyCacheFloats = std::max<int64_t>(0, keyCacheFloats);
    // int8 scores (CpuDecodeDots.cpp): quantized K, a bf16 or f16 q (the two
    // int8 terms are finer than their rounding, not than f32's), whole
    // 64-byte loads of codes per key row and lanes that each fall inside
    // one scale group.
    bool int8Keys = op.getKvQuant() && (int8Dot == "all" ||
                                        (int8Dot == "q4" && *op.getKvQuant() == KVQuant::q4));
    if (int8Keys && vectorWidth == 16) {
      Type qElt = cast<MemRefType>(q.getType()).getElementType();
      int64_t d = cast<MemRefType>(q.getType()).getDimSize(3);
      int64_t groups = cast<MemRefType>(op.getKeyScale().getType()).getDimSize(3);
      int64_t perLane = low.int8FeaturesPerLane();
      low.int8Dot = (qElt.isBF16() || qElt.isF16()) && !ShapedType::isDynamic(d) &&
                    !ShapedType::isDynamic(groups) && d % perLane == 0 && d % groups == 0 &&
                    (d / groups) % perLane == 0;
      if (low.int8Dot)
        low.int8Lanes = (d + low.int8ChunkFeatures() - 1) / low.int8ChunkFeatures() * 16;
    }
    // bf16 scores (CpuDecodeDots.cpp): bf16 q and keys, whole 32-feature
    // pairs per row.
    if (bf16Dot && vectorWidth == 16 && !op.getKvQuant() && isBF16(q) && isBF16(k)) {
      int64_t d = cast<MemRefType>(q.getType()).getDimSize(3);
      low.bf16Dot = !ShapedType::isDynamic(d) && d % 32 == 0;
    }
    if (op.isPaged()) {
      low.phase = fn.getArgument(n);
      low.splits = fn.getArgument(n + 1);
      low.partials = fn.getArgument(n + 2);
    }
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&fn.getBody().front());
      auto dim = [&](Value mem, int64_t d) -> Value {
        return memref::DimOp::create(b, mem, d);
      };
      low.batch = dim(q, 0);
      low.qHeads = dim(q, 1);
      low.qLen = dim(q, 2);
      low.headDim = dim(q, 3);
      low.kvHeads = dim(k, 1);
      low.valueDim = dim(op.getOutput(), 3);
      low.group = arith::DivSIOp::create(b, low.qHeads, low.kvHeads);
      if (op.isPaged()) {
        low.pageSize = dim(k, 2); // lengths are per batch: see emitItem
      } else {
        low.kvLen = dim(k, 2);
        low.queryOffset = op.getAlign() == QueryAlign::end
                              ? arith::SubIOp::create(b, low.kvLen, low.qLen).getResult()
                              : low.idx(0);
      }
      Value w = low.idx(vectorWidth);
      auto padded = [&](Value size) -> Value {
        return arith::MulIOp::create(
            b, arith::CeilDivSIOp::create(b, size, w), w);
      };
      int64_t rows = low.kRows;
      int64_t rowStep = low.amx ? 32 : rows;
      int64_t bqPad = (low.pack * low.blockQ + rowStep - 1) / rowStep * rowStep;
      // Scores and P.V step two vectors at a time: pad their dims to 2W.
      int64_t w2 = 2 * vectorWidth;
      int64_t bkPad = (low.blockK + w2 - 1) / w2 * w2;
      low.dPad = padded(low.headDim);
      Value w2v = low.idx(w2);
      low.dvPad = arith::MulIOp::create(
          b, arith::CeilDivSIOp::create(b, low.valueDim, w2v), w2v);
      low.bkPad = low.idx(bkPad);
      // Every scratch buffer starts on a cache line: a 64-byte vector or
      // tile row that straddles two lines costs two accesses (AMX tile
      // loads and stores most of all).
      IntegerAttr cacheLine = b.getI64IntegerAttr(64);
      auto flat = [&](Value n) -> Value {
        auto type = MemRefType::get({ShapedType::kDynamic}, b.getF32Type());
        return memref::AllocaOp::create(b, type, ValueRange{n}, cacheLine);
      };
      auto fixed = [&](int64_t n) -> Value {
        return memref::AllocaOp::create(b, MemRefType::get({n}, b.getF32Type()), cacheLine);
      };
      low.qBuf = flat(arith::MulIOp::create(b, low.idx(bqPad), low.dPad));
      low.kTBuf = flat(arith::MulIOp::create(b, low.dPad, low.bkPad));
      low.vBuf = flat(arith::MulIOp::create(b, low.bkPad, low.dvPad));
      low.accBuf = flat(arith::MulIOp::create(b, low.idx(bqPad), low.dvPad));
      // A typed view of `bytes` (i8) holding `n` elements of `elt`.
      auto view = [&](Value bytes, Type elt, Value n) -> Value {
        return memref::ViewOp::create(b, MemRefType::get({ShapedType::kDynamic}, elt), bytes,
                                      low.idx(0), ValueRange{n});
      };
      if (!op.isPaged()) {
        // kT of a whole head, a [Dp][BKp] block per key tile (CpuLowering.h);
        // with AMX, bf16 VNNI tiles of the same element count.
        low.tileFloats = arith::MulIOp::create(b, low.dPad, low.bkPad);
        low.keyTiles = arith::CeilDivSIOp::create(b, low.kvLen, low.idx(low.blockK));
        Value floats;
        if (low.amx) {
          floats = arith::MulIOp::create(b, low.keyTiles, low.tileFloats);
          low.useHeadKT = arith::CmpIOp::create(b, arith::CmpIPredicate::sle, floats,
                                                low.idx(low.keyCacheFloats));
          low.cachedKeyTiles = low.keyTiles;
        } else {
          // A head past the cap keeps its first tiles in the cache and
          // transposes the rest per item: a gentle slope past T = 16K at
          // D = 128, not a cliff.
          low.cachedKeyTiles = arith::MinSIOp::create(
              b, low.keyTiles,
              arith::DivUIOp::create(b, low.idx(low.keyCacheFloats), low.tileFloats));
          floats = arith::MulIOp::create(b, low.cachedKeyTiles, low.tileFloats);
          low.useHeadKT = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, low.cachedKeyTiles,
                                                low.idx(0));
        }
        Value vElements;
        if (low.amx) {
          // The head's V tiles in pairs too ([BKp/2][Dvp][2] per tile).
          low.vTileElems = arith::MulIOp::create(b, low.bkPad, low.dvPad);
          Value vFloats = arith::MulIOp::create(b, low.keyTiles, low.vTileElems);
          low.useHeadKT = arith::AndIOp::create(
              b, low.useHeadKT,
              arith::CmpIOp::create(b, arith::CmpIPredicate::sle, vFloats,
                                    low.idx(low.keyCacheFloats)));
          vElements = arith::SelectOp::create(b, low.useHeadKT, vFloats, low.idx(2));
          vAllBytes = memref::AllocOp::create(
              b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type()),
              ValueRange{arith::MulIOp::create(b, vElements, low.idx(2))}, cacheLine);
        }
        Value elements = arith::SelectOp::create(b, low.useHeadKT, floats, low.idx(2));
        kTAllBytes = memref::AllocOp::create(
            b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type()),
            ValueRange{arith::MulIOp::create(b, elements, low.idx(low.amx ? 2 : 4))}, cacheLine);
        if (low.amx) {
          low.kTAll = view(kTAllBytes, b.getBF16Type(), elements);
          low.kTAll32 = view(kTAllBytes, b.getI32Type(),
                             arith::DivUIOp::create(b, elements, low.idx(2)));
          low.vAll = view(vAllBytes, b.getBF16Type(), vElements);
        } else {
          low.kTAll = view(kTAllBytes, b.getF32Type(), elements);
        }
        low.kTDone = memref::AllocOp::create(
            b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type()),
            ValueRange{arith::SelectOp::create(b, low.useHeadKT, low.cachedKeyTiles, low.idx(1))});
        // A failed malloc (null) falls back to per-item transposes, not a crash.
        auto allocated = [&](Value mem) -> Value {
          return arith::CmpIOp::create(
              b, arith::CmpIPredicate::ne,
              memref::ExtractAlignedPointerAsIndexOp::create(b, mem), low.idx(0));
        };
        low.useHeadKT = arith::AndIOp::create(
            b, low.useHeadKT,
            arith::AndIOp::create(b, allocated(kTAllBytes), allocated(low.kTDone)));
        if (vAllBytes)
          low.useHeadKT = arith::AndIOp::create(b, low.useHeadKT, allocated(vAllBytes));
        low.kTHead = memref::AllocaOp::create(b, MemRefType::get({2}, b.getIndexType()));
        for (int64_t k = 0; k < 2; ++k)
          memref::StoreOp::create(b, low.idx(-1), low.kTHead, ValueRange{low.idx(k)});
      }
      if (op.isPaged())
        low.slotFloats = arith::MulIOp::create(
            b, low.idx(low.pack * low.blockQ),
            arith::AddIOp::create(b, low.valueDim, low.idx(2)));
      low.sBuf = fixed(rows * bkPad);
      low.mBuf = fixed(bqPad);
      low.lBuf = fixed(bqPad);
      low.corrBuf = fixed(rows);
      if (low.bf16Dot)
        low.qBF16 = memref::AllocaOp::create(
            b, MemRefType::get({rows * cast<MemRefType>(q.getType()).getDimSize(3)}, b.getI16Type()),
            cacheLine);
      if (low.int8Dot) {
        int64_t lanes = rows * low.int8Lanes;
        low.qInt8 = memref::AllocaOp::create(
            b, MemRefType::get({rows * low.int8RowStride()}, b.getI8Type()), cacheLine);
        low.qLaneScale = fixed(lanes);
        low.qLaneOffset =
            memref::AllocaOp::create(b, MemRefType::get({lanes}, b.getI32Type()), cacheLine);
        low.clearInt8Rows();
      }
      if (low.amx) {
        int64_t d = cast<MemRefType>(q.getType()).getDimSize(3);
        int64_t dv = cast<MemRefType>(op.getValue().getType()).getDimSize(3);
        auto scratch = [&](int64_t n, Type elt) -> Value {
          int64_t bytes = n * elt.getIntOrFloatBitWidth() / 8;
          Value raw = memref::AllocaOp::create(b, MemRefType::get({bytes}, b.getI8Type()), cacheLine);
          return view(raw, elt, low.idx(n));
        };
        low.qAmx = scratch(bqPad * d, b.getBF16Type());
        Value kBytes = memref::AllocaOp::create(b, MemRefType::get({d * bkPad * 2}, b.getI8Type()),
                                                 cacheLine);
        low.kVnniBuf = view(kBytes, b.getBF16Type(), low.idx(d * bkPad));
        low.kVnni32 = view(kBytes, b.getI32Type(), low.idx(d * bkPad / 2));
        low.vVnni = scratch(bkPad * dv, b.getBF16Type());
        low.sAll = scratch(bqPad * bkPad, b.getF32Type());
        low.pAmx = scratch(bqPad * bkPad, b.getBF16Type());
        low.corrAll = scratch(bqPad, b.getF32Type());
        low.rowStat = scratch(bqPad, b.getF32Type());
        low.rowBias = scratch(bqPad, b.getF32Type());
        // amxDot's 32 x 32 blocks of a PARTIAL tile that may keep a key.
        low.blockKeep = memref::AllocaOp::create(
            b, MemRefType::get({(bqPad / 32) * (bkPad / 32)}, b.getI8Type()));
      }
    }
    low.emit(workBegin, workEnd);
    if (vAllBytes)
      memref::DeallocOp::create(b, vAllBytes);
    if (kTAllBytes) {
      memref::DeallocOp::create(b, kTAllBytes);
      memref::DeallocOp::create(b, low.kTDone);
    }
    op.erase();
    // The lowered function is an entry point for the JIT and AOT headers.
    // The frontend's attn.* argument notes (names, dims) were read off
    // before lowering; LLVM has no use for them.
    fn->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      for (NamedAttribute attr : llvm::to_vector(fn.getArgAttrDict(i) ? fn.getArgAttrDict(i).getValue() : ArrayRef<NamedAttribute>{}))
        if (attr.getName().strref().starts_with("attn."))
          fn.removeArgAttr(i, attr.getName());
  }
};
} // namespace

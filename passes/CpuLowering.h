//===- CpuLowering.h - The CPU loop nest's builder -----------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Private to passes/: the state and helpers convert-attn-to-cpu builds one
// attn.attention's loop nest with. AttnToCPU.cpp (the pass) sets up the
// sizes and scratch buffers, CpuTensorAccess.cpp reads and writes tensors
// and pages (bf16 bits, dequantization, block tables), CpuLoopNest.cpp
// emits the items and key tiles, CpuRowGroup.cpp a row group's work on a
// key tile (CpuAmxTiles.cpp and CpuDecodeDots.cpp its AMX and dot-product
// forms).
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_CPULOWERING_H
#define ATTNC_PASSES_CPULOWERING_H

#include "dialects/attn/AttnOps.h"
#include "passes/RegionInlining.h"
#include "passes/TileIntervals.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/DenseMap.h"

namespace attnc {
namespace cpu_lowering {

inline constexpr double kLog2e = 1.4426950408889634;
/// 2^f on [0, 1], highest degree first, fitted for relative error
/// (Lowering::exp2Avx512). The cubic's 7.5e-5 is below bf16's rounding of
/// the weights it makes (the AMX tiles'); the quintic's 7.5e-8 is about an
/// f32 ulp, for f32 softmax and sigmoid weights (fastExp).
inline constexpr double kExp2Cubic[] = {0.07802452266443176, 0.22606715539313021,
                                        0.695833540506448, 0.99992521856401};
inline constexpr double kExp2Quintic[] = {0.0018775764948289967, 0.008989340507387448,
                                          0.05582631772369269,   0.24015361714745706,
                                          0.6931530731892589,    0.9999999250637192};

/// Everything the loop nest needs that does not change per row.
struct Lowering {
  Lowering(attn::AttentionOp op, mlir::ImplicitLocOpBuilder &b, int64_t width,
           bool skipTiles)
      : op(op), b(b), width(width), skipTiles(skipTiles), kRows(width >= 16 ? 8 : 4) {}

  attn::AttentionOp op;
  mlir::ImplicitLocOpBuilder &b;
  int64_t width;
  bool skipTiles;
  mlir::Value batch = {}, qHeads = {}, kvHeads = {}, qLen = {}, kvLen = {};
  mlir::Value headDim = {}, valueDim = {}, group = {}, queryOffset = {};
  /// Paged form: tokens per page; kvLen and queryOffset are per batch.
  mlir::Value pageSize = {};
  /// Query heads per item (attnc::cpuItemShape) and, within an item, the
  /// queries per head: row rr is head h + rr / itemQueries, query
  /// r0 + rr % itemQueries.
  int64_t pack = 1;
  mlir::Value itemQueries = {};
  /// The head and query index of row `rr` of the item at (h, r0).
  std::pair<mlir::Value, mlir::Value> rowOf(mlir::Value h, mlir::Value r0, mlir::Value rr) {
    if (pack == 1)
      return {h, addi(r0, rr)};
    return {addi(h, mlir::arith::DivUIOp::create(b, rr, itemQueries)),
            addi(r0, mlir::arith::RemUIOp::create(b, rr, itemQueries))};
  }
  // Scratch, all flat f32: q rows scaled [BQ][Dp], K tile transposed
  // [Dp][BKp], V tile [BKp][Dvp], scores of a row group [R][BKp], the
  // accumulator [BQ][Dvp], per-row max and sum [BQ], per-row rescale [R].
  mlir::Value qBuf = {}, kTBuf = {}, vBuf = {}, sBuf = {}, accBuf = {};
  mlir::Value mBuf = {}, lBuf = {}, corrBuf = {};
  mlir::Value dPad = {}, dvPad = {}, bkPad = {};
  // A cache of one (batch, KV head)'s transposed K tiles for the call:
  // tile t at t * tileFloats, laid out as kTBuf ([Dp][BKp]), transposed the
  // first time an item of the call needs it (kTDone[t]). The consecutive
  // items of a call's range (query tiles of one head, mostly) then share
  // each transpose instead of repeating it. Heap scratch, for non-paged K,
  // used for as many tiles as fit keyCacheFloats (the rest are transposed into
  // kTBuf per item); kTHead holds the (b, hk) it caches. Blocks per tile,
  // not one [Dp][T] array: rows T floats apart would each sit on their own
  // page, and the score loop would miss the TLB on every feature.
  mlir::Value kTAll = {}, kTDone = {}, kTHead = {}, tileFloats = {}, useHeadKT = {};
  /// The vector path caches the first cachedKeyTiles tiles (all of them
  /// when they fit the cap; with AMX, all or none).
  mlir::Value keyTiles = {}, cachedKeyTiles = {};
  /// Whether the key tile at `kt` is in the head's cache.
  mlir::Value tileInCache(mlir::Value kt) {
    return mlir::arith::AndIOp::create(
        b, useHeadKT,
        mlir::arith::CmpIOp::create(b, mlir::arith::CmpIPredicate::slt,
                                    mlir::arith::DivUIOp::create(b, kt, idx(blockK)),
                                    cachedKeyTiles));
  }
  /// Floats the cache may hold (convert-attn-to-cpu's key-cache-floats).
  int64_t keyCacheFloats = int64_t(1) << 21;
  /// AMX (AttnToCPU.cpp decides: bf16 q, k, v, head and value dims that are
  /// multiples of 32, not paged): items of more than kRows rows run both
  /// matrix products on tiles of 16 rows, two by two (emitAmxTile). q rows
  /// as bf16, unscaled (the scale multiplies S in f32) [BQp][Dp]; a K tile
  /// in the VNNI layout [Dp/2][BKp][2] (kVnniBuf, or the head's cache
  /// kTAll, which then holds these bf16 tiles instead of f32 kT); a V tile
  /// [BKp/2][Dvp][2]; all of the item's scores [BQp][BKp]; the weights as
  /// bf16 [BQp][BKp]; the per-row rescale [BQp]. BQp is a multiple of 32.
  /// kVnni32 and kTAll32 are i32 views (one (d, d + 1) pair per element).
  bool amx = false;
  /// With amx: the products as vdpbf16ps on vectors (no AMX on the CPU).
  bool amxDot = false;
  /// The vector path's softmax and sigmoid weights through exp2Avx512's
  /// quintic instead of math.exp (vector width 16 only).
  bool fastExp = false;
  mlir::Value qAmx = {}, kVnniBuf = {}, kVnni32 = {}, kTAll32 = {}, vVnni = {};
  /// Quantized K (q8, q4) under AVX512-VNNI, for items of at most kRows
  /// rows (decode): the scores as integer dot products (vpdpbusd) of the
  /// codes with the q rows quantized to int8 (CpuDecodeDots.cpp; AttnToCPU.cpp
  /// decides). Per row: the int8 q [D] in the codes' byte order, two terms
  /// (codes and residual codes), and per 32-bit lane (the features one
  /// vpdpbusd lane sums) the q scale and the sum that takes the codes'
  /// offset out. int8Lanes lanes per row, 16 per
  /// 64-byte load of codes (the last load may run past the head dim).
  bool int8Dot = false;
  int64_t int8Lanes = 0;
  mlir::Value qInt8 = {}, qLaneScale = {}, qLaneOffset = {};
  /// bf16 q and keys under AVX512-BF16, for items of at most kRows rows:
  /// the scores as vdpbf16ps of the raw q rows (qBF16, [kRows][D] bf16)
  /// with the key rows (CpuDecodeDots.cpp; AttnToCPU.cpp decides).
  bool bf16Dot = false;
  mlir::Value qBF16 = {};
  mlir::Value sAll = {}, pAmx = {}, corrAll = {};
  /// amxDot: per 32-row block and 32-key chunk of the tile, whether the
  /// mask may keep a key there (i8, [BQp / 32][BKp / 32]).
  mlir::Value blockKeep = {};
  /// Per item row, for emitTileSoftmax: the tile max, then the weights' sum;
  /// the exponent's offset (-base log2(e)).
  mlir::Value rowStat = {}, rowBias = {};
  /// With the head's K cache, its V tiles in pairs as well (vTileElems bf16
  /// each), packed together with the K tile.
  mlir::Value vAll = {}, vTileElems = {};
  int64_t blockQ = 0, blockK = 0;
  /// Query rows that share each K and V load in the inner products: their
  /// 2 * kRows accumulators, two key vectors and a broadcast fit the 32
  /// vector registers of AVX-512 with 8 rows, the 16 of AVX2 with 4 (8 rows
  /// took one thread from 48% to 54% of an AVX-512 core's peak at D = 128).
  const int64_t kRows;

  mlir::Value idx(int64_t v) { return mlir::arith::ConstantIndexOp::create(b, v); }
  /// An integer vector constant of `type` with every lane `v` (truncated
  /// to the lanes' width: 0x80 is the i8 pattern 1000 0000).
  mlir::Value splatInt(mlir::VectorType type, int64_t v) {
    unsigned bits = type.getElementTypeBitWidth();
    return mlir::arith::ConstantOp::create(
        b, mlir::DenseElementsAttr::get(
               type, b.getIntegerAttr(type.getElementType(), llvm::APInt(64, v, true).trunc(bits))));
  }
  /// q4 code bytes split into their low (even feature) and high (odd
  /// feature) nibbles, each a byte vector of the same shape.
  std::pair<mlir::Value, mlir::Value> splitNibbles(mlir::Value bytes) {
    auto type = mlir::cast<mlir::VectorType>(bytes.getType());
    return {mlir::arith::AndIOp::create(b, bytes, splatInt(type, 15)),
            mlir::arith::ShRUIOp::create(b, bytes, splatInt(type, 4))};
  }
  mlir::Value f32(double v) {
    return mlir::arith::ConstantOp::create(b, b.getF32FloatAttr(static_cast<float>(v)));
  }
  mlir::VectorType vecF32() { return mlir::VectorType::get({width}, b.getF32Type()); }

  /// The score, mask and gate regions at the builder (RegionInlining.h).
  attnc::RegionInliner regions() {
    return attnc::RegionInliner(b, width, [this](attn::SizeKind kind) { return sizeOf(kind); });
  }

  /// Reads `width` elements of the minor dim of `mem` at `indices`, as f32,
  /// zero past the end.
  mlir::Value readF32(mlir::Value mem, mlir::ValueRange indices);
  /// Where key j of batch `b` sits: (b, j) in k and v, or (page, slot) in
  /// the paged form (a division by the page size: once per key).
  std::pair<mlir::Value, mlir::Value> keyAt(mlir::Value bIdx, mlir::Value j);
  /// Paged: software prefetches of the pages that hold keys [from, to) of
  /// batch `bIdx`, KV head `hk` (codes, values and scales).
  void prefetchPages(mlir::Value bIdx, mlir::Value hk, mlir::Value from, mlir::Value to);
  /// Features [d, d + width) of the key (or value) at `at` (from keyAt), KV
  /// head `hk`, as f32: dequantized when quantized.
  mlir::Value readKVAt(bool value, std::pair<mlir::Value, mlir::Value> at, mlir::Value hk, mlir::Value d);
  /// Quantized codes at `indices` (a feature offset `d` last) times their
  /// group scales from `scales`.
  mlir::Value dequantize(mlir::Value codes, mlir::Value scales, mlir::ValueRange indices);
  /// The value row at `at` (from keyAt), KV head `hk`, as f32 into `dest`
  /// from `destBase`: dvPad floats, zero past the row's end.
  void copyValueRow(std::pair<mlir::Value, mlir::Value> at, mlir::Value hk, mlir::Value dest,
                    mlir::Value destBase);

  /// An i16 view of a bf16 memref (same descriptor once lowered).
  mlir::Value bitsView(mlir::Value mem) {
    mlir::Value &view = bitsViews[mem];
    if (!view) {
      mlir::OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfterValue(mem);
      auto memType = mlir::cast<mlir::MemRefType>(mem.getType());
      auto type = mlir::MemRefType::get(memType.getShape(), b.getI16Type(), memType.getLayout());
      view = mlir::UnrealizedConversionCastOp::create(b, mlir::TypeRange{type}, mem).getResult(0);
    }
    return view;
  }
  llvm::DenseMap<mlir::Value, mlir::Value> bitsViews;

  /// f32 -> `elt`; bf16 gives its bits as an i16, rounded to nearest even
  /// by integer arithmetic: a truncf becomes a libcall (__truncsfbf2) on
  /// CPUs without AVX512-BF16, which JIT'd and AOT objects cannot count on.
  mlir::Value truncateTo(mlir::Type elt, mlir::Value x);

  mlir::Value vecLoad(mlir::Value buf, mlir::Value offset) {
    return mlir::vector::LoadOp::create(b, vecF32(), buf, offset);
  }
  mlir::Value muli(mlir::Value x, mlir::Value y) { return mlir::arith::MulIOp::create(b, x, y); }
  mlir::Value addi(mlir::Value x, mlir::Value y) { return mlir::arith::AddIOp::create(b, x, y); }
  /// for (iv = lb; iv < ub; iv += step) body(iv), no loop-carried values.
  void loop(mlir::Value lb, mlir::Value ub, mlir::Value step, mlir::function_ref<void(mlir::Value)> body) {
    mlir::scf::ForOp::create(b, lb, ub, step, {},
                       [&](mlir::OpBuilder &, mlir::Location, mlir::Value iv, mlir::ValueRange) {
                         body(iv);
                         mlir::scf::YieldOp::create(b);
                       });
  }

  /// The inner products of both matrix products: for x in [0, ub), each of
  /// `n` rows broadcasts scalar(x, row) into two FMAs, with the two vectors
  /// `vectors(x)` gives, so that 2n independent accumulators (init, then the
  /// results: the rows' first vectors, then their second) cover the FMA
  /// latency.
  mlir::ValueRange pairedFmas(mlir::Value ub, mlir::ValueRange init, int64_t n,
                        mlir::function_ref<std::pair<mlir::Value, mlir::Value>(mlir::Value)> vectors,
                        mlir::function_ref<mlir::Value(mlir::Value, int64_t)> scalar) {
    return mlir::scf::ForOp::create(
               b, idx(0), ub, idx(1), init,
               [&](mlir::OpBuilder &, mlir::Location, mlir::Value x, mlir::ValueRange acc) {
                 auto [v0, v1] = vectors(x);
                 mlir::SmallVector<mlir::Value> next(2 * n);
                 for (int64_t r = 0; r < n; ++r) {
                   mlir::Value bcast = mlir::vector::BroadcastOp::create(b, vecF32(), scalar(x, r));
                   next[r] = mlir::vector::FMAOp::create(b, bcast, v0, acc[r]);
                   next[n + r] = mlir::vector::FMAOp::create(b, bcast, v1, acc[n + r]);
                 }
                 mlir::scf::YieldOp::create(b, next);
               })
        .getResults();
  }

  /// The lane sums of `vecs` (f32 vectors of `width` lanes), in order. Four
  /// at a time as a tree that halves four vectors into one (each shuffle and
  /// add serves four sums): 16 instructions for four rows' scores, against
  /// 9 per row for a reduction each.
  mlir::SmallVector<mlir::Value> sumLanes(mlir::ArrayRef<mlir::Value> vecs);
  /// Scores of `n` rows against each key of the tile at `kt` (keys past the
  /// sequence repeat its last key) into sBuf: `laneDots(key)` gives each
  /// row's vector of partial products with the key (from keyAt), summed
  /// across lanes by sumLanes and multiplied by `scale` when given.
  void emitKeyScores(
      mlir::Value bIdx, mlir::Value kt, int64_t n,
      mlir::function_ref<mlir::SmallVector<mlir::Value>(std::pair<mlir::Value, mlir::Value>)>
          laneDots,
      mlir::Value scale = {});

  /// The mask's interval bounds over `box` (TileIntervals.h).
  attnc::TileClass classifyBox(const attnc::TileBox &box);
  /// Whether the mask may keep a pair of query positions [iFirst, iLast]
  /// and the keys [first, min(end, nk)) of the key tile at `kt` (tile
  /// offsets): false for an empty key range. Row groups and amxDot's blocks
  /// of a PARTIAL tile skip what it rules out.
  mlir::Value keysMayShow(mlir::Value bIdx, mlir::Value h, mlir::Value iFirst, mlir::Value iLast,
                          mlir::Value kt, mlir::Value first, mlir::Value end, mlir::Value nk);
  /// Scores, online softmax and P.V for query rows [rg, rg + kRows) of the
  /// item against the key tile at `kt` with `nk` keys.
  /// `manyRows`: the item has more than kRows rows, so a transposed K tile
  /// (else its key rows are read directly).
  void emitRowGroup(mlir::Value bIdx, mlir::Value h, mlir::Value hk, mlir::Value r0, mlir::Value nRows, mlir::Value manyRows,
                    mlir::Value rg, mlir::Value kt, mlir::Value nk, mlir::Value full);
  /// The score and mask regions of item row `rr` (scores from `sRow`, in
  /// sBuf, or sAll `onTiles`, where keys past nk become -inf), rewritten in
  /// place where they change; returns the row's max over the tile.
  mlir::Value emitRowScores(mlir::Value bIdx, mlir::Value hItem, mlir::Value r0,
                            mlir::Value rr, mlir::Value sRow, mlir::Value kt, mlir::Value nk,
                            mlir::Value full, bool onTiles);
  /// Lanes [jc, jc + width) below nk, as a vector of i1.
  mlir::Value keysBelow(mlir::Value jc, mlir::Value nk);
  /// Regions, the tile max, the weights, the new max and sum of item row
  /// `rr`, whose scores start at `sRow` in sBuf, its rescale stored at
  /// corrMem[corrAt].
  void emitRowWeights(mlir::Value bIdx, mlir::Value hItem, mlir::Value r0, mlir::Value nRows,
                      mlir::Value rr, mlir::Value sRow, mlir::Value corrMem, mlir::Value corrAt,
                      mlir::Value kt, mlir::Value nk, mlir::Value full);
  /// Whether the softmax on tiles folds the scale into its exponent (no
  /// score region and a positive scale): the max of unscaled S is then the
  /// same key's, and S is rewritten only where a mask applies.
  bool foldsScaleOnTiles();
  /// The softmax of the first `rows32` item rows on tiles: row maxes
  /// (emitRowScores), then the new maxes, rescales and exponent offsets 16
  /// rows at a time, the bf16 weights into pAmx, then the sums 16 rows at a
  /// time; rescales into corrAll.
  void emitTileSoftmax(mlir::Value bIdx, mlir::Value h, mlir::Value r0, mlir::Value nRows,
                       mlir::Value rows32, mlir::Value kt, mlir::Value nk, mlir::Value full);
  /// The AMX form of a key tile for an item of `nRows` rows: K and V tiles
  /// packed, S = q K^T on tiles, the rows' weights, acc rescaled, acc += P V
  /// on tiles.
  void emitAmxTile(mlir::Value bIdx, mlir::Value h, mlir::Value hk, mlir::Value r0,
                   mlir::Value nRows, mlir::Value kt, mlir::Value nk, mlir::Value full);
  /// K tile `kt` in the VNNI layout into the i32 view `dest32` from `base`
  /// (in pairs); keys past the sequence repeat its last key.
  void packKTileVnni(mlir::Value bIdx, mlir::Value hk, mlir::Value kt, mlir::Value dest32,
                     mlir::Value base);
  /// 2^t on 16 lanes: vreduceps's fraction f in [0, 1] (AVX512-DQ), a
  /// polynomial in f (`coefficients`, highest degree first), vscalefps by
  /// floor(t); -inf gives 0 and very negative t underflow to 0 without
  /// clamps. Callers hold AVX512-DQ: AMX and AVX512-BF16 hosts all have
  /// it, and cpuCodegenFor (compiler/Compile.cpp) checks it for fast-exp.
  mlir::Value exp2Avx512(mlir::Value t, llvm::ArrayRef<double> coefficients);
  /// int8Dot: the item's q rows (qBuf, scaled) as int8 with lane scales.
  void quantizeQueryRows();
  /// int8Dot: zeros into the q buffers once per call (padding lanes).
  void clearInt8Rows();
  /// int8Dot: bytes of one int8 q term of a row (whole 64-byte loads of
  /// codes); a row holds two terms, the codes and their residual codes.
  int64_t int8RowBytes();
  int64_t int8RowStride();
  /// bf16Dot: scores of rows [rg, rg + n) against the tile's keys into sBuf.
  void emitBF16Scores(mlir::Value bIdx, mlir::Value hk, mlir::Value rg, mlir::Value kt,
                      int64_t n);
  /// int8Dot: scores of rows [rg, rg + n) against the tile's keys into sBuf.
  void emitInt8Scores(mlir::Value bIdx, mlir::Value hk, mlir::Value rg, mlir::Value kt,
                      int64_t n);
  /// int8Dot: features per vpdpbusd lane (8 for q4, 4 for q8) and per
  /// 64-byte load of codes.
  int64_t int8FeaturesPerLane();
  int64_t int8ChunkFeatures() { return 16 * int8FeaturesPerLane(); }
  /// V tile `kt` with key pairs interleaved into the bf16 buffer `dest`
  /// from `base`; keys past the sequence repeat its last key.
  void packVTileVnni(mlir::Value bIdx, mlir::Value hk, mlir::Value kt, mlir::Value dest,
                     mlir::Value base);
  /// Raw bits of `width` bf16 elements of the minor dim of `mem`.
  mlir::Value readBits(mlir::Value mem, mlir::ValueRange indices);
  /// K tile `kt` transposed into `dest` from `base`, as kT[d][j] with row
  /// stride bkPad; keys past `lastKey` repeat it (their scores are never
  /// read).
  void transposeKTile(mlir::Value bIdx, mlir::Value hk, mlir::Value kt, mlir::Value lastKey,
                      mlir::Value dest, mlir::Value base);
  /// The value of attn.size of `kind`.
  mlir::Value sizeOf(attn::SizeKind kind);
  /// Split-KV (paged kernels): the phase (0 whole items, 1 one key range
  /// of an item each, 2 combine), the number of key ranges per item and
  /// the f32 partials of phase 1. Each (item, range) owns a slot of
  /// slotFloats: the accumulator [rows][Dv], then m [rows], then l [rows],
  /// rows = pack * blockQ.
  mlir::Value phase = {}, splits = {}, partials = {}, slotFloats = {};
  /// Where a slot's accumulator rows, m and l start in `partials`.
  struct PartialSlot {
    mlir::Value acc, m, l;
  };
  PartialSlot partialSlot(mlir::Value slot);
  /// Paged: this sequence's length and query offset, from its batch row.
  void loadSequence(mlir::Value bIdx);
  /// The item's rows against keys of range `split` of `nSplits` (all keys
  /// when null); with `slot`, the unnormalised state goes to that partials
  /// slot when `toPartials` holds, else through the epilogue.
  void emitItem(mlir::Value bIdx, mlir::Value h, mlir::Value hk, mlir::Value r0, mlir::Value r1,
                mlir::Value split = {}, mlir::Value nSplits = {}, mlir::Value slot = {},
                mlir::Value toPartials = {});
  /// Normalise (softmax), gate and store the item's rows from accBuf, mBuf
  /// and lBuf; lse too.
  void emitEpilogue(mlir::Value bIdx, mlir::Value h, mlir::Value r0, mlir::Value nRows);
  /// Phase 2: merge the item's `splits` partial slots from `firstSlot` into
  /// accBuf, mBuf and lBuf, then the epilogue.
  void emitCombine(mlir::Value bIdx, mlir::Value h, mlir::Value r0, mlir::Value r1,
                   mlir::Value firstSlot);
  void emit(mlir::Value workBegin, mlir::Value workEnd);
};

} // namespace cpu_lowering
} // namespace attnc

#endif // ATTNC_PASSES_CPULOWERING_H

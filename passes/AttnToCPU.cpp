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
//===----------------------------------------------------------------------===//

#include "dialects/attn/AttnOps.h"
#include "passes/Passes.h"
#include "passes/RegionInlining.h"
#include "passes/TileIntervals.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/IRMapping.h"

namespace attnc {
#define GEN_PASS_DEF_CONVERTATTNTOCPUPASS
#include "passes/Passes.h.inc"
} // namespace attnc

using namespace mlir;
using namespace attnc::attn;

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
/// Everything the loop nest needs that does not change per row.
struct Lowering {
  Lowering(AttentionOp op, ImplicitLocOpBuilder &b, int64_t width,
           bool skipTiles)
      : op(op), b(b), width(width), skipTiles(skipTiles), kRows(width >= 16 ? 8 : 4) {}

  AttentionOp op;
  ImplicitLocOpBuilder &b;
  int64_t width;
  bool skipTiles;
  Value batch = {}, qHeads = {}, kvHeads = {}, qLen = {}, kvLen = {};
  Value headDim = {}, valueDim = {}, group = {}, queryOffset = {};
  /// Paged form: tokens per page; kvLen and queryOffset are per batch.
  Value pageSize = {};
  /// Query heads per item (attnc::cpuItemShape) and, within an item, the
  /// queries per head: row rr is head h + rr / itemQueries, query
  /// r0 + rr % itemQueries.
  int64_t pack = 1;
  Value itemQueries = {};
  /// The head and query index of row `rr` of the item at (h, r0).
  std::pair<Value, Value> rowOf(Value h, Value r0, Value rr) {
    if (pack == 1)
      return {h, addi(r0, rr)};
    return {addi(h, arith::DivUIOp::create(b, rr, itemQueries)),
            addi(r0, arith::RemUIOp::create(b, rr, itemQueries))};
  }
  // Scratch, all flat f32: q rows scaled [BQ][Dp], K tile transposed
  // [Dp][BKp], V tile [BKp][Dvp], scores of a row group [R][BKp], the
  // accumulator [BQ][Dvp], per-row max and sum [BQ], per-row rescale [R].
  Value qBuf = {}, kTBuf = {}, vBuf = {}, sBuf = {}, accBuf = {};
  Value mBuf = {}, lBuf = {}, corrBuf = {};
  Value dPad = {}, dvPad = {}, bkPad = {};
  int64_t blockQ = 0, blockK = 0;
  /// Query rows that share each K and V load in the inner products: their
  /// 2 * kRows accumulators, two key vectors and a broadcast fit the 32
  /// vector registers of AVX-512 with 8 rows, the 16 of AVX2 with 4 (8 rows
  /// took one thread from 48% to 54% of an AVX-512 core's peak at D = 128).
  const int64_t kRows;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value f32(double v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(static_cast<float>(v)));
  }
  VectorType vecF32() { return VectorType::get({width}, b.getF32Type()); }

  /// The score, mask and gate regions at the builder (RegionInlining.h).
  attnc::RegionInliner regions() {
    return attnc::RegionInliner(b, width, [this](SizeKind kind) { return sizeOf(kind); });
  }

  /// Reads `width` elements of the minor dim of `mem` at `indices`, as f32,
  /// zero past the end.
  Value readF32(Value mem, ValueRange indices);
  /// Where key j of batch `b` sits: (b, j) in k and v, or (page, slot) in
  /// the paged form (a division by the page size: once per key).
  std::pair<Value, Value> keyAt(Value bIdx, Value j);
  /// Features [d, d + width) of the key (or value) at `at` (from keyAt), KV
  /// head `hk`, as f32: dequantized when quantized.
  Value readKVAt(bool value, std::pair<Value, Value> at, Value hk, Value d);
  /// Quantized codes at `indices` (a feature offset `d` last) times their
  /// group scales from `scales`.
  Value dequantize(Value codes, Value scales, ValueRange indices);

  /// An i16 view of a bf16 memref (same descriptor once lowered).
  Value bitsView(Value mem) {
    Value &view = bitsViews[mem];
    if (!view) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfterValue(mem);
      auto memType = cast<MemRefType>(mem.getType());
      auto type = MemRefType::get(memType.getShape(), b.getI16Type(), memType.getLayout());
      view = UnrealizedConversionCastOp::create(b, TypeRange{type}, mem).getResult(0);
    }
    return view;
  }
  llvm::DenseMap<Value, Value> bitsViews;

  /// f32 -> `elt`; bf16 gives its bits as an i16, rounded to nearest even
  /// by integer arithmetic: a truncf becomes a libcall (__truncsfbf2) on
  /// CPUs without AVX512-BF16, which JIT'd and AOT objects cannot count on.
  Value truncateTo(Type elt, Value x);

  Value vecLoad(Value buf, Value offset) {
    return vector::LoadOp::create(b, vecF32(), buf, offset);
  }
  Value muli(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value addi(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  /// for (iv = lb; iv < ub; iv += step) body(iv), no loop-carried values.
  void loop(Value lb, Value ub, Value step, function_ref<void(Value)> body) {
    scf::ForOp::create(b, lb, ub, step, {},
                       [&](OpBuilder &, Location, Value iv, ValueRange) {
                         body(iv);
                         scf::YieldOp::create(b);
                       });
  }

  /// Scores, online softmax and P.V for query rows [rg, rg + kRows) of the
  /// item against the key tile at `kt` with `nk` keys.
  /// `manyRows`: the item has more than kRows rows, so a transposed K tile
  /// (else its key rows are read directly).
  void emitRowGroup(Value bIdx, Value h, Value hk, Value r0, Value nRows, Value manyRows,
                    Value rg, Value kt, Value nk, Value full);
  /// The value of attn.size of `kind`.
  Value sizeOf(SizeKind kind);
  void emitItem(Value bIdx, Value h, Value hk, Value r0, Value r1);
  void emit(Value workBegin, Value workEnd);
};
} // namespace

/// Whether every vector read of a row of `features` elements stays inside
/// it: the loops over features step by the width up to a multiple of twice
/// the width (dvPad), so a static multiple of that needs no mask.
static bool readsInBounds(int64_t features, int64_t width) {
  return !ShapedType::isDynamic(features) && features % (2 * width) == 0;
}

Value Lowering::readF32(Value mem, ValueRange indices) {
  Type elt = cast<MemRefType>(mem.getType()).getElementType();
  bool inBounds = readsInBounds(cast<MemRefType>(mem.getType()).getShape().back(), width);
  if (elt.isBF16()) {
    // bf16 -> f32 is a 16-bit shift. Read the raw bits: x86 without
    // AVX512-BF16 legalizes bfloat vector loads through libcalls.
    Value bits = vector::TransferReadOp::create(
        b, VectorType::get({width}, b.getI16Type()), bitsView(mem), indices,
        arith::ConstantOp::create(b, b.getI16IntegerAttr(0)).getResult(),
        ArrayRef<bool>{inBounds});
    auto i32v = VectorType::get({width}, b.getI32Type());
    Value wide = arith::ExtUIOp::create(b, i32v, bits);
    Value sixteen = arith::ConstantOp::create(
        b, DenseElementsAttr::get(i32v, b.getI32IntegerAttr(16)));
    return arith::BitcastOp::create(b, vecF32(),
                                    arith::ShLIOp::create(b, wide, sixteen));
  }
  auto vt = VectorType::get({width}, elt);
  Value pad = arith::ConstantOp::create(b, b.getZeroAttr(elt));
  Value v = vector::TransferReadOp::create(b, vt, mem, indices, pad,
                                           ArrayRef<bool>{inBounds});
  if (elt != b.getF32Type())
    v = arith::ExtFOp::create(b, vecF32(), v);
  return v;
}

std::pair<Value, Value> Lowering::keyAt(Value bIdx, Value j) {
  if (!op.isPaged())
    return {bIdx, j};
  Value entry = memref::LoadOp::create(
      b, op.getPageTable(), ValueRange{bIdx, arith::DivUIOp::create(b, j, pageSize)});
  Value page = arith::IndexCastOp::create(b, b.getIndexType(), entry);
  return {page, arith::RemUIOp::create(b, j, pageSize)};
}

Value Lowering::readKVAt(bool value, std::pair<Value, Value> at, Value hk, Value d) {
  Value mem = value ? op.getValue() : op.getKey();
  if (!op.getKvQuant())
    return readF32(mem, {at.first, hk, at.second, d});
  return dequantize(mem, value ? op.getValueScale() : op.getKeyScale(),
                    {at.first, hk, at.second, d});
}

Value Lowering::dequantize(Value codes, Value scales, ValueRange indices) {
  bool q4 = *op.getKvQuant() == KVQuant::q4;
  auto codeType = cast<MemRefType>(codes.getType());
  int64_t features = codeType.getDimSize(3) * (q4 ? 2 : 1);
  int64_t groups = cast<MemRefType>(scales.getType()).getDimSize(3);
  int64_t groupSize = features / groups;
  bool inBounds = readsInBounds(features, width);
  Value d = indices[3];
  auto i32v = VectorType::get({width}, b.getI32Type());
  Value ints;
  if (q4) {
    // Two codes per byte, the even feature low; padding 0x88 decodes to 0.
    auto bytesType = VectorType::get({width / 2}, b.getI8Type());
    Value bytes = vector::TransferReadOp::create(
        b, bytesType, codes,
        ValueRange{indices[0], indices[1], indices[2],
                   arith::DivUIOp::create(b, d, idx(2))},
        arith::ConstantOp::create(b, b.getI8IntegerAttr(static_cast<int8_t>(0x88))).getResult(),
        ArrayRef<bool>{inBounds});
    auto splat = [&](int v) {
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(bytesType, b.getI8IntegerAttr(static_cast<int8_t>(v))));
    };
    Value lo = arith::AndIOp::create(b, bytes, splat(15));
    Value hi = arith::ShRUIOp::create(b, bytes, splat(4));
    Value nibbles = vector::InterleaveOp::create(b, lo, hi);
    ints = arith::SubIOp::create(
        b, arith::ExtUIOp::create(b, i32v, nibbles),
        arith::ConstantOp::create(b, DenseElementsAttr::get(i32v, b.getI32IntegerAttr(8))));
  } else {
    Value bytes = vector::TransferReadOp::create(
        b, VectorType::get({width}, b.getI8Type()), codes, indices,
        arith::ConstantOp::create(b, b.getI8IntegerAttr(0)).getResult(),
        ArrayRef<bool>{inBounds});
    ints = arith::ExtSIOp::create(b, i32v, bytes);
  }
  Value x = arith::SIToFPOp::create(b, vecF32(), ints);
  // d is a multiple of the width: with groups of a multiple of it, one
  // scale covers the vector; else each lane looks its group up.
  Value scaleV;
  auto scaleAt = [&](Value g) {
    return memref::LoadOp::create(b, scales,
                                  ValueRange{indices[0], indices[1], indices[2], g});
  };
  if (groupSize % width == 0) {
    scaleV = vector::BroadcastOp::create(
        b, vecF32(), scaleAt(arith::DivUIOp::create(b, d, idx(groupSize))));
  } else {
    SmallVector<Value> lanes;
    for (int64_t lane = 0; lane < width; ++lane)
      lanes.push_back(scaleAt(arith::MinUIOp::create(
          b, arith::DivUIOp::create(b, addi(d, idx(lane)), idx(groupSize)),
          idx(groups - 1))));
    scaleV = vector::FromElementsOp::create(b, vecF32(), lanes);
  }
  return arith::MulFOp::create(b, x, scaleV);
}

Value Lowering::truncateTo(Type elt, Value x) {
  if (elt == b.getF32Type())
    return x;
  if (!elt.isBF16())
    return arith::TruncFOp::create(b, elt, x);
  Type i32 = b.getI32Type();
  auto c32 = [&](int64_t v) {
    return arith::ConstantOp::create(b, b.getI32IntegerAttr(static_cast<int32_t>(v)));
  };
  Value bits = arith::BitcastOp::create(b, i32, x);
  Value lsb = arith::AndIOp::create(
      b, arith::ShRUIOp::create(b, bits, c32(16)), c32(1));
  Value rounded = arith::AddIOp::create(
      b, bits, arith::AddIOp::create(b, lsb, c32(0x7fff)));
  // NaN stays NaN (quiet): rounding could carry it into infinity.
  Value isNan = arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, x, x);
  Value nanBits = arith::OrIOp::create(b, bits, c32(0x400000));
  Value chosen = arith::SelectOp::create(b, isNan, nanBits, rounded);
  // The i16 is stored through an i16 view of the output (see outputStore):
  // even a bitcast-to-bfloat store legalizes into a libcall on x86.
  return arith::TruncIOp::create(
      b, b.getI16Type(), arith::ShRUIOp::create(b, chosen, c32(16)));
}

Value Lowering::sizeOf(SizeKind kind) {
  switch (kind) {
  case SizeKind::batch: return batch;
  case SizeKind::q_heads: return qHeads;
  case SizeKind::kv_heads: return kvHeads;
  case SizeKind::q_len: return qLen;
  case SizeKind::kv_len: return kvLen;
  case SizeKind::head_dim: return headDim;
  case SizeKind::value_dim: return valueDim;
  }
  llvm_unreachable("SizeKind has seven enumerators");
}

void Lowering::emitRowGroup(Value bIdx, Value hItem, Value hk, Value r0, Value nRows,
                            Value manyRows, Value rg, Value kt, Value nk, Value full) {
  Value zero = idx(0), one = idx(1), w = idx(width);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0), fone = f32(1.0);
  bool softmax = op.getKernel() == KernelKind::softmax;

  Value w2 = idx(2 * width);
  // A group of at most kRows / 2 rows (decode with GQA 4 under 8-row
  // groups) computes scores and weighs values for those rows only: emits
  // `body` for kRows rows, or kRows / 2, by the group's row count.
  Value moreThanHalf = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt,
                                             arith::SubIOp::create(b, nRows, rg), idx(kRows / 2));
  auto byRowCount = [&](llvm::function_ref<void(int64_t)> body) {
    scf::IfOp::create(
        b, moreThanHalf,
        [&](OpBuilder &, Location) {
          body(kRows);
          scf::YieldOp::create(b);
        },
        [&](OpBuilder &, Location) {
          body(kRows / 2);
          scf::YieldOp::create(b);
        });
  };
  // An item of at most kRows rows (decode: the GQA heads of one query) has
  // no transposed K tile: its scores are dot products of each key row with
  // the q rows, reduced across lanes.
  auto ifMany = scf::IfOp::create(b, manyRows, /*withElse=*/true);
  b.setInsertionPointToStart(&ifMany.getElseRegion().front());
  {
    Value lastKey = arith::SubIOp::create(b, kvLen, one);
    Value zeroV = vector::BroadcastOp::create(b, vecF32(), fzero);
    // Scores of the item's rows, n at a time (its only row group: rows past
    // nRows repeat the last row and are never read).
    auto dotRows = [&](int64_t n) {
      loop(zero, bkPad, one, [&](Value jj) {
        std::pair<Value, Value> key =
            keyAt(bIdx, arith::MinSIOp::create(b, addi(kt, jj), lastKey));
        SmallVector<Value> init(n, zeroV);
        auto dots = scf::ForOp::create(
            b, zero, dPad, w, init, [&](OpBuilder &, Location, Value d, ValueRange acc) {
              Value kv = readKVAt(/*value=*/false, key, hk, d);
              SmallVector<Value> next(n);
              for (int64_t r = 0; r < n; ++r)
                next[r] = vector::FMAOp::create(
                    b, vecLoad(qBuf, addi(muli(addi(rg, idx(r)), dPad), d)), kv, acc[r]);
              scf::YieldOp::create(b, next);
            });
        for (int64_t r = 0; r < n; ++r) {
          Value sum = vector::ReductionOp::create(b, vector::CombiningKind::ADD,
                                                  dots.getResult(r), Value(),
                                                  arith::FastMathFlags::reassoc);
          memref::StoreOp::create(b, sum, sBuf, addi(muli(idx(r), bkPad), jj));
        }
      });
    };
    byRowCount(dotRows);
  }
  b.setInsertionPointToStart(&ifMany.getThenRegion().front());
  // S[r][j] = sum_d qs[rg + r][d] * kT[d][j], two vectors of keys at a
  // time: each q broadcast feeds two FMAs, and 2 * kRows independent
  // accumulators cover the FMA latency.
  loop(zero, bkPad, w2, [&](Value jc) {
    Value jc1 = addi(jc, w);
    SmallVector<Value> init(2 * kRows,
                            vector::BroadcastOp::create(b, vecF32(), fzero));
    auto dots = scf::ForOp::create(
        b, zero, headDim, one, init,
        [&](OpBuilder &, Location, Value d, ValueRange acc) {
          Value row = muli(d, bkPad);
          Value k0 = vecLoad(kTBuf, addi(row, jc));
          Value k1 = vecLoad(kTBuf, addi(row, jc1));
          SmallVector<Value> next(2 * kRows);
          for (int64_t r = 0; r < kRows; ++r) {
            Value qOff = addi(muli(addi(rg, idx(r)), dPad), d);
            Value qv = vector::BroadcastOp::create(
                b, vecF32(), memref::LoadOp::create(b, qBuf, qOff));
            next[r] = vector::FMAOp::create(b, qv, k0, acc[r]);
            next[kRows + r] = vector::FMAOp::create(b, qv, k1, acc[kRows + r]);
          }
          scf::YieldOp::create(b, next);
        });
    for (int64_t r = 0; r < kRows; ++r) {
      Value base = muli(idx(r), bkPad);
      vector::StoreOp::create(b, dots.getResult(r), sBuf, ValueRange{addi(base, jc)});
      vector::StoreOp::create(b, dots.getResult(kRows + r), sBuf,
                              ValueRange{addi(base, jc1)});
    }
  });
  b.setInsertionPointAfter(ifMany);

  // Per row (scalar): regions, the tile max, weights, the new max and sum.
  // Rows past the item's end keep weight 0 so that P.V below adds nothing.
  for (int64_t r = 0; r < kRows; ++r) {
    Value rr = addi(rg, idx(r));
    Value sRow = muli(idx(r), bkPad);
    Value valid = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rr, nRows);
    scf::IfOp::create(
        b, valid,
        [&](OpBuilder &, Location) {
          std::pair<Value, Value> headQuery = rowOf(hItem, r0, rr);
          Value h = headQuery.first;
          Value i = addi(headQuery.second, queryOffset);
          // Lanes [jc, jc + width) of the tile that hold keys (< nk).
          auto i32v = VectorType::get({width}, b.getI32Type());
          SmallVector<int32_t> lanes(width);
          for (int64_t lane = 0; lane < width; ++lane)
            lanes[lane] = static_cast<int32_t>(lane);
          Value iota = arith::ConstantOp::create(
              b, DenseElementsAttr::get(i32v, ArrayRef<int32_t>(lanes)));
          Value nk32 = vector::BroadcastOp::create(
              b, i32v, arith::IndexCastOp::create(b, b.getI32Type(), nk));
          auto inTile = [&](Value jc) -> Value {
            Value jcv = vector::BroadcastOp::create(
                b, i32v, arith::IndexCastOp::create(b, b.getI32Type(), jc));
            return arith::CmpIOp::create(b, arith::CmpIPredicate::slt,
                                         arith::AddIOp::create(b, jcv, iota), nk32);
          };
          Value negInfV = vector::BroadcastOp::create(b, vecF32(), negInf);
          // Scores with the regions inlined, and the tile's max. A FULL
          // tile (no key masked) runs the loop without the mask. Regions that
          // RegionInliner::canInlineLanes accepts run a vector of keys at a
          // time, and so does the max (a scalar NaN-propagating max per key
          // cost as much as the two matrix products, docs/cpu-backend.md);
          // others run key by key.
          auto scoreLoop = [&](bool withMask) -> Value {
            using attnc::RegionInliner;
            Region &score = op.getScore(), &mask = op.getMask();
            bool scoreLanes = score.empty() || RegionInliner::canInlineLanes(
                                                   score, {true, false, false, false, true});
            bool maskLanes = !withMask ||
                             RegionInliner::canInlineLanes(mask, {false, false, false, true});
            if (scoreLanes && maskLanes) {
              // The regions over `width` keys at once (key index j a vector).
              auto indexV = VectorType::get({width}, b.getIndexType());
              SmallVector<APInt> laneIdx;
              for (int64_t lane = 0; lane < width; ++lane)
                laneIdx.push_back(APInt(64, lane));
              Value iotaIdx = arith::ConstantOp::create(
                  b, DenseElementsAttr::get(indexV, laneIdx));
              auto vmax = scf::ForOp::create(
                  b, zero, bkPad, w, ValueRange{negInfV},
                  [&](OpBuilder &, Location, Value jc, ValueRange acc) {
                    Value lanes = inTile(jc);
                    Value sv = vecLoad(sBuf, addi(sRow, jc));
                    if (!score.empty() || withMask) {
                      Value jv = arith::AddIOp::create(
                          b, vector::BroadcastOp::create(b, indexV, addi(kt, jc)), iotaIdx);
                      if (!score.empty())
                        sv = regions().inlineLanes(score, {sv, bIdx, h, i, jv}, lanes);
                      if (withMask)
                        sv = arith::SelectOp::create(
                            b, regions().inlineLanes(mask, {bIdx, h, i, jv}, lanes), sv, negInfV);
                      vector::StoreOp::create(b, sv, sBuf, ValueRange{addi(sRow, jc)});
                    }
                    sv = arith::SelectOp::create(b, lanes, sv, negInfV);
                    scf::YieldOp::create(
                        b, ValueRange{arith::MaximumFOp::create(b, acc[0], sv).getResult()});
                  });
              return vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF,
                                                 vmax.getResult(0));
            }
            return scf::ForOp::create(
                b, zero, nk, one, ValueRange{negInf},
                [&](OpBuilder &, Location, Value jj, ValueRange tileMax) {
                  Value j = addi(kt, jj);
                  Value s = memref::LoadOp::create(b, sBuf, addi(sRow, jj));
                  if (!op.getScore().empty())
                    s = regions().inlineScalar(op.getScore(), {s, bIdx, h, i, j});
                  if (withMask) {
                    Value keep = regions().inlineScalar(op.getMask(), {bIdx, h, i, j});
                    s = arith::SelectOp::create(b, keep, s, negInf);
                  }
                  memref::StoreOp::create(b, s, sBuf, addi(sRow, jj));
                  scf::YieldOp::create(
                      b, softmax ? arith::MaximumFOp::create(b, tileMax[0], s)
                                       .getResult()
                                 : tileMax[0]);
                }).getResult(0);
          };
          Value tileMaxValue;
          if (op.getMask().empty()) {
            tileMaxValue = scoreLoop(false);
          } else {
            tileMaxValue =
                scf::IfOp::create(
                    b, full,
                    [&](OpBuilder &, Location) {
                      scf::YieldOp::create(b, scoreLoop(false));
                    },
                    [&](OpBuilder &, Location) {
                      scf::YieldOp::create(b, scoreLoop(true));
                    })
                    .getResult(0);
          }
          Value m = memref::LoadOp::create(b, mBuf, rr);
          Value l = memref::LoadOp::create(b, lBuf, rr);
          // Softmax: rescale by exp(m - mNew), weights exp(s - mNew); a max
          // of -inf (nothing visible yet) uses 0, so no -inf - -inf appears.
          // Sigmoid: weights sigmoid(s), no rescaling.
          Value mNew = m, base = fzero, corr = fone;
          if (softmax) {
            mNew = arith::MaximumFOp::create(b, m, tileMaxValue);
            Value isNegInf = arith::CmpFOp::create(
                b, arith::CmpFPredicate::OEQ, mNew, negInf);
            base = arith::SelectOp::create(b, isNegInf, fzero, mNew);
            corr = math::ExpOp::create(b, arith::SubFOp::create(b, m, base));
          }
          // Weights, a vector at a time; lanes past the tile's end get 0.
          Value zeroV = vector::BroadcastOp::create(b, vecF32(), fzero);
          Value baseV = vector::BroadcastOp::create(b, vecF32(), base);
          Value oneV = vector::BroadcastOp::create(b, vecF32(), fone);
          auto weights = scf::ForOp::create(
              b, zero, bkPad, w, ValueRange{zeroV},
              [&](OpBuilder &, Location, Value jc, ValueRange sum) {
                Value s = vecLoad(sBuf, addi(sRow, jc));
                Value p;
                if (softmax) {
                  p = math::ExpOp::create(b, arith::SubFOp::create(b, s, baseV));
                } else {
                  // sigmoid(-inf) = 1 / (1 + inf) = 0 for masked keys.
                  Value e = math::ExpOp::create(b, arith::NegFOp::create(b, s));
                  p = arith::DivFOp::create(b, oneV,
                                            arith::AddFOp::create(b, oneV, e));
                }
                p = arith::SelectOp::create(b, inTile(jc), p, zeroV);
                vector::StoreOp::create(b, p, sBuf, ValueRange{addi(sRow, jc)});
                scf::YieldOp::create(
                    b, ValueRange{arith::AddFOp::create(b, sum[0], p).getResult()});
              });
          Value weightSum = vector::ReductionOp::create(
              b, vector::CombiningKind::ADD, weights.getResult(0));
          Value lNew = arith::AddFOp::create(
              b, arith::MulFOp::create(b, l, corr), weightSum);
          memref::StoreOp::create(b, mNew, mBuf, rr);
          memref::StoreOp::create(b, lNew, lBuf, rr);
          memref::StoreOp::create(b, corr, corrBuf, idx(r));
          scf::YieldOp::create(b);
        },
        [&](OpBuilder &, Location) {
          loop(zero, nk, one, [&](Value jj) {
            memref::StoreOp::create(b, fzero, sBuf, addi(sRow, jj));
          });
          memref::StoreOp::create(b, fone, corrBuf, idx(r));
          scf::YieldOp::create(b);
        });
  }

  // acc[r] = acc[r] * corr[r] + sum_j p[r][j] v[j], two vectors of Dv at a
  // time, like the scores above, for the group's n rows.
  auto weighValues = [&](int64_t n) {
    loop(zero, dvPad, w2, [&](Value dc) {
      Value dc1 = addi(dc, w);
      SmallVector<Value> init(2 * n);
      for (int64_t r = 0; r < n; ++r) {
        Value corr = vector::BroadcastOp::create(
            b, vecF32(), memref::LoadOp::create(b, corrBuf, idx(r)));
        Value base = muli(addi(rg, idx(r)), dvPad);
        init[r] = arith::MulFOp::create(b, vecLoad(accBuf, addi(base, dc)), corr);
        init[n + r] = arith::MulFOp::create(b, vecLoad(accBuf, addi(base, dc1)), corr);
      }
      auto pv = scf::ForOp::create(
          b, zero, nk, one, init,
          [&](OpBuilder &, Location, Value jj, ValueRange acc) {
            Value row = muli(jj, dvPad);
            Value v0 = vecLoad(vBuf, addi(row, dc));
            Value v1 = vecLoad(vBuf, addi(row, dc1));
            SmallVector<Value> next(2 * n);
            for (int64_t r = 0; r < n; ++r) {
              Value p = memref::LoadOp::create(b, sBuf, addi(muli(idx(r), bkPad), jj));
              Value pv = vector::BroadcastOp::create(b, vecF32(), p);
              next[r] = vector::FMAOp::create(b, pv, v0, acc[r]);
              next[n + r] = vector::FMAOp::create(b, pv, v1, acc[n + r]);
            }
            scf::YieldOp::create(b, next);
          });
      for (int64_t r = 0; r < n; ++r) {
        Value base = muli(addi(rg, idx(r)), dvPad);
        vector::StoreOp::create(b, pv.getResult(r), accBuf, ValueRange{addi(base, dc)});
        vector::StoreOp::create(b, pv.getResult(n + r), accBuf, ValueRange{addi(base, dc1)});
      }
    });
  };
  // The rows past a half group's have weights 0 only.
  byRowCount(weighValues);
}

void Lowering::emitItem(Value bIdx, Value h, Value hk, Value r0, Value r1) {
  Value zero = idx(0), one = idx(1), w = idx(width), rows = idx(kRows);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0);
  Value nRows = arith::SubIOp::create(b, r1, r0);
  itemQueries = nRows;
  if (pack > 1)
    nRows = muli(nRows, idx(pack));
  Value lastRow = arith::SubIOp::create(b, qLen, one);
  if (op.isPaged()) {
    // This sequence's length (checked against the table by the runtime).
    kvLen = arith::IndexCastOp::create(
        b, b.getIndexType(), memref::LoadOp::create(b, op.getSeqLens(), ValueRange{bIdx}));
    queryOffset = op.getAlign() == QueryAlign::end
                      ? arith::SubIOp::create(b, kvLen, qLen).getResult()
                      : zero;
  }

  // q rows, scaled once; rows of a partial last group repeat the last row.
  Value scaleV = vector::BroadcastOp::create(
      b, vecF32(), f32(op.getScale().convertToDouble()));
  Value zeroV = vector::BroadcastOp::create(b, vecF32(), fzero);
  Value groupRows = arith::MulIOp::create(
      b, arith::CeilDivSIOp::create(b, nRows, rows), rows);
  loop(zero, groupRows, one, [&](Value rr) {
    Value qHead = h, row;
    if (pack == 1) {
      row = arith::MinSIOp::create(b, addi(r0, rr), lastRow);
    } else {
      Value lastItemRow = arith::SubIOp::create(b, nRows, one);
      std::tie(qHead, row) = rowOf(h, r0, arith::MinSIOp::create(b, rr, lastItemRow));
    }
    loop(zero, dPad, w, [&](Value d) {
      Value qv = arith::MulFOp::create(b, readF32(op.getQuery(), {bIdx, qHead, row, d}),
                                       scaleV);
      vector::StoreOp::create(b, qv, qBuf, ValueRange{addi(muli(rr, dPad), d)});
    });
    loop(zero, dvPad, w, [&](Value d) {
      vector::StoreOp::create(b, zeroV, accBuf, ValueRange{addi(muli(rr, dvPad), d)});
    });
    memref::StoreOp::create(b, negInf, mBuf, rr);
    memref::StoreOp::create(b, fzero, lBuf, rr);
  });

  Value bk = idx(blockK), lastKey = arith::SubIOp::create(b, kvLen, one);
  Value manyRows = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, nRows, rows);
  loop(zero, kvLen, bk, [&](Value kt) {
    Value nk = arith::MinSIOp::create(b, bk, arith::SubIOp::create(b, kvLen, kt));
    auto tileBody = [&](Value full) {
      // K tile transposed into kT[d][j]; keys past the end repeat the last
      // key (their scores are never read). A width x width transpose in
      // registers (vector.transpose lowered to AVX-512 shuffles) was tried:
      // up to 6% faster for prefill on the development VM, but 17% and more
      // slower for bf16 and q8 decode (docs/cpu-backend.md).
      // Items of at most kRows rows read K rows directly (emitRowGroup).
      scf::IfOp::create(b, manyRows, [&](OpBuilder &, Location) {
        loop(zero, bkPad, one, [&](Value jj) {
          std::pair<Value, Value> key =
              keyAt(bIdx, arith::MinSIOp::create(b, addi(kt, jj), lastKey));
          loop(zero, dPad, w, [&](Value d) {
            Value kv = readKVAt(/*value=*/false, key, hk, d);
            for (int64_t lane = 0; lane < width; ++lane) {
              Value x = vector::ExtractOp::create(b, kv, ArrayRef<int64_t>{lane});
              Value off = addi(muli(addi(d, idx(lane)), bkPad), jj);
              memref::StoreOp::create(b, x, kTBuf, off);
            }
          });
        });
        scf::YieldOp::create(b);
      });
      loop(zero, nk, one, [&](Value jj) {
        std::pair<Value, Value> key = keyAt(bIdx, addi(kt, jj));
        loop(zero, dvPad, w, [&](Value d) {
          Value vv = readKVAt(/*value=*/true, key, hk, d);
          vector::StoreOp::create(b, vv, vBuf, ValueRange{addi(muli(jj, dvPad), d)});
        });
      });
      loop(zero, nRows, rows, [&](Value rg) {
        emitRowGroup(bIdx, h, hk, r0, nRows, manyRows, rg, kt, nk, full);
      });
    };
    if (op.getMask().empty()) {
      tileBody(Value());
      return;
    }
    if (!skipTiles) {
      tileBody(arith::ConstantIntOp::create(b, 0, 1));
      return;
    }
    // Bound the mask over the tile's (i, j) box: EMPTY tiles are skipped,
    // FULL tiles run without the mask.
    attnc::TileBox box{bIdx,
                h,
                addi(r0, queryOffset),
                arith::SubIOp::create(b, addi(r1, queryOffset), one),
                kt,
                arith::SubIOp::create(b, addi(kt, nk), one)};
    attnc::TileClass cls = attnc::classifyTile(
        b, op.getMask(), box, [&](int kind) { return sizeOf(static_cast<SizeKind>(kind)); });
    Value full = arith::XOrIOp::create(
        b, cls.mayDrop, arith::ConstantIntOp::create(b, 1, 1));
    scf::IfOp::create(b, cls.mayKeep, [&](OpBuilder &, Location) {
      tileBody(full);
      scf::YieldOp::create(b);
    });
  });

  // Normalise (softmax only), gate, store. An all-masked row has l = 0 and
  // gives gate(0) and lse = -inf.
  bool softmax = op.getKernel() == KernelKind::softmax;
  Type outElt = op.getOutput().getType().getElementType();
  // bf16 outputs are written as raw i16 bits through a view of the same
  // memref; both lower to one LLVM descriptor, so the cast folds away.
  Value outMem = outElt.isBF16() ? bitsView(op.getOutput()) : op.getOutput();
  loop(zero, nRows, one, [&](Value rr) {
    std::pair<Value, Value> headQuery = rowOf(h, r0, rr);
    Value oHead = headQuery.first, row = headQuery.second;
    Value i = addi(row, queryOffset);
    Value m = memref::LoadOp::create(b, mBuf, rr);
    Value l = memref::LoadOp::create(b, lBuf, rr);
    Value hasAny = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, l, fzero);
    Value inv = f32(1.0);
    if (softmax)
      inv = arith::SelectOp::create(b, hasAny,
                                    arith::DivFOp::create(b, f32(1.0), l), fzero);
    loop(zero, valueDim, one, [&](Value d) {
      Value x = arith::MulFOp::create(
          b, memref::LoadOp::create(b, accBuf, addi(muli(rr, dvPad), d)), inv);
      if (!op.getGate().empty())
        x = regions().inlineScalar(op.getGate(), {x, bIdx, oHead, i, d});
      x = truncateTo(outElt, x);
      memref::StoreOp::create(b, x, outMem, ValueRange{bIdx, oHead, row, d});
    });
    if (Value lse = op.getLse()) {
      Value value = arith::SelectOp::create(
          b, hasAny, arith::AddFOp::create(b, m, math::LogOp::create(b, l)),
          negInf);
      memref::StoreOp::create(b, value, lse, ValueRange{bIdx, oHead, row});
    }
  });
}

void Lowering::emit(Value workBegin, Value workEnd) {
  Value bq = idx(blockQ), one = idx(1);
  // Items are (b, h, query tile), query tile fastest: neighbouring items
  // share K/V of one head. Packed items take `pack` heads from h on.
  Value qTiles = arith::CeilDivSIOp::create(b, qLen, bq);
  Value itemHeads = pack == 1 ? qHeads : arith::DivSIOp::create(b, qHeads, idx(pack)).getResult();
  loop(workBegin, workEnd, one, [&](Value item) {
    Value qt = arith::RemSIOp::create(b, item, qTiles);
    Value bh = arith::DivSIOp::create(b, item, qTiles);
    Value h = arith::RemSIOp::create(b, bh, itemHeads);
    if (pack > 1)
      h = muli(h, idx(pack));
    Value bIdx = arith::DivSIOp::create(b, bh, itemHeads);
    Value hk = arith::DivSIOp::create(b, h, group);
    Value r0 = muli(qt, bq);
    Value r1 = arith::MinSIOp::create(b, addi(r0, bq), qLen);
    emitItem(bIdx, h, hk, r0, r1);
  });
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
    if (vectorWidth <= 0 || (vectorWidth & (vectorWidth - 1))) {
      fn.emitError("convert-attn-to-cpu: vector-width must be a power of two");
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

    // The work range arguments come last.
    Location loc = op.getLoc();
    MLIRContext *ctx = &getContext();
    unsigned n = fn.getNumArguments();
    Type indexTy = IndexType::get(ctx);
    if (failed(fn.insertArguments({n, n}, {indexTy, indexTy},
                                  {DictionaryAttr::get(ctx), DictionaryAttr::get(ctx)},
                                  {loc, loc})))
      return signalPassFailure();
    Value workBegin = fn.getArgument(n), workEnd = fn.getArgument(n + 1);

    // Scratch buffers live in the entry block: scf.for bodies are not
    // allocation scopes, and an alloca there would grow the stack per row.
    ImplicitLocOpBuilder b(loc, op);
    Lowering low(op, b, vectorWidth, skipTiles);
    attnc::CpuItemShape items = attnc::cpuItemShape(op, schedule.getBlockQ());
    low.pack = items.headsPerItem;
    low.blockQ = items.queriesPerItem;
    low.blockK = schedule.getBlockK();
    Value q = op.getQuery(), k = op.getKey();
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
      int64_t bqPad = (low.pack * low.blockQ + rows - 1) / rows * rows;
      // Scores and P.V step two vectors at a time: pad their dims to 2W.
      int64_t w2 = 2 * vectorWidth;
      int64_t bkPad = (low.blockK + w2 - 1) / w2 * w2;
      low.dPad = padded(low.headDim);
      Value w2v = low.idx(w2);
      low.dvPad = arith::MulIOp::create(
          b, arith::CeilDivSIOp::create(b, low.valueDim, w2v), w2v);
      low.bkPad = low.idx(bkPad);
      auto flat = [&](Value n) -> Value {
        auto type = MemRefType::get({ShapedType::kDynamic}, b.getF32Type());
        return memref::AllocaOp::create(b, type, ValueRange{n});
      };
      auto fixed = [&](int64_t n) -> Value {
        return memref::AllocaOp::create(b, MemRefType::get({n}, b.getF32Type()));
      };
      low.qBuf = flat(arith::MulIOp::create(b, low.idx(bqPad), low.dPad));
      low.kTBuf = flat(arith::MulIOp::create(b, low.dPad, low.bkPad));
      low.vBuf = flat(arith::MulIOp::create(b, low.bkPad, low.dvPad));
      low.accBuf = flat(arith::MulIOp::create(b, low.idx(bqPad), low.dvPad));
      low.sBuf = fixed(rows * bkPad);
      low.mBuf = fixed(bqPad);
      low.lBuf = fixed(bqPad);
      low.corrBuf = fixed(rows);
    }
    low.emit(workBegin, workEnd);
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

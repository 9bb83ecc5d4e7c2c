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

namespace {
/// Everything the loop nest needs that does not change per row.
struct Lowering {
  Lowering(AttentionOp op, ImplicitLocOpBuilder &b, int64_t width)
      : op(op), b(b), width(width) {}

  AttentionOp op;
  ImplicitLocOpBuilder &b;
  int64_t width;
  Value batch = {}, qHeads = {}, kvHeads = {}, qLen = {}, kvLen = {};
  Value headDim = {}, valueDim = {}, group = {}, queryOffset = {};
  Value qBuf = {}, accBuf = {}, scoreBuf = {};
  int64_t blockQ = 0, blockK = 0;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value f32(double v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(static_cast<float>(v)));
  }
  VectorType vecF32() { return VectorType::get({width}, b.getF32Type()); }

  /// Clones `region` at the builder, mapping block arguments to `args`;
  /// attn.read becomes memref.load and attn.size the matching size.
  Value inlineRegion(Region &region, ValueRange args);

  /// Reads `width` elements of the minor dim of `mem` at `indices`, as f32,
  /// zero past the end.
  Value readF32(Value mem, ValueRange indices);

  /// An i16 view of a bf16 memref (same descriptor once lowered).
  Value bitsView(Value mem) {
    Value &view = bitsViews[mem];
    if (!view) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfterValue(mem);
      auto type = MemRefType::get(cast<MemRefType>(mem.getType()).getShape(),
                                  b.getI16Type());
      view = UnrealizedConversionCastOp::create(b, TypeRange{type}, mem).getResult(0);
    }
    return view;
  }
  llvm::DenseMap<Value, Value> bitsViews;

  /// f32 -> `elt`; bf16 gives its bits as an i16, rounded to nearest even
  /// by integer arithmetic: a truncf becomes a libcall (__truncsfbf2) on
  /// CPUs without AVX512-BF16, which JIT'd and AOT objects cannot count on.
  Value truncateTo(Type elt, Value x);

  void emitRow(Value bIdx, Value h, Value hk, Value row);
  void emit(Value workBegin, Value workEnd);
};
} // namespace

Value Lowering::inlineRegion(Region &region, ValueRange args) {
  IRMapping map;
  map.map(region.getArguments(), args);
  for (Operation &inner : region.front().without_terminator()) {
    if (auto read = dyn_cast<ReadOp>(inner)) {
      SmallVector<Value> indices;
      for (Value i : read.getIndices())
        indices.push_back(map.lookup(i));
      map.map(read.getResult(),
              memref::LoadOp::create(b, read.getSource(), indices).getResult());
      continue;
    }
    if (auto size = dyn_cast<SizeOp>(inner)) {
      Value v;
      switch (size.getKind()) {
      case SizeKind::batch: v = batch; break;
      case SizeKind::q_heads: v = qHeads; break;
      case SizeKind::kv_heads: v = kvHeads; break;
      case SizeKind::q_len: v = qLen; break;
      case SizeKind::kv_len: v = kvLen; break;
      case SizeKind::head_dim: v = headDim; break;
      case SizeKind::value_dim: v = valueDim; break;
      }
      map.map(size.getResult(), v);
      continue;
    }
    b.clone(inner, map);
  }
  return map.lookupOrDefault(yieldedValue(region));
}

Value Lowering::readF32(Value mem, ValueRange indices) {
  Type elt = cast<MemRefType>(mem.getType()).getElementType();
  if (elt.isBF16()) {
    // bf16 -> f32 is a 16-bit shift. Read the raw bits: x86 without
    // AVX512-BF16 legalizes bfloat vector loads through libcalls.
    Value bits = vector::TransferReadOp::create(
        b, VectorType::get({width}, b.getI16Type()), bitsView(mem), indices,
        arith::ConstantOp::create(b, b.getI16IntegerAttr(0)).getResult(),
        ArrayRef<bool>{false});
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
                                           ArrayRef<bool>{false});
  if (elt != b.getF32Type())
    v = arith::ExtFOp::create(b, vecF32(), v);
  return v;
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

void Lowering::emitRow(Value bIdx, Value h, Value hk, Value row) {
  Value zero = idx(0), one = idx(1), w = idx(width);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0);
  Value i = arith::AddIOp::create(b, row, queryOffset);
  bool softmax = op.getKernel() == KernelKind::softmax;

  // qBuf = scale * q[b, h, row, :], accBuf = 0, padded to a multiple of width.
  Value dPad = memref::DimOp::create(b, qBuf, 0);
  Value scale = f32(op.getScale().convertToDouble());
  Value scaleV = vector::BroadcastOp::create(b, vecF32(), scale);
  scf::ForOp::create(b, zero, dPad, w, {},
                     [&](OpBuilder &, Location, Value d, ValueRange) {
                       Value qv = readF32(op.getQuery(), {bIdx, h, row, d});
                       qv = arith::MulFOp::create(b, qv, scaleV);
                       vector::StoreOp::create(b, qv, qBuf, d);
                       scf::YieldOp::create(b);
                     });
  Value dvPad = memref::DimOp::create(b, accBuf, 0);
  Value zeroV = vector::BroadcastOp::create(b, vecF32(), fzero);
  scf::ForOp::create(b, zero, dvPad, w, {},
                     [&](OpBuilder &, Location, Value d, ValueRange) {
                       vector::StoreOp::create(b, zeroV, accBuf, d);
                       scf::YieldOp::create(b);
                     });

  // Key tiles. The loop carries (m, l).
  Value bk = idx(blockK);
  auto tileLoop = scf::ForOp::create(
      b, zero, kvLen, bk, ValueRange{negInf, fzero},
      [&](OpBuilder &, Location, Value kt, ValueRange mAndL) {
        Value m = mAndL[0], l = mAndL[1];
        Value jEnd = arith::MinSIOp::create(
            b, arith::AddIOp::create(b, kt, bk), kvLen);
        // Pass 1: scores of the tile into scoreBuf, and their max.
        auto scoreLoop = scf::ForOp::create(
            b, kt, jEnd, one, ValueRange{negInf},
            [&](OpBuilder &, Location, Value j, ValueRange tileMax) {
              auto dot = scf::ForOp::create(
                  b, zero, dPad, w, ValueRange{zeroV},
                  [&](OpBuilder &, Location, Value d, ValueRange acc) {
                    Value qv = vector::LoadOp::create(b, vecF32(), qBuf, d);
                    Value kv = readF32(op.getKey(), {bIdx, hk, j, d});
                    scf::YieldOp::create(
                        b, ValueRange{vector::FMAOp::create(b, qv, kv, acc[0])
                                          .getResult()});
                  });
              Value s = vector::ReductionOp::create(
                  b, vector::CombiningKind::ADD, dot.getResult(0));
              if (!op.getScore().empty())
                s = inlineRegion(op.getScore(), {s, bIdx, h, i, j});
              if (!op.getMask().empty()) {
                Value keep = inlineRegion(op.getMask(), {bIdx, h, i, j});
                s = arith::SelectOp::create(b, keep, s, negInf);
              }
              Value jLocal = arith::SubIOp::create(b, j, kt);
              memref::StoreOp::create(b, s, scoreBuf, jLocal);
              scf::YieldOp::create(
                  b, ValueRange{arith::MaximumFOp::create(b, tileMax[0], s)
                                    .getResult()});
            });
        Value tileMax = scoreLoop.getResult(0);

        // Softmax: rescale by exp(m - mNew), weights exp(s - mNew); a max of
        // -inf (nothing visible yet) uses 0 so that no -inf - -inf appears.
        // Sigmoid: weights sigmoid(s), no rescaling.
        Value mNew = m, base = fzero, corr = f32(1.0);
        if (softmax) {
          mNew = arith::MaximumFOp::create(b, m, tileMax);
          Value isNegInf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ,
                                                 mNew, negInf);
          base = arith::SelectOp::create(b, isNegInf, fzero, mNew);
          corr = math::ExpOp::create(b, arith::SubFOp::create(b, m, base));
        }
        // Pass 2: weights in place, and their sum.
        auto weightLoop = scf::ForOp::create(
            b, kt, jEnd, one, ValueRange{fzero},
            [&](OpBuilder &, Location, Value j, ValueRange sum) {
              Value jLocal = arith::SubIOp::create(b, j, kt);
              Value s = memref::LoadOp::create(b, scoreBuf, jLocal);
              Value p;
              if (softmax) {
                p = math::ExpOp::create(b, arith::SubFOp::create(b, s, base));
              } else {
                // sigmoid(-inf) = 1 / (1 + inf) = 0 for masked keys.
                Value e = math::ExpOp::create(b, arith::NegFOp::create(b, s));
                p = arith::DivFOp::create(
                    b, f32(1.0), arith::AddFOp::create(b, f32(1.0), e));
              }
              memref::StoreOp::create(b, p, scoreBuf, jLocal);
              scf::YieldOp::create(
                  b, ValueRange{arith::AddFOp::create(b, sum[0], p).getResult()});
            });
        Value lNew = arith::AddFOp::create(
            b, arith::MulFOp::create(b, l, corr), weightLoop.getResult(0));
        // acc = acc * corr + sum_j p_j v_j, one register chunk of Dv at a time.
        Value corrV = vector::BroadcastOp::create(b, vecF32(), corr);
        scf::ForOp::create(
            b, zero, dvPad, w, {},
            [&](OpBuilder &, Location, Value d, ValueRange) {
              Value acc0 = arith::MulFOp::create(
                  b, vector::LoadOp::create(b, vecF32(), accBuf, d), corrV);
              auto pv = scf::ForOp::create(
                  b, kt, jEnd, one, ValueRange{acc0},
                  [&](OpBuilder &, Location, Value j, ValueRange acc) {
                    Value jLocal = arith::SubIOp::create(b, j, kt);
                    Value p = memref::LoadOp::create(b, scoreBuf, jLocal);
                    Value pVec = vector::BroadcastOp::create(b, vecF32(), p);
                    Value vv = readF32(op.getValue(), {bIdx, hk, j, d});
                    scf::YieldOp::create(
                        b, ValueRange{vector::FMAOp::create(b, pVec, vv, acc[0])
                                          .getResult()});
                  });
              vector::StoreOp::create(b, pv.getResult(0), accBuf, d);
              scf::YieldOp::create(b);
            });
        scf::YieldOp::create(b, ValueRange{mNew, lNew});
      });
  Value m = tileLoop.getResult(0), l = tileLoop.getResult(1);

  // Normalise (softmax only), gate, store. An all-masked row has l = 0 and
  // gives gate(0) and lse = -inf.
  Value hasAny =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, l, fzero);
  Value inv = f32(1.0);
  if (softmax)
    inv = arith::SelectOp::create(b, hasAny,
                                  arith::DivFOp::create(b, f32(1.0), l), fzero);
  Type outElt = op.getOutput().getType().getElementType();
  // bf16 outputs are written as raw i16 bits through a view of the same
  // memref; both lower to one LLVM descriptor, so the cast folds away.
  Value outMem = outElt.isBF16() ? bitsView(op.getOutput()) : op.getOutput();
  scf::ForOp::create(
      b, zero, valueDim, one, {},
      [&](OpBuilder &, Location, Value d, ValueRange) {
        Value x = arith::MulFOp::create(
            b, memref::LoadOp::create(b, accBuf, d), inv);
        if (!op.getGate().empty())
          x = inlineRegion(op.getGate(), {x, bIdx, h, i, d});
        x = truncateTo(outElt, x);
        memref::StoreOp::create(b, x, outMem, ValueRange{bIdx, h, row, d});
        scf::YieldOp::create(b);
      });
  if (Value lse = op.getLse()) {
    Value logL = math::LogOp::create(b, l);
    Value value = arith::SelectOp::create(
        b, hasAny, arith::AddFOp::create(b, m, logL), negInf);
    memref::StoreOp::create(b, value, lse, ValueRange{bIdx, h, row});
  }
}

void Lowering::emit(Value workBegin, Value workEnd) {
  Value bq = idx(blockQ), one = idx(1);
  // Items are (b, h, query tile), query tile fastest: neighbouring items
  // share K/V of one head.
  Value qTiles = arith::CeilDivSIOp::create(b, qLen, bq);
  scf::ForOp::create(
      b, workBegin, workEnd, one, {},
      [&](OpBuilder &, Location, Value item, ValueRange) {
        Value qt = arith::RemSIOp::create(b, item, qTiles);
        Value bh = arith::DivSIOp::create(b, item, qTiles);
        Value h = arith::RemSIOp::create(b, bh, qHeads);
        Value bIdx = arith::DivSIOp::create(b, bh, qHeads);
        Value hk = arith::DivSIOp::create(b, h, group);
        Value r0 = arith::MulIOp::create(b, qt, bq);
        Value r1 = arith::MinSIOp::create(b, arith::AddIOp::create(b, r0, bq),
                                          qLen);
        scf::ForOp::create(b, r0, r1, one, {},
                           [&](OpBuilder &, Location, Value row, ValueRange) {
                             emitRow(bIdx, h, hk, row);
                             scf::YieldOp::create(b);
                           });
        scf::YieldOp::create(b);
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
    ScheduleAttr schedule = op.getScheduleAttr();
    if (!schedule) {
      op.emitOpError("has no schedule; run attn-select-schedule first");
      return signalPassFailure();
    }

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
    Lowering low(op, b, vectorWidth);
    low.blockQ = schedule.getBlockQ();
    low.blockK = schedule.getBlockK();
    Value q = op.getQuery(), k = op.getKey(), v = op.getValue();
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
      low.kvLen = dim(k, 2);
      low.valueDim = dim(v, 3);
      low.group = arith::DivSIOp::create(b, low.qHeads, low.kvHeads);
      low.queryOffset = op.getAlign() == QueryAlign::end
                            ? arith::SubIOp::create(b, low.kvLen, low.qLen).getResult()
                            : low.idx(0);
      Value w = low.idx(vectorWidth);
      auto padded = [&](Value size) -> Value {
        return arith::MulIOp::create(
            b, arith::CeilDivSIOp::create(b, size, w), w);
      };
      auto dyn1d = MemRefType::get({ShapedType::kDynamic}, b.getF32Type());
      low.qBuf = memref::AllocaOp::create(b, dyn1d, ValueRange{padded(low.headDim)});
      low.accBuf = memref::AllocaOp::create(b, dyn1d, ValueRange{padded(low.valueDim)});
      low.scoreBuf = memref::AllocaOp::create(
          b, MemRefType::get({low.blockK}, b.getF32Type()));
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

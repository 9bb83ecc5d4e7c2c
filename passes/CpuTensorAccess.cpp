//===- CpuTensorAccess.cpp - Tensor and page reads of the CPU loop nest ---===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// How the CPU loop nest reads q, k, v and the extras as f32 vectors (bf16 by
// a shift of raw bits, q8/q4 codes times their group scales, keys through
// the block table in the paged form) and rounds its outputs.
//
//===----------------------------------------------------------------------===//

#include "passes/CpuLowering.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace attnc::attn;
using namespace attnc::cpu_lowering;

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
    return arith::BitcastOp::create(b, vecF32(),
                                    arith::ShLIOp::create(b, wide, splatInt(i32v, 16)));
  }
  auto vt = VectorType::get({width}, elt);
  Value pad = arith::ConstantOp::create(b, b.getZeroAttr(elt));
  Value v = vector::TransferReadOp::create(b, vt, mem, indices, pad,
                                           ArrayRef<bool>{inBounds});
  if (elt != b.getF32Type())
    v = arith::ExtFOp::create(b, vecF32(), v);
  return v;
}

Value Lowering::readBits(Value mem, ValueRange indices) {
  return vector::TransferReadOp::create(
      b, VectorType::get({width}, b.getI16Type()), bitsView(mem), indices,
      arith::ConstantOp::create(b, b.getI16IntegerAttr(0)).getResult(), ArrayRef<bool>{true});
}

std::pair<Value, Value> Lowering::keyAt(Value bIdx, Value j) {
  if (!op.isPaged())
    return {bIdx, j};
  Value entry = memref::LoadOp::create(
      b, op.getPageTable(), ValueRange{bIdx, arith::DivUIOp::create(b, j, pageSize)});
  Value page = arith::IndexCastOp::create(b, b.getIndexType(), entry);
  return {page, arith::RemUIOp::create(b, j, pageSize)};
}

void Lowering::prefetchPages(Value bIdx, Value hk, Value from, Value to) {
  // A head's rows of one page are contiguous (the runtime checks that pages
  // are row-major inside), but the next page's are a page stride away,
  // which the hardware prefetchers do not follow: without this a decode
  // step waits on memory latency, not bandwidth.
  Value one = idx(1), zero = idx(0);
  Value firstPage = arith::DivUIOp::create(b, from, pageSize);
  Value endPage = arith::CeilDivUIOp::create(b, to, pageSize);
  auto prefetchRows = [&](Value mem, Value page, int64_t step) {
    auto type = cast<MemRefType>(mem.getType());
    int64_t row = type.getDimSize(3);
    int64_t eltBytes = std::max<int64_t>(1, type.getElementTypeBitWidth() / 8);
    // One prefetch per 64-byte line of a row (a dynamic row: its start).
    int64_t perLine = 64 / eltBytes;
    int64_t lines = ShapedType::isDynamic(row) ? 1 : (row + perLine - 1) / perLine;
    loop(zero, pageSize, idx(step), [&](Value slot) {
      for (int64_t line = 0; line < lines; ++line)
        memref::PrefetchOp::create(b, mem, ValueRange{page, hk, slot, idx(line * perLine)},
                                   /*isWrite=*/false, /*localityHint=*/3,
                                   /*isDataCache=*/true);
    });
  };
  loop(firstPage, endPage, one, [&](Value p) {
    Value page = arith::IndexCastOp::create(
        b, b.getIndexType(),
        memref::LoadOp::create(b, op.getPageTable(), ValueRange{bIdx, p}));
    prefetchRows(op.getKey(), page, 1);
    prefetchRows(op.getValue(), page, 1);
    if (op.getKvQuant()) {
      // Scale rows are short: one prefetch per line's worth of slots.
      for (Value scales : {op.getKeyScale(), op.getValueScale()}) {
        int64_t groups = cast<MemRefType>(scales.getType()).getDimSize(3);
        int64_t step = ShapedType::isDynamic(groups) ? 1 : std::max<int64_t>(1, 16 / groups);
        prefetchRows(scales, page, step);
      }
    }
  });
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
    auto [lo, hi] = splitNibbles(bytes);
    Value nibbles = vector::InterleaveOp::create(b, lo, hi);
    ints = arith::SubIOp::create(b, arith::ExtUIOp::create(b, i32v, nibbles), splatInt(i32v, 8));
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

void Lowering::copyValueRow(std::pair<Value, Value> at, Value hk, Value dest, Value destBase) {
  auto codeType = cast<MemRefType>(op.getValue().getType());
  bool q4 = op.getKvQuant() && *op.getKvQuant() == KVQuant::q4;
  int64_t features = q4 && !codeType.isDynamicDim(3) ? codeType.getDimSize(3) * 2
                                                       : ShapedType::kDynamic;
  int64_t groups =
      q4 ? cast<MemRefType>(op.getValueScale().getType()).getDimSize(3) : ShapedType::kDynamic;
  // q4 rows of whole 128-feature chunks and groups of whole 16-feature
  // parts: a chunk's 64 bytes are split into low and high nibbles once, and
  // two in-lane byte interleaves (vpunpcklbw / vpunpckhbw) put features
  // [32L, 32L + 16) in 128-bit lane L of the first and [32L + 16, 32L + 32)
  // in lane L of the second. Each 16 features then cost a lane extract, a
  // widening, a conversion and one FMA that applies scale and offset:
  // (n - 8) s = n s - 8 s. The per-16-feature path spends an 8-byte load, a
  // split, an interleave and a separate offset on each.
  if (!q4 || width != 16 || ShapedType::isDynamic(features) || features % 128 != 0 ||
      ShapedType::isDynamic(groups) || features % groups != 0 || (features / groups) % 16 != 0) {
    Value zero = idx(0), w = idx(width);
    loop(zero, dvPad, w, [&](Value d) {
      Value vv = readKVAt(/*value=*/true, at, hk, d);
      vector::StoreOp::create(b, vv, dest, ValueRange{addi(destBase, d)});
    });
    return;
  }
  int64_t groupSize = features / groups;
  auto bytes64 = VectorType::get({64}, b.getI8Type());
  auto i32v = VectorType::get({16}, b.getI32Type());
  SmallVector<int64_t> lowPairs, highPairs;
  for (int64_t lane = 0; lane < 4; ++lane)
    for (int64_t k = 0; k < 8; ++k) {
      lowPairs.append({16 * lane + k, 64 + 16 * lane + k});
      highPairs.append({16 * lane + 8 + k, 64 + 16 * lane + 8 + k});
    }
  for (int64_t chunk = 0; chunk < features / 128; ++chunk) {
    Value codes = vector::LoadOp::create(b, bytes64, op.getValue(),
                                         ValueRange{at.first, hk, at.second, idx(chunk * 64)});
    auto [lo, hi] = splitNibbles(codes);
    Value halves[2] = {vector::ShuffleOp::create(b, lo, hi, lowPairs),
                       vector::ShuffleOp::create(b, lo, hi, highPairs)};
    for (int64_t part = 0; part < 8; ++part) {
      int64_t first = chunk * 128 + 16 * part;
      Value bytes = vector::ExtractStridedSliceOp::create(
          b, halves[part % 2], ArrayRef<int64_t>{16 * (part / 2)}, ArrayRef<int64_t>{16},
          ArrayRef<int64_t>{1});
      Value x = arith::UIToFPOp::create(b, vecF32(), arith::ExtUIOp::create(b, i32v, bytes));
      Value scale = memref::LoadOp::create(
          b, op.getValueScale(), ValueRange{at.first, hk, at.second, idx(first / groupSize)});
      Value scaleV = vector::BroadcastOp::create(b, vecF32(), scale);
      Value offsetV = vector::BroadcastOp::create(
          b, vecF32(), arith::MulFOp::create(b, scale, f32(-8.0)));
      vector::StoreOp::create(b, math::FmaOp::create(b, x, scaleV, offsetV), dest,
                              ValueRange{addi(destBase, idx(first))});
    }
  }
  // No padding to write: dvPad is the row's length, a multiple of 128.
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

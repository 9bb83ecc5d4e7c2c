//===- CpuDecodeDots.cpp - Decode items' scores, key by key ---------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Decode items (at most kRows query rows) read every key once, with no
// transposed K tile: each key's row is multiplied with the item's q rows
// into vectors of partial products, whose lanes are summed four rows at a
// time (emitKeyScores, sumLanes). The f32 form (CpuRowGroup.cpp) uses FMAs;
// two forms here replace them where the CPU has the instructions.
//
// int8, for q4 (and on request q8) keys. Decode items spent
// most of their score work widening codes to f32: per 16 features a load,
// unpack, convert, scale multiply, then one FMA per row. With AVX512-VNNI
// the codes stay bytes: the item's q rows are quantized to int8 once (a
// scale per 32-bit lane, i.e. per 8 features for q4 and 4 for q8), and
// vpdpbusd per row and 64 bytes of codes sums products of 4 byte pairs into
// each i32 lane. The lane sums are converted, multiplied by the q lane
// scale and the key's group scale, and reduced across lanes as before.
//
// q is quantized in two terms: codes c1 = round(y) of y = q / scale, and
// codes c2 = round(256 (y - c1)) of what c1 leaves, so q = scale (c1 +
// c2 / 256) to within 1/512 of a code (1.5e-5 of the lane's largest |q|,
// below bf16's own rounding). One int8 term (2e-3 of it) was faster by a
// dot per row and 64 bytes, but put sharp softmax rows (|s| of a few units)
// past the bf16 tolerance: random specs found errors of 0.021-0.023 against
// 0.02. The two sums combine exactly in i32: 256 sum(c1 x) + sum(c2 x).
//
// vpdpbusd takes unsigned bytes times signed bytes: the codes are the
// unsigned side (q4 nibbles are 0..15 with offset 8; q8 codes get 128 added
// by flipping their top bit), and minus the offset times the lane's sum of
// 256 c1 + c2 starts the c2 accumulator, so the products need no correction. q4
// nibbles are split into a vector of low (even features) and one of high
// (odd features) nibbles; the q row is stored in that order, so no byte is
// moved per key.
//
// bf16 pairs, for bf16 q and keys (AVX512-BF16): one vdpbf16ps per row and
// 32 features multiplies the raw q row with the key row as they are stored
// (bf16 products are exact in f32, so this is the f32 path's arithmetic in
// another order) instead of widening every key vector to f32 first; the
// softmax scale multiplies the sums.
//
//===----------------------------------------------------------------------===//

#include "passes/CpuLowering.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace attnc::attn;
using namespace attnc::cpu_lowering;

SmallVector<Value> Lowering::sumLanes(ArrayRef<Value> vecs) {
  SmallVector<Value> sums;
  auto shuffle = [&](Value x, Value y, ArrayRef<int64_t> lanes) -> Value {
    return vector::ShuffleOp::create(b, x, y, lanes);
  };
  size_t i = 0;
  for (; width >= 8 && i + 4 <= vecs.size(); i += 4) {
    // Lanes [0, w/2) of x hold halves of vecs[i], [w/2, w) of vecs[i + 1];
    // y the same for the next two.
    int64_t half = width / 2, quarter = width / 4;
    SmallVector<int64_t> lows, highs;
    for (int64_t l = 0; l < width; ++l) {
      lows.push_back(l < half ? l : width + l - half);
      highs.push_back(l < half ? l + half : width + l);
    }
    auto halve = [&](Value p, Value q) {
      return arith::AddFOp::create(b, shuffle(p, q, lows), shuffle(p, q, highs)).getResult();
    };
    Value x = halve(vecs[i], vecs[i + 1]), y = halve(vecs[i + 2], vecs[i + 3]);
    // Quarters: vector v of the four in lanes [v w/4, (v + 1) w/4).
    SmallVector<int64_t> firsts, seconds;
    for (int64_t l = 0; l < width; ++l) {
      int64_t v = l / quarter, at = l % quarter;
      int64_t base = (v % 2) * half + (v / 2) * width;
      firsts.push_back(base + at);
      seconds.push_back(base + quarter + at);
    }
    Value z = arith::AddFOp::create(b, shuffle(x, y, firsts), shuffle(x, y, seconds));
    // Within each quarter, fold lanes onto its first.
    for (int64_t step = quarter / 2; step >= 1; step /= 2) {
      SmallVector<int64_t> partner;
      for (int64_t l = 0; l < width; ++l)
        partner.push_back(l ^ step);
      z = arith::AddFOp::create(b, z, shuffle(z, z, partner));
    }
    for (int64_t v = 0; v < 4; ++v)
      sums.push_back(vector::ExtractOp::create(b, z, ArrayRef<int64_t>{v * quarter}));
  }
  for (; i < vecs.size(); ++i)
    sums.push_back(vector::ReductionOp::create(b, vector::CombiningKind::ADD, vecs[i], Value(),
                                               arith::FastMathFlags::reassoc));
  return sums;
}

void Lowering::emitKeyScores(
    Value bIdx, Value kt, int64_t n,
    function_ref<SmallVector<Value>(std::pair<Value, Value>)> laneDots, Value scale) {
  Value lastKey = arith::SubIOp::create(b, kvLen, idx(1));
  loop(idx(0), bkPad, idx(1), [&](Value jj) {
    std::pair<Value, Value> key = keyAt(bIdx, arith::MinSIOp::create(b, addi(kt, jj), lastKey));
    SmallVector<Value> sums = sumLanes(laneDots(key));
    for (int64_t r = 0; r < n; ++r) {
      Value score = scale ? arith::MulFOp::create(b, sums[r], scale).getResult() : sums[r];
      memref::StoreOp::create(b, score, sBuf, addi(muli(idx(r), bkPad), jj));
    }
  });
}

int64_t Lowering::int8FeaturesPerLane() {
  return *op.getKvQuant() == KVQuant::q4 ? 8 : 4;
}

int64_t Lowering::int8RowBytes() {
  return int8Lanes / 16 * (*op.getKvQuant() == KVQuant::q4 ? 128 : 64);
}

int64_t Lowering::int8RowStride() { return 2 * int8RowBytes(); }

void Lowering::clearInt8Rows() {
  // Lanes past the head dim (a last chunk of codes that is partial) keep
  // scale and offset 0, so their sums are 0 whatever the codes' padding.
  Value zero = idx(0), one = idx(1);
  loop(zero, idx(kRows * int8Lanes), one, [&](Value at) {
    memref::StoreOp::create(b, f32(0.0), qLaneScale, at);
    memref::StoreOp::create(b, arith::ConstantIntOp::create(b, 0, 32), qLaneOffset, at);
  });
  loop(zero, idx(kRows * int8RowStride()), one, [&](Value at) {
    memref::StoreOp::create(b, arith::ConstantIntOp::create(b, 0, 8), qInt8, at);
  });
}

void Lowering::quantizeQueryRows() {
  bool q4 = *op.getKvQuant() == KVQuant::q4;
  int64_t perLane = int8FeaturesPerLane();
  int64_t features = cast<MemRefType>(op.getQuery().getType()).getDimSize(3);
  int64_t rowBytes = int8RowBytes();
  Value zero = idx(0), one = idx(1);
  Value fzero = f32(0.0);
  Type i32 = b.getI32Type(), i8 = b.getI8Type();
  loop(zero, idx(kRows), one, [&](Value rr) {
    loop(zero, idx(features / perLane), one, [&](Value lane) {
      // Feature and byte of element t of the lane: q4 lanes hold features
      // [8l, 8l + 8) of their 128-feature chunk, even ones in the chunk's
      // first 64 bytes (the low nibbles' order), odd ones in the next 64.
      Value chunk = arith::DivUIOp::create(b, lane, idx(16));
      Value inChunk = arith::RemUIOp::create(b, lane, idx(16));
      auto featureOf = [&](int64_t t) -> Value {
        return addi(muli(lane, idx(perLane)), idx(t));
      };
      auto byteOf = [&](int64_t t) -> Value {
        if (!q4)
          return featureOf(t);
        return addi(muli(chunk, idx(128)),
                    addi(muli(inChunk, idx(4)), idx((t % 2) * 64 + t / 2)));
      };
      SmallVector<Value> x(perLane);
      Value maxAbs = fzero;
      for (int64_t t = 0; t < perLane; ++t) {
        x[t] = memref::LoadOp::create(b, qBuf, addi(muli(rr, dPad), featureOf(t)));
        maxAbs = arith::MaximumFOp::create(b, maxAbs, math::AbsFOp::create(b, x[t]));
      }
      // A NaN q gives a NaN lane scale, so the row's scores stay NaN. The
      // scale is that of the combined sums, 256 c1 + c2.
      Value scale = arith::DivFOp::create(b, maxAbs, f32(127.0 * 256.0));
      Value positive = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, maxAbs, fzero);
      Value inverse = arith::SelectOp::create(
          b, positive, arith::DivFOp::create(b, f32(127.0), maxAbs), fzero);
      // Sum over the lane of 256 c1 + c2, the codes' weight in the sums.
      Value sum = arith::ConstantIntOp::create(b, 0, 32);
      Value rowAt = muli(rr, idx(int8RowStride()));
      for (int64_t t = 0; t < perLane; ++t) {
        Value y = arith::MulFOp::create(b, x[t], inverse);
        Value high = math::RoundEvenOp::create(b, y);
        // y - c1 is exact and within [-1/2, 1/2]: c2 in [-128, 128], the
        // ends (exact halves) clamped to the int8 range.
        Value low = math::RoundEvenOp::create(
            b, arith::MulFOp::create(b, arith::SubFOp::create(b, y, high), f32(256.0)));
        low = arith::MinimumFOp::create(b, arith::MaximumFOp::create(b, low, f32(-127.0)),
                                        f32(127.0));
        Value c1 = arith::FPToSIOp::create(b, i32, high);
        Value c2 = arith::FPToSIOp::create(b, i32, low);
        memref::StoreOp::create(b, arith::TruncIOp::create(b, i8, c1), qInt8,
                                addi(rowAt, byteOf(t)));
        memref::StoreOp::create(b, arith::TruncIOp::create(b, i8, c2), qInt8,
                                addi(rowAt, addi(idx(rowBytes), byteOf(t))));
        Value weight = arith::AddIOp::create(
            b, arith::MulIOp::create(b, c1, arith::ConstantIntOp::create(b, 256, 32)), c2);
        sum = arith::AddIOp::create(b, sum, weight);
      }
      Value at = addi(muli(rr, idx(int8Lanes)), lane);
      memref::StoreOp::create(b, scale, qLaneScale, at);
      int64_t offset = q4 ? 8 : 128;
      memref::StoreOp::create(
          b, arith::MulIOp::create(b, sum, arith::ConstantIntOp::create(b, -offset, 32)),
          qLaneOffset, at);
    });
  });
}

void Lowering::emitBF16Scores(Value bIdx, Value hk, Value rg, Value kt, int64_t n) {
  int64_t features = cast<MemRefType>(op.getQuery().getType()).getDimSize(3);
  auto bits32 = VectorType::get({32}, b.getI16Type());
  auto bf16x32 = VectorType::get({32}, b.getBF16Type());
  auto pairs = [&](Value mem, ValueRange at) -> Value {
    return vector::BitCastOp::create(b, bf16x32, vector::LoadOp::create(b, bits32, mem, at));
  };
  auto laneDots = [&](std::pair<Value, Value> key) {
    SmallVector<Value> acc(n, vector::BroadcastOp::create(b, vecF32(), f32(0.0)));
    for (int64_t c = 0; c < features / 32; ++c) {
      Value k = pairs(bitsView(op.getKey()), ValueRange{key.first, hk, key.second, idx(32 * c)});
      for (int64_t r = 0; r < n; ++r) {
        Value q = pairs(qBF16, ValueRange{addi(muli(addi(rg, idx(r)), idx(features)), idx(32 * c))});
        acc[r] = LLVM::CallIntrinsicOp::create(b, vecF32(),
                                               b.getStringAttr("llvm.x86.avx512bf16.dpbf16ps.512"),
                                               ValueRange{acc[r], q, k})
                     .getResult(0);
      }
    }
    return acc;
  };
  emitKeyScores(bIdx, kt, n, laneDots, f32(op.getScale().convertToDouble()));
}

void Lowering::emitInt8Scores(Value bIdx, Value hk, Value rg, Value kt, int64_t n) {
  bool q4 = *op.getKvQuant() == KVQuant::q4;
  int64_t perLane = int8FeaturesPerLane();
  int64_t chunkFeatures = int8ChunkFeatures();
  int64_t features = cast<MemRefType>(op.getQuery().getType()).getDimSize(3);
  int64_t chunks = int8Lanes / 16, rowBytes = int8RowBytes();
  int64_t codeBytes = cast<MemRefType>(op.getKey().getType()).getDimSize(3);
  int64_t groups = cast<MemRefType>(op.getKeyScale().getType()).getDimSize(3);
  int64_t groupSize = features / groups;
  auto bytes64 = VectorType::get({64}, b.getI8Type());
  auto i32v = VectorType::get({16}, b.getI32Type());
  auto dot = [&](Value acc, Value codes, Value q) -> Value {
    return LLVM::CallIntrinsicOp::create(b, i32v,
                                         b.getStringAttr("llvm.x86.avx512.vpdpbusd.512"),
                                         ValueRange{acc, codes, q})
        .getResult(0);
  };
  Value zeroLanes = splatInt(i32v, 0), eight = splatInt(i32v, 8);
  auto laneDots = [&](std::pair<Value, Value> key) {
    SmallVector<Value> total(n);
    for (int64_t c = 0; c < chunks; ++c) {
      // A last chunk past the row's end reads zeros there (masked).
      SmallVector<Value> codesAt{key.first, hk, key.second, idx(c * 64)};
      Value codes =
          (c + 1) * 64 <= codeBytes
              ? vector::LoadOp::create(b, bytes64, op.getKey(), codesAt).getResult()
              : vector::TransferReadOp::create(b, bytes64, op.getKey(), codesAt,
                                               arith::ConstantIntOp::create(b, 0, 8).getResult(),
                                               ArrayRef<bool>{false})
                    .getResult();
      SmallVector<Value> parts;
      if (q4) {
        auto [lo, hi] = splitNibbles(codes);
        parts = {lo, hi};
      } else {
        parts = {arith::XOrIOp::create(b, codes, splatInt(bytes64, 0x80))};
      }
      // Lane l's group scale: lanes of one group are adjacent, so one
      // load of the chunk's groups and a shuffle (or a broadcast).
      SmallVector<int64_t> laneGroup(16);
      for (int64_t l = 0; l < 16; ++l)
        laneGroup[l] = std::min((c * chunkFeatures + l * perLane) / groupSize, groups - 1);
      int64_t g0 = laneGroup.front(), count = laneGroup.back() - g0 + 1;
      Value keyScale;
      if (count == 1) {
        keyScale = vector::BroadcastOp::create(
            b, vecF32(),
            memref::LoadOp::create(b, op.getKeyScale(),
                                   ValueRange{key.first, hk, key.second, idx(g0)}));
      } else {
        Value loaded = vector::LoadOp::create(
            b, VectorType::get({count}, b.getF32Type()), op.getKeyScale(),
            ValueRange{key.first, hk, key.second, idx(g0)});
        for (int64_t &g : laneGroup)
          g -= g0;
        keyScale = vector::ShuffleOp::create(b, loaded, loaded, laneGroup);
      }
      for (int64_t r = 0; r < n; ++r) {
        Value row = addi(rg, idx(r));
        Value laneAt = addi(muli(row, idx(int8Lanes)), idx(c * 16));
        // 256 sum(c1 x) + sum(c2 x) + offset: |sum(c1 x)| < 2^15, so the
        // total stays below 2^24 and converts to f32 exactly.
        Value high = zeroLanes;
        Value acc = vector::LoadOp::create(b, i32v, qLaneOffset, ValueRange{laneAt});
        Value qAt = addi(muli(row, idx(int8RowStride())), idx(c * (q4 ? 128 : 64)));
        for (size_t p = 0; p < parts.size(); ++p) {
          Value at = addi(qAt, idx(64 * p));
          high = dot(high, parts[p], vector::LoadOp::create(b, bytes64, qInt8, ValueRange{at}));
          acc = dot(acc, parts[p],
                    vector::LoadOp::create(b, bytes64, qInt8,
                                           ValueRange{addi(at, idx(rowBytes))}));
        }
        acc = arith::AddIOp::create(b, arith::ShLIOp::create(b, high, eight), acc);
        Value sums = arith::MulFOp::create(
            b, arith::SIToFPOp::create(b, vecF32(), acc),
            vector::LoadOp::create(b, vecF32(), qLaneScale, ValueRange{laneAt}));
        total[r] = c == 0 ? arith::MulFOp::create(b, sums, keyScale).getResult()
                          : math::FmaOp::create(b, sums, keyScale, total[r]).getResult();
      }
    }
    return total;
  };
  emitKeyScores(bIdx, kt, n, laneDots);
}

//===- CpuRowGroup.cpp - One row group against one key tile on the CPU ---===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The inner work of the loop nest (CpuLoopNest.cpp) on the vector path: for
// a group of query rows and a key tile, the scores (broadcast FMAs against
// the transposed K tile, or key by key for decode items), the score and
// mask regions over vectors of keys, the online softmax's weights and
// rescale (or a sigmoid's weights), and the product with the values.
//
//===----------------------------------------------------------------------===//

#include "passes/CpuLowering.h"

using namespace mlir;
using namespace attnc::attn;
using namespace attnc::cpu_lowering;

void Lowering::emitRowGroup(Value bIdx, Value hItem, Value hk, Value r0, Value nRows,
                            Value manyRows, Value rg, Value kt, Value nk, Value full) {
  Value zero = idx(0), one = idx(1), w = idx(width);
  Value fzero = f32(0.0);

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
  auto directScores = [&] {
    if (int8Dot) {
      byRowCount([&](int64_t n) { emitInt8Scores(bIdx, hk, rg, kt, n); });
      return;
    }
    if (bf16Dot) {
      byRowCount([&](int64_t n) { emitBF16Scores(bIdx, hk, rg, kt, n); });
      return;
    }
    Value zeroV = vector::BroadcastOp::create(b, vecF32(), fzero);
    // Scores of the item's rows, n at a time (its only row group: rows past
    // nRows repeat the last row and are never read).
    byRowCount([&](int64_t n) {
      emitKeyScores(bIdx, kt, n, [&](std::pair<Value, Value> key) {
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
        return SmallVector<Value>(dots.getResults());
      });
    });
  };
  // Keys [keyLo, keyHi) of the tile (multiples of 2 * width) that the
  // group's rows may see: in a PARTIAL tile, chunks of 2 * width keys that
  // the mask's interval bounds prove hidden from every row of the group are
  // neither scored nor weighed. Their sBuf lanes keep whatever they held,
  // which emitRowScores masks to -inf like every hidden key. The diagonal tiles
  // of causal masks and windows, and the tiles across a document boundary,
  // lose a quarter to a half of their work.
  Value keyLo = zero, keyHi = bkPad, weighLo = zero, weighCount = nk;
  if (!amx && skipTiles && full && !op.getMask().empty() && pack == 1) {
    int64_t chunks = (blockK + 2 * width - 1) / (2 * width);
    Value lastRow = arith::MinSIOp::create(b, addi(rg, idx(kRows - 1)),
                                           arith::SubIOp::create(b, nRows, one));
    Value iFirst = addi(rowOf(hItem, r0, rg).second, queryOffset);
    Value iLast = addi(rowOf(hItem, r0, lastRow).second, queryOffset);
    auto range = scf::IfOp::create(
        b, full,
        [&](OpBuilder &, Location) { scf::YieldOp::create(b, ValueRange{zero, bkPad}); },
        [&](OpBuilder &, Location) {
          Value lo = bkPad, hi = zero;
          SmallVector<Value> keep(chunks);
          for (int64_t c = 0; c < chunks; ++c) {
            keep[c] = keysMayShow(bIdx, hItem, iFirst, iLast, kt, idx(c * 2 * width),
                                  idx((c + 1) * 2 * width), nk);
            hi = arith::SelectOp::create(b, keep[c], idx((c + 1) * 2 * width), hi);
          }
          for (int64_t c = chunks - 1; c >= 0; --c)
            lo = arith::SelectOp::create(b, keep[c], idx(c * 2 * width), lo);
          scf::YieldOp::create(b, ValueRange{lo, hi});
        });
    keyLo = range.getResult(0);
    keyHi = range.getResult(1);
    // The weighed keys: [keyLo, min(keyHi, nk)), none when keyLo >= that.
    weighLo = keyLo;
    weighCount = arith::MaxSIOp::create(
        b, zero, arith::SubIOp::create(b, arith::MinSIOp::create(b, keyHi, nk), keyLo));
  }

  auto transposedScores = [&] {
    // The tile's kT: kTBuf, or the tile's block of the call's cache.
    Value kT = kTBuf, kTFirst = zero;
    if (kTAll) {
      Value inCache = tileInCache(kt);
      kT = arith::SelectOp::create(b, inCache, kTAll, kTBuf);
      kTFirst = arith::SelectOp::create(
          b, inCache, muli(arith::DivUIOp::create(b, kt, idx(blockK)), tileFloats), zero);
    }
    // S[r][j] = sum_d qs[rg + r][d] * kT[d][j], two vectors of keys at a
    // time: each q broadcast feeds two FMAs, and 2 * kRows independent
    // accumulators cover the FMA latency.
    loop(keyLo, keyHi, w2, [&](Value jc) {
      Value jc0 = addi(kTFirst, jc), jc1 = addi(jc0, w);
      SmallVector<Value> init(2 * kRows,
                              vector::BroadcastOp::create(b, vecF32(), fzero));
      ValueRange dots = pairedFmas(
          headDim, init, kRows,
          [&](Value d) -> std::pair<Value, Value> {
            Value row = muli(d, bkPad);
            return {vecLoad(kT, addi(row, jc0)), vecLoad(kT, addi(row, jc1))};
          },
          [&](Value d, int64_t r) -> Value {
            return memref::LoadOp::create(b, qBuf, addi(muli(addi(rg, idx(r)), dPad), d));
          });
      for (int64_t r = 0; r < kRows; ++r) {
        Value base = muli(idx(r), bkPad);
        vector::StoreOp::create(b, dots[r], sBuf, ValueRange{addi(base, jc)});
        vector::StoreOp::create(b, dots[kRows + r], sBuf, ValueRange{addi(base, addi(jc, w))});
      }
    });
  };
  // With AMX, items of more rows run emitAmxTile instead: only the direct
  // form is reached here.
  if (amx) {
    directScores();
  } else {
    scf::IfOp::create(
        b, manyRows,
        [&](OpBuilder &, Location) {
          transposedScores();
          scf::YieldOp::create(b);
        },
        [&](OpBuilder &, Location) {
          directScores();
          scf::YieldOp::create(b);
        });
  }

  // Per row: regions, the tile max, weights, the new max and sum.
  // A loop over the rows, not kRows copies: each row's work is a loop of
  // its own with the regions inlined, and copies of it were most of the
  // kernel's code (and of its compile time).
  loop(zero, idx(kRows), one, [&](Value r) {
    emitRowWeights(bIdx, hItem, r0, nRows, addi(rg, r), muli(r, bkPad), corrBuf, r, kt, nk,
                   full);
  });

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
      ValueRange pv = pairedFmas(
          weighCount, init, n,
          [&](Value x) -> std::pair<Value, Value> {
            Value row = muli(addi(weighLo, x), dvPad);
            return {vecLoad(vBuf, addi(row, dc)), vecLoad(vBuf, addi(row, dc1))};
          },
          [&](Value x, int64_t r) -> Value {
            return memref::LoadOp::create(b, sBuf, addi(muli(idx(r), bkPad), addi(weighLo, x)));
          });
      for (int64_t r = 0; r < n; ++r) {
        Value base = muli(addi(rg, idx(r)), dvPad);
        vector::StoreOp::create(b, pv[r], accBuf, ValueRange{addi(base, dc)});
        vector::StoreOp::create(b, pv[n + r], accBuf, ValueRange{addi(base, dc1)});
      }
    });
  };
  // The rows past a half group's have weights 0 only.
  byRowCount(weighValues);
}

Value Lowering::emitRowScores(Value bIdx, Value hItem, Value r0, Value rr, Value sRow,
                     Value kt, Value nk, Value full, bool onTiles) {
  Value zero = idx(0), one = idx(1), w = idx(width);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  bool softmax = op.getKernel() == KernelKind::softmax;
  // On AMX tiles (emitAmxTile): all of the item's scores in sAll, unscaled;
  // the scale multiplies them here unless it is folded into the exponent.
  Value sBuf = onTiles ? sAll : this->sBuf;
  bool foldScale = onTiles && foldsScaleOnTiles();
  Value scoreScale = onTiles && !foldScale ? f32(op.getScale().convertToDouble()) : Value();
  std::pair<Value, Value> headQuery = rowOf(hItem, r0, rr);
  Value h = headQuery.first;
  Value i = addi(headQuery.second, queryOffset);
  // Lanes [jc, jc + width) of the tile that hold keys (< nk).
  auto inTile = [&](Value jc) { return keysBelow(jc, nk); };
  Value negInfV = vector::BroadcastOp::create(b, vecF32(), negInf);
  // On tiles the row has bkPad scores; the keys past nk (copies of
  // the last key) become -inf, so no later loop needs a lane mask.
  if (onTiles)
    loop(nk, bkPad, one, [&](Value jj) {
      memref::StoreOp::create(b, negInf, sBuf, addi(sRow, jj));
    });
  // The tile max as `a > b ? a : b`, which is one vmaxps/vmaxnm: the
  // NaN-propagating maximumf costs a compare and a blend more per
  // vector and per reduction step. A NaN score still reaches the
  // output: its weight is NaN, and so the row's accumulator.
  auto selectMax = [&](Value x, Value y) -> Value {
    Value gt = arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, x, y);
    return arith::SelectOp::create(b, gt, x, y);
  };
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
            if (scoreScale)
              sv = arith::MulFOp::create(
                  b, sv, vector::BroadcastOp::create(b, vecF32(), scoreScale));
            bool rewrite = !score.empty() || withMask || scoreScale;
            if (rewrite) {
              Value j0 = addi(kt, jc);
              Value jv = arith::AddIOp::create(
                  b, vector::BroadcastOp::create(b, indexV, j0), iotaIdx);
              if (!score.empty())
                sv = regions().inlineLanes(score, {sv, bIdx, h, i, jv}, lanes,
                                           {Value(), Value(), Value(), Value(), j0});
              if (withMask)
                sv = arith::SelectOp::create(
                    b,
                    regions().inlineLanes(mask, {bIdx, h, i, jv}, lanes,
                                          {Value(), Value(), Value(), j0}),
                    sv, negInfV);
            }
            // Unrewritten scores on tiles are -inf past nk already.
            if (!onTiles || rewrite)
              sv = arith::SelectOp::create(b, lanes, sv, negInfV);
            if (rewrite)
              vector::StoreOp::create(b, sv, sBuf, ValueRange{addi(sRow, jc)});
            scf::YieldOp::create(b, ValueRange{selectMax(sv, acc[0])});
          });
      // Across lanes: halves folded onto each other, log2(width)
      // shuffles and maxes.
      Value v = vmax.getResult(0);
      for (int64_t half = width / 2; half >= 1; half /= 2) {
        SmallVector<int64_t> perm(width);
        for (int64_t lane = 0; lane < width; ++lane)
          perm[lane] = lane < half ? lane + half : lane;
        v = selectMax(v, vector::ShuffleOp::create(b, v, v, perm));
      }
      return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{0});
    }
    return scf::ForOp::create(
        b, zero, nk, one, ValueRange{negInf},
        [&](OpBuilder &, Location, Value jj, ValueRange tileMax) {
          Value j = addi(kt, jj);
          Value s = memref::LoadOp::create(b, sBuf, addi(sRow, jj));
          if (scoreScale)
            s = arith::MulFOp::create(b, s, scoreScale);
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
  if (foldScale)
    tileMaxValue = arith::MulFOp::create(b, tileMaxValue, f32(op.getScale().convertToDouble()));
  return tileMaxValue;
}

void Lowering::emitRowWeights(Value bIdx, Value hItem, Value r0, Value nRows, Value rr,
                              Value sRow, Value corrMem, Value corrAt, Value kt, Value nk,
                              Value full) {
  Value zero = idx(0), one = idx(1), w = idx(width);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0), fone = f32(1.0);
  bool softmax = op.getKernel() == KernelKind::softmax;
  // Rows past the item's end keep weight 0 so that P.V adds nothing.
  Value valid = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rr, nRows);
  scf::IfOp::create(
      b, valid,
      [&](OpBuilder &, Location) {
        Value tileMax = emitRowScores(bIdx, hItem, r0, rr, sRow, kt, nk, full, /*onTiles=*/false);
        Value m = memref::LoadOp::create(b, mBuf, rr);
        Value l = memref::LoadOp::create(b, lBuf, rr);
        // Softmax: rescale by exp(m - mNew), weights exp(s - mNew); a max
        // of -inf (nothing visible yet) uses 0, so no -inf - -inf appears.
        // Sigmoid: weights sigmoid(s), no rescaling.
        Value mNew = m, base = fzero, corr = fone;
        if (softmax) {
          mNew = arith::MaximumFOp::create(b, m, tileMax);
          Value isNegInf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mNew, negInf);
          base = arith::SelectOp::create(b, isNegInf, fzero, mNew);
          corr = math::ExpOp::create(b, arith::SubFOp::create(b, m, base));
        }
        // Weights, a vector at a time; lanes past the tile's end get 0.
        Value zeroV = vector::BroadcastOp::create(b, vecF32(), fzero);
        Value baseV = vector::BroadcastOp::create(b, vecF32(), base);
        Value oneV = vector::BroadcastOp::create(b, vecF32(), fone);
        auto splatF = [&](double v) -> Value {
          return vector::BroadcastOp::create(b, vecF32(), f32(v));
        };
        auto weights = scf::ForOp::create(
            b, zero, bkPad, w, ValueRange{zeroV},
            [&](OpBuilder &, Location, Value jc, ValueRange sum) {
              Value s = vecLoad(sBuf, addi(sRow, jc));
              Value p;
              if (softmax && fastExp) {
                // s - base first (exact where s is near the max, the
                // weights that matter), then the scale to base 2.
                p = exp2Avx512(
                    arith::MulFOp::create(b, arith::SubFOp::create(b, s, baseV), splatF(kLog2e)),
                    kExp2Quintic);
              } else if (softmax) {
                p = math::ExpOp::create(b, arith::SubFOp::create(b, s, baseV));
              } else if (fastExp) {
                // e^-s = 2^t, t = -s log2 e capped at 128 (2^128 is inf in
                // f32, so a masked key's -inf still gives 1 / (1 + inf) = 0).
                Value t = arith::MinimumFOp::create(
                    b, arith::MulFOp::create(b, s, splatF(-kLog2e)), splatF(128.0));
                p = arith::DivFOp::create(
                    b, oneV, arith::AddFOp::create(b, oneV, exp2Avx512(t, kExp2Quintic)));
              } else {
                // sigmoid(-inf) = 1 / (1 + inf) = 0 for masked keys.
                Value x = arith::NegFOp::create(b, s);
                p = arith::DivFOp::create(
                    b, oneV, arith::AddFOp::create(b, oneV, math::ExpOp::create(b, x)));
              }
              p = arith::SelectOp::create(b, keysBelow(jc, nk), p, zeroV);
              vector::StoreOp::create(b, p, sBuf, ValueRange{addi(sRow, jc)});
              scf::YieldOp::create(b, ValueRange{arith::AddFOp::create(b, sum[0], p).getResult()});
            });
        // Summed as a tree (reassociated), not lane after lane: 16 dependent
        // scalar adds per row and tile otherwise.
        Value weightSum = vector::ReductionOp::create(b, vector::CombiningKind::ADD,
                                                      weights.getResult(0), Value(),
                                                      arith::FastMathFlags::reassoc);
        Value lNew = arith::AddFOp::create(b, arith::MulFOp::create(b, l, corr), weightSum);
        memref::StoreOp::create(b, mNew, mBuf, rr);
        memref::StoreOp::create(b, lNew, lBuf, rr);
        memref::StoreOp::create(b, corr, corrMem, corrAt);
        scf::YieldOp::create(b);
      },
      [&](OpBuilder &, Location) {
        loop(zero, nk, one,
             [&](Value jj) { memref::StoreOp::create(b, fzero, sBuf, addi(sRow, jj)); });
        memref::StoreOp::create(b, fone, corrMem, corrAt);
        scf::YieldOp::create(b);
      });
}

Value Lowering::keysBelow(Value jc, Value nk) {
  auto i32v = VectorType::get({width}, b.getI32Type());
  SmallVector<int32_t> lanes(width);
  for (int64_t lane = 0; lane < width; ++lane)
    lanes[lane] = static_cast<int32_t>(lane);
  Value iota =
      arith::ConstantOp::create(b, DenseElementsAttr::get(i32v, ArrayRef<int32_t>(lanes)));
  auto splat = [&](Value x) -> Value {
    return vector::BroadcastOp::create(b, i32v, arith::IndexCastOp::create(b, b.getI32Type(), x));
  };
  return arith::CmpIOp::create(b, arith::CmpIPredicate::slt,
                               arith::AddIOp::create(b, splat(jc), iota), splat(nk));
}

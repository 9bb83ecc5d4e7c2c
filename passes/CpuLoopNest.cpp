//===- CpuLoopNest.cpp - Items and key tiles on the CPU ------------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The fused online-softmax loop nest convert-attn-to-cpu emits: items over
// the work range, key tiles (skipped, unmasked or masked by their interval
// bounds) and the K tiles they transpose, the split-KV combine and the
// epilogue. Per group of query rows and key tile, the scores, regions,
// softmax statistics and product with the values are CpuRowGroup.cpp's.
//
//===----------------------------------------------------------------------===//

#include "passes/CpuLowering.h"
#include "passes/TileIntervals.h"

using namespace mlir;
using namespace attnc::attn;
using namespace attnc::cpu_lowering;

void Lowering::transposeKTile(Value bIdx, Value hk, Value kt, Value lastKey, Value dest,
                              Value base) {
  Value zero = idx(0), one = idx(1), w = idx(width);
  loop(zero, bkPad, one, [&](Value jj) {
    std::pair<Value, Value> key = keyAt(bIdx, arith::MinSIOp::create(b, addi(kt, jj), lastKey));
    loop(zero, dPad, w, [&](Value d) {
      Value kv = readKVAt(/*value=*/false, key, hk, d);
      for (int64_t lane = 0; lane < width; ++lane) {
        Value x = vector::ExtractOp::create(b, kv, ArrayRef<int64_t>{lane});
        memref::StoreOp::create(b, x, dest, addi(base, addi(muli(addi(d, idx(lane)), bkPad), jj)));
      }
    });
  });
}

attnc::TileClass Lowering::classifyBox(const attnc::TileBox &box) {
  return attnc::classifyTile(b, op.getMask(), box,
                             [&](int kind) { return sizeOf(static_cast<SizeKind>(kind)); });
}

Value Lowering::keysMayShow(Value bIdx, Value h, Value iFirst, Value iLast, Value kt,
                            Value first, Value end, Value nk) {
  Value last = arith::SubIOp::create(b, arith::MinSIOp::create(b, end, nk), idx(1));
  attnc::TileBox box{bIdx, h, iFirst, iLast, addi(kt, first), addi(kt, last)};
  Value someKeys = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, first, nk);
  return arith::AndIOp::create(b, someKeys, classifyBox(box).mayKeep);
}

void Lowering::loadSequence(Value bIdx) {
  // This sequence's length (checked against the table by the runtime).
  kvLen = arith::IndexCastOp::create(
      b, b.getIndexType(), memref::LoadOp::create(b, op.getSeqLens(), ValueRange{bIdx}));
  queryOffset = op.getAlign() == QueryAlign::end
                    ? arith::SubIOp::create(b, kvLen, qLen).getResult()
                    : idx(0);
}

void Lowering::emitItem(Value bIdx, Value h, Value hk, Value r0, Value r1, Value split,
                        Value nSplits, Value slot, Value toPartials) {
  Value zero = idx(0), one = idx(1), w = idx(width), rows = idx(kRows);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0);
  Value nRows = arith::SubIOp::create(b, r1, r0);
  itemQueries = nRows;
  if (pack > 1)
    nRows = muli(nRows, idx(pack));
  Value lastRow = arith::SubIOp::create(b, qLen, one);
  if (op.isPaged())
    loadSequence(bIdx);

  // q rows, scaled once; rows of a partial last group repeat the last row.
  Value scaleV = vector::BroadcastOp::create(
      b, vecF32(), f32(op.getScale().convertToDouble()));
  Value zeroV = vector::BroadcastOp::create(b, vecF32(), fzero);
  // AMX tiles take rows 32 at a time.
  Value rowStep = amx ? idx(32) : rows;
  Value groupRows = arith::MulIOp::create(
      b, arith::CeilDivSIOp::create(b, nRows, rowStep), rowStep);
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
      if (amx)
        vector::StoreOp::create(b, readBits(op.getQuery(), {bIdx, qHead, row, d}),
                                bitsView(qAmx), ValueRange{addi(muli(rr, dPad), d)});
      // The raw q rows for bf16 scores (decode items have at most kRows;
      // dPad is the head dim here, a multiple of 32).
      if (bf16Dot)
        scf::IfOp::create(b, arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rr, rows),
                          [&](OpBuilder &, Location) {
                            vector::StoreOp::create(
                                b, readBits(op.getQuery(), {bIdx, qHead, row, d}), qBF16,
                                ValueRange{addi(muli(rr, dPad), d)});
                            scf::YieldOp::create(b);
                          });
    });
    loop(zero, dvPad, w, [&](Value d) {
      vector::StoreOp::create(b, zeroV, accBuf, ValueRange{addi(muli(rr, dvPad), d)});
    });
    memref::StoreOp::create(b, negInf, mBuf, rr);
    memref::StoreOp::create(b, fzero, lBuf, rr);
  });

  // Decode items with int8 scores: their q rows as int8, once per item.
  if (int8Dot)
    scf::IfOp::create(b, arith::CmpIOp::create(b, arith::CmpIPredicate::sle, nRows, rows),
                      [&](OpBuilder &, Location) {
                        quantizeQueryRows();
                        scf::YieldOp::create(b);
                      });

  Value bk = idx(blockK), lastKey = arith::SubIOp::create(b, kvLen, one);
  Value manyRows = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, nRows, rows);
  if (kTAll) {
    Value held = arith::AndIOp::create(
        b,
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                              memref::LoadOp::create(b, kTHead, ValueRange{zero}), bIdx),
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                              memref::LoadOp::create(b, kTHead, ValueRange{one}), hk));
    Value newHead = arith::AndIOp::create(
        b, arith::AndIOp::create(b, manyRows, useHeadKT),
        arith::XOrIOp::create(b, held, arith::ConstantIntOp::create(b, 1, 1)));
    scf::IfOp::create(b, newHead, [&](OpBuilder &, Location) {
      Value no = arith::ConstantIntOp::create(b, 0, 8);
      loop(zero, cachedKeyTiles, one, [&](Value t) { memref::StoreOp::create(b, no, kTDone, t); });
      memref::StoreOp::create(b, bIdx, kTHead, ValueRange{zero});
      memref::StoreOp::create(b, hk, kTHead, ValueRange{one});
      scf::YieldOp::create(b);
    });
  }
  // Split-KV: range `split` of `nSplits` takes an equal share of whole key
  // tiles, so the ranges cover the keys once; trailing ranges may be empty.
  Value keyBegin = zero, keyEnd = kvLen;
  if (split) {
    Value tiles = arith::CeilDivSIOp::create(b, kvLen, bk);
    Value perSplit = arith::CeilDivSIOp::create(b, tiles, nSplits);
    Value first = arith::MinSIOp::create(b, muli(split, perSplit), tiles);
    keyBegin = muli(first, bk);
    keyEnd = arith::MinSIOp::create(b, muli(addi(first, perSplit), bk), kvLen);
  }
  loop(keyBegin, keyEnd, bk, [&](Value kt) {
    Value nk = arith::MinSIOp::create(b, bk, arith::SubIOp::create(b, kvLen, kt));
    // Paged: the next tile's pages, while this one computes.
    if (op.isPaged()) {
      Value next = addi(kt, bk);
      Value nextEnd = arith::MinSIOp::create(b, addi(next, bk), keyEnd);
      scf::IfOp::create(b, arith::CmpIOp::create(b, arith::CmpIPredicate::slt, next, nextEnd),
                        [&](OpBuilder &, Location) {
                          prefetchPages(bIdx, hk, next, nextEnd);
                          scf::YieldOp::create(b);
                        });
    }
    auto vectorTileBody = [&](Value full) {
      // K tile transposed into kT[d][j] (kTBuf, or the call's cache of the
      // head's tiles: CpuLowering.h); keys past the end repeat the last
      // key (their scores are never read). A width x width transpose in
      // registers (vector.transpose lowered to AVX-512 shuffles) was tried:
      // up to 6% faster for prefill on the development VM, but 17% and more
      // slower for bf16 and q8 decode (docs/cpu-backend.md).
      // Items of at most kRows rows read K rows directly (emitRowGroup);
      // with AMX the others pack VNNI K tiles instead (emitAmxTile), so
      // this body sees no transposes.
      // Per-tile transposes into kTBuf, unless the tile is in the head's
      // cache.
      Value inCache = kTAll ? tileInCache(kt) : Value();
      Value tileTranspose = manyRows;
      if (kTAll)
        tileTranspose = arith::AndIOp::create(
            b, manyRows, arith::XOrIOp::create(b, inCache, arith::ConstantIntOp::create(b, 1, 1)));
      if (!amx)
        scf::IfOp::create(b, tileTranspose, [&](OpBuilder &, Location) {
          transposeKTile(bIdx, hk, kt, lastKey, kTBuf, zero);
          scf::YieldOp::create(b);
        });
      if (kTAll && !amx) {
        // The head's cache: this tile, once per call. kTDone has entries
        // for the cached tiles only (one, or none after a failed malloc,
        // when the cache is off): it is read only for those.
        Value t = arith::DivUIOp::create(b, kt, bk);
        scf::IfOp::create(b, arith::AndIOp::create(b, manyRows, inCache),
                          [&](OpBuilder &, Location) {
          Value notDone = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                                memref::LoadOp::create(b, kTDone, t),
                                                arith::ConstantIntOp::create(b, 0, 8));
          scf::IfOp::create(b, notDone, [&](OpBuilder &, Location) {
            transposeKTile(bIdx, hk, kt, lastKey, kTAll, muli(t, tileFloats));
            memref::StoreOp::create(b, arith::ConstantIntOp::create(b, 1, 8), kTDone, t);
            scf::YieldOp::create(b);
          });
          scf::YieldOp::create(b);
        });
      }
      loop(zero, nk, one, [&](Value jj) {
        std::pair<Value, Value> key = keyAt(bIdx, addi(kt, jj));
        copyValueRow(key, hk, vBuf, muli(jj, dvPad));
      });
      loop(zero, nRows, rows, [&](Value rg) {
        emitRowGroup(bIdx, h, hk, r0, nRows, manyRows, rg, kt, nk, full);
      });
    };
    auto tileBody = [&](Value full) {
      if (!amx)
        return vectorTileBody(full);
      scf::IfOp::create(
          b, manyRows,
          [&](OpBuilder &, Location) {
            emitAmxTile(bIdx, h, hk, r0, nRows, kt, nk, full);
            scf::YieldOp::create(b);
          },
          [&](OpBuilder &, Location) {
            vectorTileBody(full);
            scf::YieldOp::create(b);
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
    attnc::TileClass cls = classifyBox(box);
    Value full = arith::XOrIOp::create(
        b, cls.mayDrop, arith::ConstantIntOp::create(b, 1, 1));
    scf::IfOp::create(b, cls.mayKeep, [&](OpBuilder &, Location) {
      tileBody(full);
      scf::YieldOp::create(b);
    });
  });

  if (!slot) {
    emitEpilogue(bIdx, h, r0, nRows);
    return;
  }
  scf::IfOp::create(
      b, toPartials,
      [&](OpBuilder &, Location) {
        // The unnormalised state, for emitCombine.
        PartialSlot at = partialSlot(slot);
        loop(zero, nRows, one, [&](Value rr) {
          Value accRow = muli(rr, dvPad), outRow = addi(at.acc, muli(rr, valueDim));
          loop(zero, valueDim, one, [&](Value d) {
            memref::StoreOp::create(b, memref::LoadOp::create(b, accBuf, addi(accRow, d)),
                                    partials, addi(outRow, d));
          });
          memref::StoreOp::create(b, memref::LoadOp::create(b, mBuf, rr), partials,
                                  addi(at.m, rr));
          memref::StoreOp::create(b, memref::LoadOp::create(b, lBuf, rr), partials,
                                  addi(at.l, rr));
        });
        scf::YieldOp::create(b);
      },
      [&](OpBuilder &, Location) {
        emitEpilogue(bIdx, h, r0, nRows);
        scf::YieldOp::create(b);
      });
}

void Lowering::emitCombine(Value bIdx, Value h, Value r0, Value r1, Value firstSlot) {
  Value zero = idx(0), one = idx(1);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0);
  bool softmax = op.getKernel() == KernelKind::softmax;
  Value nRows = arith::SubIOp::create(b, r1, r0);
  itemQueries = nRows;
  if (pack > 1)
    nRows = muli(nRows, idx(pack));
  loadSequence(bIdx);
  auto slotOf = [&](Value s) { return partialSlot(addi(firstSlot, s)); };
  loop(zero, nRows, one, [&](Value rr) {
    // Softmax: each range's state is relative to its own max; rescale all
    // to the largest (a range with nothing visible has m = -inf and counts
    // 0). Sigmoid: the ranges' sums add.
    Value mMax = negInf;
    if (softmax)
      mMax = scf::ForOp::create(
                 b, zero, splits, one, ValueRange{negInf},
                 [&](OpBuilder &, Location, Value s, ValueRange acc) {
                   Value m = memref::LoadOp::create(b, partials, addi(slotOf(s).m, rr));
                   scf::YieldOp::create(
                       b, ValueRange{arith::MaximumFOp::create(b, acc[0], m).getResult()});
                 })
                 .getResult(0);
    Value accRow = muli(rr, dvPad);
    loop(zero, valueDim, one, [&](Value d) {
      memref::StoreOp::create(b, fzero, accBuf, addi(accRow, d));
    });
    Value lSum = scf::ForOp::create(
                     b, zero, splits, one, ValueRange{fzero},
                     [&](OpBuilder &, Location, Value s, ValueRange acc) {
                       PartialSlot at = slotOf(s);
                       Value factor = f32(1.0);
                       if (softmax) {
                         Value m = memref::LoadOp::create(b, partials, addi(at.m, rr));
                         Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ,
                                                             m, negInf);
                         factor = arith::SelectOp::create(
                             b, empty, fzero,
                             math::ExpOp::create(b, arith::SubFOp::create(b, m, mMax)));
                       }
                       Value inRow = addi(at.acc, muli(rr, valueDim));
                       loop(zero, valueDim, one, [&](Value d) {
                         Value part = memref::LoadOp::create(b, partials, addi(inRow, d));
                         Value sum = memref::LoadOp::create(b, accBuf, addi(accRow, d));
                         memref::StoreOp::create(
                             b, arith::AddFOp::create(b, sum,
                                                      arith::MulFOp::create(b, part, factor)),
                             accBuf, addi(accRow, d));
                       });
                       Value l = memref::LoadOp::create(b, partials, addi(at.l, rr));
                       scf::YieldOp::create(
                           b, ValueRange{arith::AddFOp::create(
                                             b, acc[0], arith::MulFOp::create(b, l, factor))
                                             .getResult()});
                     })
                     .getResult(0);
    memref::StoreOp::create(b, mMax, mBuf, rr);
    memref::StoreOp::create(b, lSum, lBuf, rr);
  });
  emitEpilogue(bIdx, h, r0, nRows);
}

Lowering::PartialSlot Lowering::partialSlot(Value slot) {
  Value rowsMax = idx(pack * blockQ);
  Value acc = muli(slot, slotFloats);
  Value m = addi(acc, muli(rowsMax, valueDim));
  return {acc, m, addi(m, rowsMax)};
}

void Lowering::emitEpilogue(Value bIdx, Value h, Value r0, Value nRows) {
  Value zero = idx(0), one = idx(1);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0);
  // Normalise (softmax only), gate, store. An all-masked row has l = 0 and
  // gives gate(0) and lse = -inf.
  bool softmax = op.getKernel() == KernelKind::softmax;
  Type outElt = op.getOutput().getType().getElementType();
  // bf16 outputs are written as raw i16 bits through a view of the same
  // memref; both lower to one LLVM descriptor, so the cast folds away.
  Value outMem = outElt.isBF16() ? bitsView(op.getOutput()) : op.getOutput();
  auto outType = cast<MemRefType>(op.getOutput().getType());
  bool vectorOut = amx && outElt.isBF16() && op.getGate().empty() &&
                   !outType.isDynamicDim(3) && outType.getDimSize(3) % width == 0 &&
                   outType.getLayout().isIdentity();
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
    // The gate's part that depends on neither the output nor the feature
    // (a per-row read and its sigmoid) once per row: LLVM cannot hoist it,
    // as the loop's stores to o might alias the gate's tensor.
    IRMapping gateRow;
    if (!op.getGate().empty())
      regions().inlineInvariant(op.getGate(), {Value(), bIdx, oHead, i, Value()},
                                {true, false, false, false, true}, gateRow);
    if (vectorOut) {
      // AMX hosts convert 16 floats to bf16 in one instruction
      // (vcvtneps2bf16, round to nearest even, NaN stays NaN).
      Value invV = vector::BroadcastOp::create(b, vecF32(), inv);
      loop(zero, valueDim, idx(width), [&](Value d) {
        Value x = arith::MulFOp::create(b, vecLoad(accBuf, addi(muli(rr, dvPad), d)), invV);
        vector::StoreOp::create(
            b, arith::TruncFOp::create(b, VectorType::get({width}, outElt), x), op.getOutput(),
            ValueRange{bIdx, oHead, row, d});
      });
    } else {
      loop(zero, valueDim, one, [&](Value d) {
        Value x = arith::MulFOp::create(
            b, memref::LoadOp::create(b, accBuf, addi(muli(rr, dvPad), d)), inv);
        if (!op.getGate().empty())
          x = regions().inlineRest(op.getGate(), {x, bIdx, oHead, i, d}, gateRow);
        x = truncateTo(outElt, x);
        memref::StoreOp::create(b, x, outMem, ValueRange{bIdx, oHead, row, d});
      });
    }
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
  struct Item {
    Value bIdx, h, hk, r0, r1;
  };
  auto itemAt = [&](Value item) {
    Value qt = arith::RemSIOp::create(b, item, qTiles);
    Value bh = arith::DivSIOp::create(b, item, qTiles);
    Value h = arith::RemSIOp::create(b, bh, itemHeads);
    if (pack > 1)
      h = muli(h, idx(pack));
    Value bIdx = arith::DivSIOp::create(b, bh, itemHeads);
    Value hk = arith::DivSIOp::create(b, h, group);
    Value r0 = muli(qt, bq);
    Value r1 = arith::MinSIOp::create(b, addi(r0, bq), qLen);
    return Item{bIdx, h, hk, r0, r1};
  };
  if (!phase) {
    loop(workBegin, workEnd, one, [&](Value item) {
      Item it = itemAt(item);
      emitItem(it.bIdx, it.h, it.hk, it.r0, it.r1);
    });
    return;
  }
  // Paged kernels: phase 0 runs whole items; phase 1 work index w is range
  // w % splits of item w / splits and fills slot w; phase 2 merges item i's
  // slots [i * splits, (i + 1) * splits). The item body is emitted once for
  // phases 0 and 1 (it is most of the code).
  Value combine = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, phase, idx(2));
  scf::IfOp::create(
      b, combine,
      [&](OpBuilder &, Location) {
        loop(workBegin, workEnd, one, [&](Value item) {
          Item it = itemAt(item);
          emitCombine(it.bIdx, it.h, it.r0, it.r1, muli(item, splits));
        });
        scf::YieldOp::create(b);
      },
      [&](OpBuilder &, Location) {
        Value toPartials = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, phase, idx(1));
        Value nSplits = arith::SelectOp::create(b, toPartials, splits, one);
        loop(workBegin, workEnd, one, [&](Value work) {
          Value item = arith::DivSIOp::create(b, work, nSplits);
          Value split = arith::RemSIOp::create(b, work, nSplits);
          Item it = itemAt(item);
          emitItem(it.bIdx, it.h, it.hk, it.r0, it.r1, split, nSplits, work, toPartials);
        });
        scf::YieldOp::create(b);
      });
}

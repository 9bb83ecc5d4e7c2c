//===- CpuAmxTiles.cpp - Both matrix products of a key tile on AMX --------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The AMX form of a key tile (bf16 prefill on CPUs with AMX-BF16): one
// tdpbf16ps multiplies 16 rows by 32 bf16 of the reduced dim into 16 x 16
// f32, the work of 512 AVX-512 FMAs. Both products step through 32 rows x
// 32 columns at a time, so four accumulator tiles, two row tiles and two
// column tiles take the eight tile registers, and each loaded tile feeds
// two multiplies. The softmax between them stays on vectors
// (emitTileSoftmax). Only softmax kernels take the tiles: a sigmoid's
// weights are not normalised, and rounding them to bf16 puts long rows past
// the bf16 tolerance.
//
// tdpbf16ps wants its right operand in pairs along the reduced dim (the
// VNNI layout): row r of a tile holds (x[2r][n], x[2r + 1][n]) for its 16
// columns n. For S = q K^T that is K with each key's (d, d + 1) pairs as
// one 32-bit element, transposed (packKTileVnni, once per key tile and
// call when the head's cache fits); for P V it is two consecutive value
// rows interleaved.
//
// CPUs with AVX512-BF16 but no AMX (amxDot) keep this layout, blocking and
// softmax and run the products as vdpbf16ps on vectors: per pair along the
// reduced dim, 32 bf16 of the right operand (16 columns) times the row's
// pair in every lane, twice an FMA's products per instruction.
//
// exp2Avx512 (2^t through vreduceps and vscalefps) lives here too: the
// tiles' weights take its cubic, and with fast-exp the vector path's f32
// softmax and sigmoid weights its quintic.
//
//===----------------------------------------------------------------------===//

#include "passes/CpuLowering.h"
#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace attnc::attn;
using namespace attnc::cpu_lowering;

void Lowering::packKTileVnni(Value bIdx, Value hk, Value kt, Value dest32, Value base) {
  Value zero = idx(0), one = idx(1), w = idx(width), two = idx(2);
  Value lastKey = arith::SubIOp::create(b, kvLen, one);
  auto pairsType = VectorType::get({width / 2}, b.getI32Type());
  loop(zero, bkPad, one, [&](Value jj) {
    Value key = arith::MinSIOp::create(b, addi(kt, jj), lastKey);
    loop(zero, dPad, w, [&](Value d) {
      Value pairs = vector::BitCastOp::create(
          b, pairsType, readBits(op.getKey(), {bIdx, hk, key, d}));
      Value row = arith::DivUIOp::create(b, d, two);
      for (int64_t e = 0; e < width / 2; ++e) {
        Value x = vector::ExtractOp::create(b, pairs, ArrayRef<int64_t>{e});
        memref::StoreOp::create(b, x, dest32,
                                addi(base, addi(muli(addi(row, idx(e)), bkPad), jj)));
      }
    });
  });
}

void Lowering::packVTileVnni(Value bIdx, Value hk, Value kt, Value dest, Value base) {
  // Keys past the sequence repeat its last key: finite, and weighted 0.
  Value zero = idx(0), one = idx(1), w = idx(width), two = idx(2);
  Value lastKey = arith::SubIOp::create(b, kvLen, one);
  SmallVector<int64_t> interleave;
  for (int64_t lane = 0; lane < width; ++lane) {
    interleave.push_back(lane);
    interleave.push_back(width + lane);
  }
  Value bits = bitsView(dest);
  loop(zero, arith::DivUIOp::create(b, bkPad, two), one, [&](Value p) {
    Value k0 = arith::MinSIOp::create(b, addi(kt, muli(p, two)), lastKey);
    Value k1 = arith::MinSIOp::create(b, addi(addi(kt, muli(p, two)), one), lastKey);
    loop(zero, dvPad, w, [&](Value dv) {
      Value v0 = readBits(op.getValue(), {bIdx, hk, k0, dv});
      Value v1 = readBits(op.getValue(), {bIdx, hk, k1, dv});
      Value pair = vector::ShuffleOp::create(b, v0, v1, interleave);
      vector::StoreOp::create(b, pair, bits,
                              ValueRange{addi(base, muli(addi(muli(p, dvPad), dv), two))});
    });
  });
}

void Lowering::emitAmxTile(Value bIdx, Value h, Value hk, Value r0, Value nRows, Value kt,
                           Value nk, Value full) {
  Value zero = idx(0), one = idx(1), w = idx(width), two = idx(2);
  Value c16 = idx(16), c32 = idx(32);
  int64_t d = cast<MemRefType>(op.getQuery().getType()).getDimSize(3);
  int64_t bk = cast<arith::ConstantIndexOp>(bkPad.getDefiningOp()).value();
  auto rowsType = amx::TileType::get({16, 32}, b.getBF16Type());
  auto accType = amx::TileType::get({16, 16}, b.getF32Type());

  // The K and V tiles: from the head's cache (packed by the first item of
  // the call that needs them) or packed for this item. AMX ops are not
  // paged, so the cache (kTAll, vAll) was allocated; useHeadKT says whether
  // it fits.
  Value t = arith::DivUIOp::create(b, kt, idx(blockK));
  Value tileElems = muli(dPad, bkPad);
  Value kV = arith::SelectOp::create(b, useHeadKT, kTAll, kVnniBuf);
  Value kFirst = arith::SelectOp::create(b, useHeadKT, muli(t, tileElems), zero);
  Value vV = arith::SelectOp::create(b, useHeadKT, vAll, vVnni);
  Value vFirst = arith::SelectOp::create(b, useHeadKT, muli(t, vTileElems), zero);
  // kTDone is read only when the cache is on (else it has one entry, or
  // none after a failed malloc).
  scf::IfOp::create(
      b, useHeadKT,
      [&](OpBuilder &, Location) {
        Value notDone = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                              memref::LoadOp::create(b, kTDone, t),
                                              arith::ConstantIntOp::create(b, 0, 8));
        scf::IfOp::create(b, notDone, [&](OpBuilder &, Location) {
          packKTileVnni(bIdx, hk, kt, kTAll32, arith::DivUIOp::create(b, muli(t, tileElems), two));
          packVTileVnni(bIdx, hk, kt, vAll, muli(t, vTileElems));
          memref::StoreOp::create(b, arith::ConstantIntOp::create(b, 1, 8), kTDone, t);
          scf::YieldOp::create(b);
        });
        scf::YieldOp::create(b);
      },
      [&](OpBuilder &, Location) {
        packKTileVnni(bIdx, hk, kt, kVnni32, zero);
        packVTileVnni(bIdx, hk, kt, vVnni, zero);
        scf::YieldOp::create(b);
      });


  Value rows32 = muli(arith::CeilDivSIOp::create(b, nRows, c32), c32);
  auto load = [&](Type type, Value mem, Value at, Value stride) -> Value {
    return amx::TileLoadOp::create(b, type, mem, ValueRange{at}, stride);
  };
  // acc[2i + j] += a_i b_j for the 32 x 32 block: rows of `a` at aAt and
  // aAt + 16 rows (stride aStride), VNNI columns of `x` at xAt and 16
  // columns on (stride xStride).
  auto multiplyBlock = [&](Value (&acc)[4], Value a, Value aAt, Value aStride, Value x,
                           Value xAt, Value xStride) {
    // Each load just before its first multiply: tile registers are not
    // renamed, so a load waits for the multiplies still reading its
    // register, and loads grouped ahead of the multiplies wait longest.
    auto mul = [&](int64_t i, Value ai, Value xi) {
      acc[i] = amx::TileMulFOp::create(b, accType, ai, xi, acc[i]);
    };
    Value a0 = load(rowsType, a, aAt, aStride);
    Value x0 = load(rowsType, x, xAt, xStride);
    mul(0, a0, x0);
    Value x1 = load(rowsType, x, addi(xAt, muli(c16, two)), xStride);
    // a1 is loaded while a0 is still live, so it takes a register of its own.
    Value a1 = load(rowsType, a, addi(aAt, muli(c16, aStride)), aStride);
    mul(1, a0, x1);
    mul(2, a1, x0);
    mul(3, a1, x1);
  };

  // Without AMX (amxDot): the same 32 x 32 blocks from the same packed
  // operands, 8 rows x 32 columns at a time in 16 vector accumulators, one
  // vdpbf16ps per row and 16 columns for each pair along the reduced dim:
  // acc[r][c] += a[r][2p] x[2p][c] + a[r][2p + 1] x[2p + 1][c].
  auto bf16x32 = VectorType::get({2 * width}, b.getBF16Type());
  auto dot = [&](Value acc, Value a, Value x) -> Value {
    return LLVM::CallIntrinsicOp::create(
               b, vecF32(), b.getStringAttr("llvm.x86.avx512bf16.dpbf16ps.512"),
               ValueRange{acc, a, x})
        .getResult(0);
  };
  // The pair (a[at], a[at + 1]) in every 32-bit lane.
  auto pairEverywhere = [&](Value a, Value at) -> Value {
    Value pair = vector::LoadOp::create(b, VectorType::get({2}, b.getBF16Type()), a,
                                        ValueRange{at});
    Value bits = vector::BitCastOp::create(b, VectorType::get({1}, b.getI32Type()), pair);
    Value lanes = vector::BroadcastOp::create(
        b, VectorType::get({width}, b.getI32Type()),
        vector::ExtractOp::create(b, bits, ArrayRef<int64_t>{0}));
    return vector::BitCastOp::create(b, bf16x32, lanes);
  };
  // acc rows [r0, r0 + 8) x columns [c, c + 32) over `pairs` pairs: a's row
  // r pair p at aAt(r) + 2p, x's pair row p at xAt + p * xStride.
  auto dotRows = [&](SmallVector<Value> acc, Value a, function_ref<Value(int64_t)> aAt, Value x,
                     Value xAt, Value xStride, int64_t pairs) -> SmallVector<Value> {
    auto forOp = scf::ForOp::create(
        b, zero, idx(pairs), one, acc, [&](OpBuilder &, Location, Value p, ValueRange in) {
          Value row = addi(xAt, muli(p, xStride));
          Value x0 = vector::LoadOp::create(b, bf16x32, x, ValueRange{row});
          Value x1 = vector::LoadOp::create(b, bf16x32, x, ValueRange{addi(row, idx(2 * width))});
          SmallVector<Value> out(in.begin(), in.end());
          for (int64_t r = 0; r < 8; ++r) {
            Value ar = pairEverywhere(a, addi(aAt(r), muli(p, two)));
            out[2 * r] = dot(out[2 * r], ar, x0);
            out[2 * r + 1] = dot(out[2 * r + 1], ar, x1);
          }
          scf::YieldOp::create(b, out);
        });
    return SmallVector<Value>(forOp.getResults());
  };

  // S[rows][keys] = q K^T, unscaled, into sAll.
  Value kStride = muli(bkPad, two);
  // Both products step through 32-column blocks of the right operand (K or
  // V, 8 KB at D = 128), each across all row blocks: the block is read
  // from L2 once and its later loads hit L1, while the row operand (q or P,
  // at most 32 KB) stays in L1. Rows outside made every row block stream
  // all of K or V from L2 again (docs/cpu-backend.md).
  auto blocks = [&](Value rowsEnd, Value colsEnd, function_ref<void(Value, Value)> body) {
    loop(zero, colsEnd, c32, [&](Value c) {
      loop(zero, rowsEnd, c32, [&](Value r) { body(r, c); });
    });
  };
  // amxDot in a PARTIAL tile: a 32 x 32 block the mask's interval bounds
  // prove hidden is neither scored nor weighed (its sAll entries keep
  // whatever they held, which emitTileSoftmax masks to -inf; its weights
  // are 0). The AMX form keeps every block until it is timed on AMX
  // hardware.
  bool skipBlocks = amxDot && skipTiles && full && !op.getMask().empty() && pack == 1;
  int64_t chunks = bk / 32;
  // blockKeep's entry of the 32 x 32 block at rows rb, keys kb.
  auto keepAt = [&](Value rb, Value kb) -> Value {
    return addi(muli(arith::DivUIOp::create(b, rb, c32), idx(chunks)),
                arith::DivUIOp::create(b, kb, c32));
  };
  blocks(rows32, bkPad, [&](Value rb, Value kb) {
    if (amxDot) {
      // The block's scores as vdpbf16ps, 8 rows at a time.
      auto scoreBlock = [&] {
        Value zeroV = vector::BroadcastOp::create(b, vecF32(), f32(0.0));
        for (int64_t r8 = 0; r8 < 32; r8 += 8) {
          SmallVector<Value> acc = dotRows(
              SmallVector<Value>(16, zeroV), qAmx,
              [&](int64_t r) { return muli(addi(rb, idx(r8 + r)), dPad); }, kV,
              addi(kFirst, muli(kb, two)), kStride, d / 2);
          for (int64_t r = 0; r < 8; ++r)
            for (int64_t c = 0; c < 2; ++c)
              vector::StoreOp::create(
                  b, acc[2 * r + c], sAll,
                  ValueRange{addi(muli(addi(rb, idx(r8 + r)), bkPad), addi(kb, idx(c * width)))});
        }
      };
      if (!skipBlocks) {
        scoreBlock();
        return;
      }
      auto keep = scf::IfOp::create(
          b, full, [&](OpBuilder &, Location) { scf::YieldOp::create(b, full); },
          [&](OpBuilder &, Location) {
            Value lastRow = arith::MinSIOp::create(b, addi(rb, idx(31)),
                                                   arith::SubIOp::create(b, nRows, one));
            scf::YieldOp::create(
                b, keysMayShow(bIdx, h, addi(addi(r0, rb), queryOffset),
                               addi(addi(r0, lastRow), queryOffset), kt, kb, addi(kb, c32), nk));
          });
      Value keepBit = keep.getResult(0);
      memref::StoreOp::create(b, arith::ExtUIOp::create(b, b.getI8Type(), keepBit), blockKeep,
                              keepAt(rb, kb));
      scf::IfOp::create(b, keepBit, [&](OpBuilder &, Location) {
        scoreBlock();
        scf::YieldOp::create(b);
      });
      return;
    }
    Value acc[4];
    for (Value &a : acc)
      a = amx::TileZeroOp::create(b, accType);
    for (int64_t dc = 0; dc < d; dc += 32)
      multiplyBlock(acc, qAmx, addi(muli(rb, dPad), idx(dc)), dPad, kV,
                    addi(addi(kFirst, idx(dc / 2 * bk * 2)), muli(kb, two)), kStride);
    for (int64_t t = 0; t < 4; ++t) {
      Value row = addi(rb, idx(t / 2 * 16)), col = addi(kb, idx(t % 2 * 16));
      amx::TileStoreOp::create(b, sAll, ValueRange{addi(muli(row, bkPad), col)}, acc[t],
                               bkPad);
    }
  });

  // The weights (bf16 into pAmx), m, l and the rows' rescales.
  emitTileSoftmax(bIdx, h, r0, nRows, rows32, kt, nk, full);
  loop(zero, rows32, one, [&](Value rr) {
    // Once a row's max settles its rescale is exactly 1 on most tiles:
    // skip the read-modify-write of its accumulator then.
    Value corrScalar = memref::LoadOp::create(b, corrAll, rr);
    Value changed = arith::CmpFOp::create(b, arith::CmpFPredicate::UNE, corrScalar, f32(1.0));
    scf::IfOp::create(b, changed, [&](OpBuilder &, Location) {
      Value corr = vector::BroadcastOp::create(b, vecF32(), corrScalar);
      loop(zero, dvPad, w, [&](Value dv) {
        Value at = addi(muli(rr, dvPad), dv);
        vector::StoreOp::create(b, arith::MulFOp::create(b, vecLoad(accBuf, at), corr), accBuf,
                                ValueRange{at});
      });
      scf::YieldOp::create(b);
    });
  });

  // acc[rows][Dv] += P V.
  Value vStride = muli(dvPad, two);
  blocks(rows32, dvPad, [&](Value rb, Value db) {
    if (amxDot) {
      for (int64_t r8 = 0; r8 < 32; r8 += 8) {
        auto at = [&](int64_t r, int64_t c) {
          return addi(muli(addi(rb, idx(r8 + r)), dvPad), addi(db, idx(c * width)));
        };
        SmallVector<Value> acc;
        for (int64_t r = 0; r < 8; ++r)
          for (int64_t c = 0; c < 2; ++c)
            acc.push_back(vecLoad(accBuf, at(r, c)));
        auto pRow = [&](int64_t r) { return muli(addi(rb, idx(r8 + r)), bkPad); };
        if (!skipBlocks) {
          acc = dotRows(acc, pAmx, pRow, vV, addi(vFirst, muli(db, two)), vStride, bk / 2);
        } else {
          // 32 keys (16 pairs) at a time, the chunks the scores kept (a
          // loop, not copies: the products are most of the kernel's code).
          auto overChunks = scf::ForOp::create(
              b, zero, bkPad, c32, acc, [&](OpBuilder &, Location, Value kc, ValueRange in) {
                Value kept = arith::CmpIOp::create(
                    b, arith::CmpIPredicate::ne,
                    memref::LoadOp::create(b, blockKeep, keepAt(rb, kc)),
                    arith::ConstantIntOp::create(b, 0, 8));
                SmallVector<Value> inAcc(in.begin(), in.end());
                auto chunk = scf::IfOp::create(
                    b, kept,
                    [&](OpBuilder &, Location) {
                      scf::YieldOp::create(
                          b, dotRows(inAcc, pAmx, [&](int64_t r) { return addi(pRow(r), kc); }, vV,
                                     addi(addi(vFirst, muli(arith::DivUIOp::create(b, kc, two),
                                                            vStride)),
                                          muli(db, two)),
                                     vStride, 16));
                    },
                    [&](OpBuilder &, Location) { scf::YieldOp::create(b, in); });
                scf::YieldOp::create(b, chunk.getResults());
              });
          acc = SmallVector<Value>(overChunks.getResults());
        }
        for (int64_t r = 0; r < 8; ++r)
          for (int64_t c = 0; c < 2; ++c)
            vector::StoreOp::create(b, acc[2 * r + c], accBuf, ValueRange{at(r, c)});
      }
      return;
    }
    Value acc[4];
    auto accAt = [&](int64_t t) {
      return addi(muli(addi(rb, idx(t / 2 * 16)), dvPad), addi(db, idx(t % 2 * 16)));
    };
    for (int64_t t = 0; t < 4; ++t)
      acc[t] = load(accType, accBuf, accAt(t), dvPad);
    for (int64_t kc = 0; kc < bk; kc += 32)
      multiplyBlock(acc, pAmx, addi(muli(rb, bkPad), idx(kc)), bkPad, vV,
                    addi(addi(vFirst, muli(idx(kc / 2), vStride)), muli(db, two)), vStride);
    for (int64_t t = 0; t < 4; ++t)
      amx::TileStoreOp::create(b, accBuf, ValueRange{accAt(t)}, acc[t], dvPad);
  });
}

bool Lowering::foldsScaleOnTiles() {
  return op.getScore().empty() && op.getScale().convertToDouble() > 0;
}

void Lowering::emitTileSoftmax(Value bIdx, Value h, Value r0, Value nRows, Value rows32,
                               Value kt, Value nk, Value full) {
  Value zero = idx(0), one = idx(1), w = idx(width);
  Value negInf = f32(-std::numeric_limits<float>::infinity());
  Value fzero = f32(0.0), fone = f32(1.0);
  double scale = op.getScale().convertToDouble();
  auto splat = [&](Value x) { return vector::BroadcastOp::create(b, vecF32(), x); };
  auto valid = [&](Value rr) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rr, nRows);
  };
  // Row maxes. Rows past the item's end take -inf (and weights 0 below).
  loop(zero, rows32, one, [&](Value rr) {
    auto tileMax = scf::IfOp::create(
        b, valid(rr),
        [&](OpBuilder &, Location) {
          scf::YieldOp::create(
              b, emitRowScores(bIdx, h, r0, rr, muli(rr, bkPad), kt, nk, full, true));
        },
        [&](OpBuilder &, Location) { scf::YieldOp::create(b, negInf); });
    memref::StoreOp::create(b, tileMax.getResult(0), rowStat, rr);
  });
  // 16 rows at a time: the new max, the rescale exp(m - base) (exactly 1
  // where the max did not move, which emitAmxTile tests), and the
  // exponent's offset; a max of -inf (nothing visible yet) uses base 0.
  loop(zero, rows32, w, [&](Value r) {
    Value m = vecLoad(mBuf, r);
    Value mNew = arith::MaximumFOp::create(b, m, vecLoad(rowStat, r));
    Value base = arith::SelectOp::create(
        b, arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mNew, splat(negInf)),
        splat(fzero), mNew);
    Value same = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, m, base);
    Value corr = arith::SelectOp::create(
        b, same, splat(fone), math::ExpOp::create(b, arith::SubFOp::create(b, m, base)));
    vector::StoreOp::create(b, mNew, mBuf, ValueRange{r});
    vector::StoreOp::create(b, corr, corrAll, ValueRange{r});
    vector::StoreOp::create(b, arith::MulFOp::create(b, base, splat(f32(-kLog2e))), rowBias,
                            ValueRange{r});
  });
  // The weights 2^(s c - base log2(e)), c = log2(e) times the scale when
  // folded: one FMA and exp2Avx512's cubic a vector (7.5e-5 relative, below
  // bf16's rounding of the weights). Keys past nk are -inf (2^-inf is 0), so
  // no lane mask.
  Value expScale = splat(f32((foldsScaleOnTiles() ? scale : 1.0) * kLog2e));
  loop(zero, rows32, one, [&](Value rr) {
    Value sRow = muli(rr, bkPad);
    auto sum = scf::IfOp::create(
        b, valid(rr),
        [&](OpBuilder &, Location) {
          Value bias = splat(memref::LoadOp::create(b, rowBias, rr));
          auto weights = scf::ForOp::create(
              b, zero, bkPad, w, ValueRange{splat(fzero)},
              [&](OpBuilder &, Location, Value jc, ValueRange acc) {
                Value p = exp2Avx512(
                    math::FmaOp::create(b, vecLoad(sAll, addi(sRow, jc)), expScale, bias),
                    kExp2Cubic);
                vector::StoreOp::create(
                    b, arith::TruncFOp::create(b, VectorType::get({width}, b.getBF16Type()), p),
                    pAmx, ValueRange{addi(sRow, jc)});
                scf::YieldOp::create(b, ValueRange{arith::AddFOp::create(b, acc[0], p).getResult()});
              });
          scf::YieldOp::create(
              b, vector::ReductionOp::create(b, vector::CombiningKind::ADD, weights.getResult(0),
                                             Value(), arith::FastMathFlags::reassoc)
                     .getResult());
        },
        [&](OpBuilder &, Location) {
          // The whole padded row: AMX multiplies every key of a chunk.
          Value zeroP = arith::ConstantOp::create(
              b, DenseElementsAttr::get(VectorType::get({width}, b.getBF16Type()),
                                        b.getZeroAttr(b.getBF16Type())));
          loop(zero, bkPad, w, [&](Value jc) {
            vector::StoreOp::create(b, zeroP, pAmx, ValueRange{addi(sRow, jc)});
          });
          scf::YieldOp::create(b, fzero);
        });
    memref::StoreOp::create(b, sum.getResult(0), rowStat, rr);
  });
  // l = l * corr + the row's sum, 16 rows at a time.
  loop(zero, rows32, w, [&](Value r) {
    Value l = arith::MulFOp::create(b, vecLoad(lBuf, r), vecLoad(corrAll, r));
    vector::StoreOp::create(b, arith::AddFOp::create(b, l, vecLoad(rowStat, r)), lBuf,
                            ValueRange{r});
  });
}

Value Lowering::exp2Avx512(Value t, ArrayRef<double> coefficients) {
  // 2^t = 2^floor(t) * 2^f with f = t - floor(t) in [0, 1]: vreduceps gives
  // f (imm 0x09: round down, no precision exception), the polynomial 2^f,
  // and vscalefps multiplies by 2^floor(t), flushing to 0 below the f32
  // range and giving 0 for t = -inf (vreduceps(-inf) = 0). Rounding can give
  // f = 1 for t just below an integer; the fits reach 1, so that is exact
  // enough.
  auto splat = [&](double v) { return vector::BroadcastOp::create(b, vecF32(), f32(v)); };
  Value allLanes = arith::ConstantIntOp::create(b, 0xffff, 16);
  Value f = LLVM::CallIntrinsicOp::create(
                b, vecF32(), b.getStringAttr("llvm.x86.avx512.mask.reduce.ps.512"),
                ValueRange{t, arith::ConstantIntOp::create(b, 0x09, 32), t, allLanes,
                           arith::ConstantIntOp::create(b, 4, 32)})
                .getResult(0);
  Value poly = splat(coefficients.front());
  for (double c : coefficients.drop_front())
    poly = math::FmaOp::create(b, poly, f, splat(c));
  return LLVM::CallIntrinsicOp::create(
             b, vecF32(), b.getStringAttr("llvm.x86.avx512.mask.scalef.ps.512"),
             ValueRange{poly, t, poly, allLanes, arith::ConstantIntOp::create(b, 4, 32)})
      .getResult(0);
}

//===- Reference.cpp - The f64 reference for attn programs ------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Regions are compiled once into a tape of instructions over slots, then
// evaluated for every (b, h, i, j). Floats are evaluated in double, integers
// and indices in int64, i1 as 0/1.
//
//===----------------------------------------------------------------------===//

#include "compiler/Reference.h"
#include "dialects/attn/AttnOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

namespace {
union Slot {
  double f;
  int64_t i;
};

enum class Code {
  ConstF, ConstI, Copy,
  AddI, SubI, MulI, DivSI, FloorDivSI, CeilDivSI, RemSI, DivUI, RemUI,
  MinSI, MaxSI, MinUI, MaxUI, AndI, OrI, XOrI, ShlI, ShrSI, ShrUI, CmpI,
  AddF, SubF, MulF, DivF, RemF, NegF, MaxF, MinF, CmpF, Select,
  IToF, UIToF, FToI, Exp, Exp2, ExpM1, Log, Log2, Log1p, Tanh, Sqrt, Rsqrt,
  AbsF, AbsI, Floor, Ceil, Round, Pow, Sin, Cos, Erf, Fma, CopySign, Read,
  Listed, TopK,
};

/// The blocks attn.topk selects, computed in f64 on first use per (b, h,
/// query block) and kept for the rest of the run.
struct TopKTable {
  const TensorView *q = nullptr, *k = nullptr;
  int64_t topK = 0, blockQ = 0, blockK = 0;
  bool causal = false;
  int64_t S = 0, T = 0, D = 0, Hq = 0, Hkv = 0, offset = 0;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<char>> chosen;
  std::set<std::tuple<int64_t, int64_t, int64_t>> ambiguous;

  const std::vector<char> &select(int64_t b, int64_t h, int64_t qb) {
    auto key = std::make_tuple(b, h, qb);
    auto it = chosen.find(key);
    if (it != chosen.end())
      return it->second;
    int64_t numKb = (T + blockK - 1) / blockK;
    std::vector<char> sel(static_cast<size_t>(std::max<int64_t>(numKb, 0)), 0);
    // Mean of the block's query rows (rows r at position r + offset).
    std::vector<double> pq(D, 0.0);
    int64_t rLo = std::max<int64_t>(qb * blockQ - offset, 0);
    int64_t rHi = std::min<int64_t>((qb + 1) * blockQ - offset, S);
    int64_t idx[4] = {b, h, 0, 0};
    for (int64_t r = rLo; r < rHi; ++r)
      for (int64_t d = 0; d < D; ++d) {
        idx[2] = r;
        idx[3] = d;
        pq[d] += q->load(idx);
      }
    if (rHi > rLo)
      for (double &x : pq)
        x /= static_cast<double>(rHi - rLo);
    int64_t hk = h / (Hq / Hkv);
    std::vector<std::pair<double, int64_t>> scores; // (score, block)
    for (int64_t kb = 0; kb < numKb; ++kb) {
      if (causal && kb * blockK > qb * blockQ + blockQ - 1)
        break;
      int64_t jLo = kb * blockK, jHi = std::min(T, jLo + blockK);
      int64_t kIdx[4] = {b, hk, 0, 0};
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) {
        double sum = 0;
        kIdx[3] = d;
        for (int64_t j = jLo; j < jHi; ++j) {
          kIdx[2] = j;
          sum += k->load(kIdx);
        }
        dot += pq[d] * sum / static_cast<double>(jHi - jLo);
      }
      scores.push_back({dot, kb});
    }
    // Highest first; ties go to the lower block.
    std::sort(scores.begin(), scores.end(), [](const auto &x, const auto &y) {
      return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    size_t take = std::min<size_t>(scores.size(), static_cast<size_t>(topK));
    for (size_t n = 0; n < take; ++n)
      sel[scores[n].second] = 1;
    if (take < scores.size()) {
      double scaleOf = 1.0;
      for (const auto &sc : scores)
        scaleOf = std::max(scaleOf, std::fabs(sc.first));
      if (scores[take - 1].first - scores[take].first <= 1e-4 * scaleOf)
        ambiguous.insert(key);
    }
    return chosen.emplace(key, std::move(sel)).first->second;
  }
};

struct Inst {
  Code code;
  int out = 0, a = 0, b = 0, c = 0;
  double fconst = 0;
  int64_t iconst = 0;
  int pred = 0;
  int arg = -1;             // Read, Listed: function argument index
  std::vector<int> indices; // Read, Listed (the row's prefix)
  std::shared_ptr<TopKTable> topk; // TopK
  unsigned width = 64;      // integer results narrower than 64 bits wrap
};

/// A region compiled to a tape. Slots 0.. hold the block arguments.
struct Tape {
  std::vector<Inst> insts;
  int numSlots = 0;
  int result = -1;
  std::vector<std::shared_ptr<TopKTable>> topk; // the attn.topk ops' tables
};

class TapeCompiler {
public:
  TapeCompiler(AttentionOp op, llvm::ArrayRef<ArgValue> args,
               const llvm::DenseMap<Value, int> &argIndex,
               const int64_t sizes[7])
      : op(op), args(args), argIndex(argIndex), sizes(sizes) {}

  bool compile(Region &region, Tape &tape, std::string &error);

private:
  int slotOf(Value v, Tape &tape, std::string &error);
  /// The function argument index of `v` when it is a tensor argument, else -1.
  int tensorArg(Value v) const {
    auto it = argIndex.find(v);
    return it != argIndex.end() && args[it->second].isTensor ? it->second : -1;
  }

  AttentionOp op;
  llvm::ArrayRef<ArgValue> args;
  const llvm::DenseMap<Value, int> &argIndex;
  const int64_t *sizes;
  llvm::DenseMap<Value, int> slots;
  std::vector<Inst> prelude; // constants and scalar extras
};
} // namespace

int TapeCompiler::slotOf(Value v, Tape &tape, std::string &error) {
  auto it = slots.find(v);
  if (it != slots.end())
    return it->second;
  // A value from above: a hoisted constant or a scalar extra.
  Inst inst;
  inst.out = tape.numSlots++;
  Attribute cst;
  if (matchPattern(v, m_Constant(&cst))) {
    if (auto f = dyn_cast<FloatAttr>(cst)) {
      inst.code = Code::ConstF;
      inst.fconst = f.getValueAsDouble();
    } else if (auto i = dyn_cast<IntegerAttr>(cst)) {
      inst.code = Code::ConstI;
      inst.iconst = i.getType().isInteger(1) ? (i.getValue().isZero() ? 0 : 1)
                                              : i.getValue().getSExtValue();
    } else {
      error = "reference: unsupported constant";
      return -1;
    }
  } else if (argIndex.count(v) && !args[argIndex.lookup(v)].isTensor) {
    double s = args[argIndex.lookup(v)].scalar;
    if (isa<FloatType>(v.getType())) {
      inst.code = Code::ConstF;
      inst.fconst = s;
    } else {
      inst.code = Code::ConstI;
      inst.iconst = static_cast<int64_t>(s);
    }
  } else {
    error = "reference: region uses a value it cannot resolve";
    return -1;
  }
  prelude.push_back(inst);
  slots[v] = inst.out;
  return inst.out;
}

bool TapeCompiler::compile(Region &region, Tape &tape, std::string &error) {
  if (region.empty())
    return true;
  slots.clear();
  prelude.clear();
  Block &block = region.front();
  for (BlockArgument arg : block.getArguments())
    slots[arg] = tape.numSlots++;

  std::vector<Inst> body;
  for (Operation &o : block.without_terminator()) {
    Inst inst;
    auto operand = [&](unsigned n) { return slotOf(o.getOperand(n), tape, error); };
    bool ok = true;
    auto un = [&](Code c) { inst.code = c; inst.a = operand(0); };
    auto bin = [&](Code c) { inst.code = c; inst.a = operand(0); inst.b = operand(1); };
    llvm::TypeSwitch<Operation *>(&o)
        .Case([&](arith::ConstantOp c) {
          if (auto f = dyn_cast<FloatAttr>(c.getValue())) {
            inst.code = Code::ConstF;
            inst.fconst = f.getValueAsDouble();
          } else if (auto i = dyn_cast<IntegerAttr>(c.getValue())) {
            inst.code = Code::ConstI;
            inst.iconst = i.getType().isInteger(1) ? (i.getValue().isZero() ? 0 : 1)
                                                    : i.getValue().getSExtValue();
          } else {
            ok = false;
          }
        })
        .Case([&](arith::AddIOp) { bin(Code::AddI); })
        .Case([&](arith::SubIOp) { bin(Code::SubI); })
        .Case([&](arith::MulIOp) { bin(Code::MulI); })
        .Case([&](arith::DivSIOp) { bin(Code::DivSI); })
        .Case([&](arith::FloorDivSIOp) { bin(Code::FloorDivSI); })
        .Case([&](arith::CeilDivSIOp) { bin(Code::CeilDivSI); })
        .Case([&](arith::RemSIOp) { bin(Code::RemSI); })
        .Case([&](arith::DivUIOp) { bin(Code::DivUI); })
        .Case([&](arith::RemUIOp) { bin(Code::RemUI); })
        .Case([&](arith::MinSIOp) { bin(Code::MinSI); })
        .Case([&](arith::MaxSIOp) { bin(Code::MaxSI); })
        .Case([&](arith::MinUIOp) { bin(Code::MinUI); })
        .Case([&](arith::MaxUIOp) { bin(Code::MaxUI); })
        .Case([&](arith::AndIOp) { bin(Code::AndI); })
        .Case([&](arith::OrIOp) { bin(Code::OrI); })
        .Case([&](arith::XOrIOp) { bin(Code::XOrI); })
        .Case([&](arith::ShLIOp) { bin(Code::ShlI); })
        .Case([&](arith::ShRSIOp) { bin(Code::ShrSI); })
        .Case([&](arith::ShRUIOp) { bin(Code::ShrUI); })
        .Case([&](arith::CmpIOp c) {
          bin(Code::CmpI);
          inst.pred = static_cast<int>(c.getPredicate());
        })
        .Case([&](arith::AddFOp) { bin(Code::AddF); })
        .Case([&](arith::SubFOp) { bin(Code::SubF); })
        .Case([&](arith::MulFOp) { bin(Code::MulF); })
        .Case([&](arith::DivFOp) { bin(Code::DivF); })
        .Case([&](arith::RemFOp) { bin(Code::RemF); })
        .Case([&](arith::NegFOp) { un(Code::NegF); })
        .Case<arith::MaximumFOp, arith::MaxNumFOp>([&](auto) { bin(Code::MaxF); })
        .Case<arith::MinimumFOp, arith::MinNumFOp>([&](auto) { bin(Code::MinF); })
        .Case([&](arith::CmpFOp c) {
          bin(Code::CmpF);
          inst.pred = static_cast<int>(c.getPredicate());
        })
        .Case([&](arith::SelectOp) {
          inst.code = Code::Select;
          inst.a = operand(0);
          inst.b = operand(1);
          inst.c = operand(2);
        })
        .Case<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
              arith::ExtUIOp, arith::TruncIOp, arith::ExtFOp,
              arith::TruncFOp>([&](auto) { un(Code::Copy); })
        .Case([&](arith::SIToFPOp) { un(Code::IToF); })
        .Case([&](arith::UIToFPOp) { un(Code::UIToF); })
        .Case<arith::FPToSIOp, arith::FPToUIOp>([&](auto) { un(Code::FToI); })
        .Case([&](math::ExpOp) { un(Code::Exp); })
        .Case([&](math::Exp2Op) { un(Code::Exp2); })
        .Case([&](math::ExpM1Op) { un(Code::ExpM1); })
        .Case([&](math::LogOp) { un(Code::Log); })
        .Case([&](math::Log2Op) { un(Code::Log2); })
        .Case([&](math::Log1pOp) { un(Code::Log1p); })
        .Case([&](math::TanhOp) { un(Code::Tanh); })
        .Case([&](math::SqrtOp) { un(Code::Sqrt); })
        .Case([&](math::RsqrtOp) { un(Code::Rsqrt); })
        .Case([&](math::AbsFOp) { un(Code::AbsF); })
        .Case([&](math::AbsIOp) { un(Code::AbsI); })
        .Case([&](math::FloorOp) { un(Code::Floor); })
        .Case([&](math::CeilOp) { un(Code::Ceil); })
        .Case<math::RoundOp, math::RoundEvenOp>([&](auto) { un(Code::Round); })
        .Case([&](math::PowFOp) { bin(Code::Pow); })
        .Case([&](math::SinOp) { un(Code::Sin); })
        .Case([&](math::CosOp) { un(Code::Cos); })
        .Case([&](math::ErfOp) { un(Code::Erf); })
        .Case([&](math::CopySignOp) { bin(Code::CopySign); })
        .Case([&](math::FmaOp) {
          inst.code = Code::Fma;
          inst.a = operand(0);
          inst.b = operand(1);
          inst.c = operand(2);
        })
        .Case([&](SizeOp s) {
          inst.code = Code::ConstI;
          inst.iconst = sizes[static_cast<int>(s.getKind())];
        })
        .Case([&](ReadOp r) {
          inst.code = Code::Read;
          inst.arg = tensorArg(r.getSource());
          if (inst.arg < 0) {
            ok = false;
            return;
          }
          for (unsigned n = 0; n < r.getIndices().size(); ++n)
            inst.indices.push_back(slotOf(r.getIndices()[n], tape, error));
        })
        .Case([&](ListedOp l) {
          inst.code = Code::Listed;
          inst.arg = tensorArg(l.getList());
          if (inst.arg < 0) {
            ok = false;
            return;
          }
          inst.a = slotOf(l.getValue(), tape, error);
          inst.b = slotOf(l.getCount(), tape, error);
          for (Value p : l.getPrefix())
            inst.indices.push_back(slotOf(p, tape, error));
        })
        .Case([&](TopKOp t) {
          inst.code = Code::TopK;
          auto table = std::make_shared<TopKTable>();
          int qArg = tensorArg(op.getQuery()), kArg = tensorArg(op.getKey());
          if (qArg < 0 || kArg < 0) {
            error = "reference: attn.topk needs q and k as tensors";
            return;
          }
          table->q = &args[qArg].tensor;
          table->k = &args[kArg].tensor;
          table->topK = t.getTopKAttr().getInt();
          table->blockQ = t.getBlockQAttr().getInt();
          table->blockK = t.getBlockKAttr().getInt();
          table->causal = t.getCausal();
          table->Hq = sizes[1];
          table->Hkv = sizes[2];
          table->S = sizes[3];
          table->T = sizes[4];
          table->D = sizes[5];
          table->offset = op.getAlign() == QueryAlign::end ? table->T - table->S : 0;
          if (table->Hkv <= 0 || table->S < 0 || table->T < 0 || table->D < 0) {
            error = "reference: attn.topk needs the problem sizes";
            return;
          }
          inst.topk = std::move(table);
          inst.a = slotOf(t.getB(), tape, error);
          inst.b = slotOf(t.getH(), tape, error);
          inst.c = slotOf(t.getI(), tape, error);
          inst.indices.push_back(slotOf(t.getJ(), tape, error));
          tape.topk.push_back(inst.topk);
        })
        .Default([&](Operation *) { ok = false; });
    if (!ok) {
      if (error.empty())
        error = "reference: cannot interpret '" +
                o.getName().getStringRef().str() + "'";
      return false;
    }
    if (!error.empty())
      return false;
    if (auto it = dyn_cast<IntegerType>(o.getResult(0).getType()))
      inst.width = it.getWidth();
    inst.out = tape.numSlots++;
    slots[o.getResult(0)] = inst.out;
    body.push_back(std::move(inst));
  }
  tape.result = slotOf(yieldedValue(region), tape, error);
  tape.insts = prelude;
  tape.insts.insert(tape.insts.end(), body.begin(), body.end());
  return error.empty();
}

static int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static bool cmpI(int pred, int64_t a, int64_t b) {
  uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (static_cast<arith::CmpIPredicate>(pred)) {
  case arith::CmpIPredicate::eq: return a == b;
  case arith::CmpIPredicate::ne: return a != b;
  case arith::CmpIPredicate::slt: return a < b;
  case arith::CmpIPredicate::sle: return a <= b;
  case arith::CmpIPredicate::sgt: return a > b;
  case arith::CmpIPredicate::sge: return a >= b;
  case arith::CmpIPredicate::ult: return ua < ub;
  case arith::CmpIPredicate::ule: return ua <= ub;
  case arith::CmpIPredicate::ugt: return ua > ub;
  case arith::CmpIPredicate::uge: return ua >= ub;
  }
  return false;
}

static bool cmpF(int pred, double a, double b) {
  bool unord = std::isnan(a) || std::isnan(b);
  using P = arith::CmpFPredicate;
  switch (static_cast<P>(pred)) {
  case P::AlwaysFalse: return false;
  case P::OEQ: return !unord && a == b;
  case P::OGT: return !unord && a > b;
  case P::OGE: return !unord && a >= b;
  case P::OLT: return !unord && a < b;
  case P::OLE: return !unord && a <= b;
  case P::ONE: return !unord && a != b;
  case P::ORD: return !unord;
  case P::UEQ: return unord || a == b;
  case P::UGT: return unord || a > b;
  case P::UGE: return unord || a >= b;
  case P::ULT: return unord || a < b;
  case P::ULE: return unord || a <= b;
  case P::UNE: return unord || a != b;
  case P::UNO: return unord;
  case P::AlwaysTrue: return true;
  }
  return false;
}

/// Runs a tape; false with `error` on an out-of-range read or a zero divisor.
static bool run(const Tape &tape, std::vector<Slot> &s,
                llvm::ArrayRef<ArgValue> args, std::string &error) {
  for (const Inst &in : tape.insts) {
    Slot &o = s[in.out];
    const Slot &a = s[in.a], &b = s[in.b], &c = s[in.c];
    switch (in.code) {
    case Code::ConstF: o.f = in.fconst; break;
    case Code::ConstI: o.i = in.iconst; break;
    case Code::Copy: o = a; break;
    case Code::AddI: o.i = a.i + b.i; break;
    case Code::SubI: o.i = a.i - b.i; break;
    case Code::MulI: o.i = a.i * b.i; break;
    case Code::DivSI: case Code::FloorDivSI: case Code::CeilDivSI:
    case Code::RemSI: case Code::DivUI: case Code::RemUI:
      if (b.i == 0) {
        error = "reference: integer division by zero in a region";
        return false;
      }
      if (in.code == Code::DivSI) o.i = a.i / b.i;
      else if (in.code == Code::FloorDivSI) o.i = floorDiv(a.i, b.i);
      else if (in.code == Code::CeilDivSI) o.i = -floorDiv(-a.i, b.i);
      else if (in.code == Code::RemSI) o.i = a.i % b.i;
      else if (in.code == Code::DivUI) o.i = static_cast<int64_t>(static_cast<uint64_t>(a.i) / static_cast<uint64_t>(b.i));
      else o.i = static_cast<int64_t>(static_cast<uint64_t>(a.i) % static_cast<uint64_t>(b.i));
      break;
    case Code::MinSI: o.i = std::min(a.i, b.i); break;
    case Code::MaxSI: o.i = std::max(a.i, b.i); break;
    case Code::MinUI: o.i = static_cast<int64_t>(std::min<uint64_t>(a.i, b.i)); break;
    case Code::MaxUI: o.i = static_cast<int64_t>(std::max<uint64_t>(a.i, b.i)); break;
    case Code::AndI: o.i = a.i & b.i; break;
    case Code::OrI: o.i = a.i | b.i; break;
    case Code::XOrI: o.i = a.i ^ b.i; break;
    case Code::ShlI: o.i = static_cast<int64_t>(static_cast<uint64_t>(a.i) << (b.i & 63)); break;
    case Code::ShrSI: o.i = a.i >> (b.i & 63); break;
    case Code::ShrUI: o.i = static_cast<int64_t>(static_cast<uint64_t>(a.i) >> (b.i & 63)); break;
    case Code::CmpI: o.i = cmpI(in.pred, a.i, b.i); break;
    case Code::AddF: o.f = a.f + b.f; break;
    case Code::SubF: o.f = a.f - b.f; break;
    case Code::MulF: o.f = a.f * b.f; break;
    case Code::DivF: o.f = a.f / b.f; break;
    case Code::RemF: o.f = std::fmod(a.f, b.f); break;
    case Code::NegF: o.f = -a.f; break;
    case Code::MaxF: o.f = std::isnan(a.f) ? b.f : std::isnan(b.f) ? a.f : std::max(a.f, b.f); break;
    case Code::MinF: o.f = std::isnan(a.f) ? b.f : std::isnan(b.f) ? a.f : std::min(a.f, b.f); break;
    case Code::CmpF: o.i = cmpF(in.pred, a.f, b.f); break;
    case Code::Select: o = a.i ? b : c; break;
    case Code::IToF: o.f = static_cast<double>(a.i); break;
    case Code::UIToF: o.f = static_cast<double>(static_cast<uint64_t>(a.i)); break;
    case Code::FToI: o.i = static_cast<int64_t>(a.f); break;
    case Code::Exp: o.f = std::exp(a.f); break;
    case Code::Exp2: o.f = std::exp2(a.f); break;
    case Code::ExpM1: o.f = std::expm1(a.f); break;
    case Code::Log: o.f = std::log(a.f); break;
    case Code::Log2: o.f = std::log2(a.f); break;
    case Code::Log1p: o.f = std::log1p(a.f); break;
    case Code::Tanh: o.f = std::tanh(a.f); break;
    case Code::Sqrt: o.f = std::sqrt(a.f); break;
    case Code::Rsqrt: o.f = 1.0 / std::sqrt(a.f); break;
    case Code::AbsF: o.f = std::fabs(a.f); break;
    case Code::AbsI: o.i = a.i < 0 ? -a.i : a.i; break;
    case Code::Floor: o.f = std::floor(a.f); break;
    case Code::Ceil: o.f = std::ceil(a.f); break;
    case Code::Round: o.f = std::nearbyint(a.f); break;
    case Code::Pow: o.f = std::pow(a.f, b.f); break;
    case Code::Sin: o.f = std::sin(a.f); break;
    case Code::Cos: o.f = std::cos(a.f); break;
    case Code::Erf: o.f = std::erf(a.f); break;
    case Code::Fma: o.f = a.f * b.f + c.f; break;
    case Code::CopySign: o.f = std::copysign(a.f, b.f); break;
    case Code::Read: {
      const TensorView &t = args[in.arg].tensor;
      int64_t idx[8];
      for (size_t d = 0; d < in.indices.size(); ++d) {
        idx[d] = s[in.indices[d]].i;
        if (idx[d] < 0 || idx[d] >= t.shape[d]) {
          error = "reference: a region reads index " + std::to_string(idx[d]) +
                  " of dim " + std::to_string(d) + " (size " +
                  std::to_string(t.shape[d]) + ") of an extra tensor";
          return false;
        }
      }
      double v = t.load(idx);
      if (t.dtype == DType::i32 || t.dtype == DType::i64)
        o.i = static_cast<int64_t>(v);
      else
        o.f = v;
      break;
    }
    case Code::Listed: {
      const TensorView &t = args[in.arg].tensor;
      size_t last = in.indices.size();
      int64_t idx[8];
      for (size_t d = 0; d < last; ++d) {
        idx[d] = s[in.indices[d]].i;
        if (idx[d] < 0 || idx[d] >= t.shape[d]) {
          error = "reference: a region looks up row index " + std::to_string(idx[d]) +
                  " of dim " + std::to_string(d) + " (size " +
                  std::to_string(t.shape[d]) + ") of a list tensor";
          return false;
        }
      }
      int64_t n = std::clamp<int64_t>(s[in.b].i, 0, t.shape[last]);
      o.i = 0;
      for (idx[last] = 0; idx[last] < n && !o.i; ++idx[last])
        o.i = static_cast<int64_t>(t.load(idx)) == a.i;
      break;
    }
    case Code::TopK: {
      TopKTable &t = *in.topk;
      int64_t i = c.i, j = s[in.indices[0]].i;
      if (i < 0 || j < 0 || j >= t.T) {
        o.i = 0;
        break;
      }
      const std::vector<char> &sel = t.select(a.i, b.i, i / t.blockQ);
      o.i = sel[j / t.blockK];
      break;
    }
    }
    // Narrow integers wrap like the kernels' integer types (i1 stays 0/1).
    if (in.width < 64 && in.width > 1 && in.code != Code::Read && in.code != Code::Listed &&
        in.code != Code::CmpI && in.code != Code::CmpF && in.code != Code::TopK) {
      unsigned shift = 64 - in.width;
      o.i = static_cast<int64_t>(static_cast<uint64_t>(o.i) << shift) >> shift;
    }
  }
  return true;
}

/// Paged keys and values as dense [B, Hkv, T, D] f64, dequantized, with
/// each sequence's length; every page a sequence uses must exist.
static bool gatherPages(const TensorView &k, const TensorView &v, const TensorView &table,
                        const TensorView &lens, const TensorView *kScale,
                        const TensorView *vScale, int64_t T, std::vector<double> &kd,
                        std::vector<double> &vd, std::vector<int64_t> &length,
                        std::string &error) {
  int64_t B = table.shape[0], Hkv = k.shape[1], pageSize = k.shape[2];
  int64_t D = k.shape[3], Dv = v.shape[3], pages = k.shape[0];
  kd.assign(static_cast<size_t>(B * Hkv * T * D), 0.0);
  vd.assign(static_cast<size_t>(B * Hkv * T * Dv), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    length[b] = static_cast<int64_t>(lens.load(&b));
    if (length[b] < 0 || length[b] > T) {
      error = "reference: sequence " + std::to_string(b) + " has length " +
              std::to_string(length[b]) + ", outside [0, " + std::to_string(T) + "]";
      return false;
    }
    for (int64_t j = 0; j < length[b]; ++j) {
      int64_t at[2] = {b, j / pageSize};
      int64_t page = static_cast<int64_t>(table.load(at));
      if (page < 0 || page >= pages) {
        error = "reference: block table entry [" + std::to_string(b) + ", " +
                std::to_string(j / pageSize) + "] is page " + std::to_string(page) +
                " of " + std::to_string(pages);
        return false;
      }
      for (int64_t hk = 0; hk < Hkv; ++hk)
        for (auto [codes, scales, dim, out] :
             {std::tuple<const TensorView *, const TensorView *, int64_t, std::vector<double> *>{
                  &k, kScale, D, &kd},
              {&v, vScale, Dv, &vd}})
          for (int64_t d = 0; d < dim; ++d) {
            int64_t idx[4] = {page, hk, j % pageSize, d};
            double x = codes->load(idx);
            if (scales) {
              idx[3] = d / (dim / scales->shape[3]);
              x *= scales->load(idx);
            }
            (*out)[((b * Hkv + hk) * T + j) * dim + d] = x;
          }
    }
  }
  return true;
}

bool attnc::runReference(AttentionOp op, llvm::ArrayRef<ArgValue> args,
                         ReferenceResult &result, std::string &error) {
  // Operands are function arguments; find each one's index.
  llvm::DenseMap<Value, int> argIndex;
  auto fn = op->getParentOfType<func::FuncOp>();
  if (!fn || fn.getNumArguments() < args.size()) {
    error = "reference: expects the op's function and its arguments";
    return false;
  }
  for (BlockArgument a : fn.getArguments())
    if (a.getArgNumber() < args.size())
      argIndex[a] = a.getArgNumber();
  auto tensorOf = [&](Value v, const TensorView *&out) {
    auto it = argIndex.find(v);
    if (it == argIndex.end() || !args[it->second].isTensor)
      return false;
    out = &args[it->second].tensor;
    return true;
  };
  const TensorView *q, *k, *v, *o, *lse = nullptr; // lse: only checked to exist
  if (!tensorOf(op.getQuery(), q) || !tensorOf(op.getKey(), k) ||
      !tensorOf(op.getValue(), v) || !tensorOf(op.getOutput(), o) ||
      (op.getLse() && !tensorOf(op.getLse(), lse))) {
    error = "reference: q, k, v and outputs must be function arguments given as tensors";
    return false;
  }
  for (const TensorView *t : {q, k, v, o})
    if (t->shape.size() != 4) {
      error = "reference: q, k, v and out must be 4-D";
      return false;
    }
  int64_t B = q->shape[0], Hq = q->shape[1], S = q->shape[2], D = q->shape[3];
  int64_t Hkv = k->shape[1], T = k->shape[2], Dv = v->shape[3];
  bool paged = op.isPaged();
  const TensorView *table = nullptr, *lens = nullptr, *kScale = nullptr, *vScale = nullptr;
  if (paged) {
    if (!tensorOf(op.getPageTable(), table) || !tensorOf(op.getSeqLens(), lens) ||
        (op.getKvQuant() && (!tensorOf(op.getKeyScale(), kScale) ||
                             !tensorOf(op.getValueScale(), vScale)))) {
      error = "reference: the block table, lengths and scales must be tensors";
      return false;
    }
    T = table->shape[1] * k->shape[2]; // the longest a sequence may be
  }
  bool shapesOk = Hkv > 0 && Hq % Hkv == 0 && v->shape[1] == Hkv && k->shape[3] == D &&
                  o->shape == std::vector<int64_t>{B, Hq, S, Dv};
  if (paged)
    shapesOk = shapesOk && v->shape[0] == k->shape[0] && v->shape[2] == k->shape[2] &&
               table->shape[0] == B && lens->shape[0] == B;
  else
    shapesOk = shapesOk && k->shape[0] == B && v->shape[0] == B && v->shape[2] == T;
  if (!shapesOk) {
    error = "reference: inconsistent shapes";
    return false;
  }
  // The regions as tapes; attn.size kv_len is a sequence's own length
  // when paged, so those tapes are rebuilt per batch.
  Tape score, mask, gate;
  std::vector<Slot> ss, ms, gs;
  auto compileTapes = [&](int64_t kvLen) {
    int64_t sizes[7] = {B, Hq, Hkv, S, kvLen, D, Dv};
    TapeCompiler compiler(op, args, argIndex, sizes);
    score = Tape();
    mask = Tape();
    gate = Tape();
    if (!compiler.compile(op.getScore(), score, error) ||
        !compiler.compile(op.getMask(), mask, error) ||
        !compiler.compile(op.getGate(), gate, error))
      return false;
    ss.assign(score.numSlots, Slot());
    ms.assign(mask.numSlots, Slot());
    gs.assign(gate.numSlots, Slot());
    return true;
  };
  if (!compileTapes(T))
    return false;

  bool softmax = op.getKernel() == KernelKind::softmax;
  double scale = op.getScale().convertToDouble();
  const double negInf = -std::numeric_limits<double>::infinity();
  result.outShape = {B, Hq, S, Dv};
  result.out.assign(B * Hq * S * Dv, 0.0);
  if (!softmax) {
    result.sumRounding.assign(B * Hq * S * Dv, 0.0);
    result.weightRounding.assign(B * Hq * S * Dv, 0.0);
  }
  result.lse.assign(B * Hq * S, negInf);
  // q, k and v once as f64, row-major.
  auto toDoubles = [](const TensorView &t) {
    std::vector<double> out(static_cast<size_t>(t.numel()));
    int64_t idx[4];
    for (int64_t n = 0; n < t.numel(); ++n) {
      int64_t rem = n;
      for (int d = 3; d >= 0; --d) {
        idx[d] = rem % t.shape[d];
        rem /= t.shape[d];
      }
      out[n] = t.load(idx);
    }
    return out;
  };
  std::vector<double> qd = toDoubles(*q), kd, vd;
  std::vector<int64_t> length(B, T);
  if (!paged) {
    kd = toDoubles(*k);
    vd = toDoubles(*v);
  } else if (!gatherPages(*k, *v, *table, *lens, kScale, vScale, T, kd, vd, length, error)) {
    return false;
  }
  std::vector<double> s(T), p(T);
  std::vector<char> keep(T);
  for (int64_t b = 0; b < B; ++b) {
    if (paged && !compileTapes(length[b]))
      return false;
    for (int64_t h = 0; h < Hq; ++h) {
      int64_t offset = op.getAlign() == QueryAlign::end ? length[b] - S : 0;
      int64_t hk = h / (Hq / Hkv);
      // data() + offset, not &v[i]: with no keys (T = 0) the vectors are
      // empty and there is no element to take the address of.
      const double *kBase = kd.data() + ((b * Hkv + hk) * T) * D;
      const double *vBase = vd.data() + ((b * Hkv + hk) * T) * Dv;
      for (int64_t r = 0; r < S; ++r) {
        int64_t i = r + offset;
        int64_t keys = length[b]; // paged: this sequence's keys
        const double *qRow = &qd[((b * Hq + h) * S + r) * D];
        double m = negInf;
        for (int64_t j = 0; j < keys; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += qRow[d] * kBase[j * D + d];
          double sj = scale * dot;
          if (score.result >= 0) {
            ss[0].f = sj; ss[1].i = b; ss[2].i = h; ss[3].i = i; ss[4].i = j;
            if (!run(score, ss, args, error))
              return false;
            sj = ss[score.result].f;
          }
          keep[j] = 1;
          if (mask.result >= 0) {
            ms[0].i = b; ms[1].i = h; ms[2].i = i; ms[3].i = j;
            if (!run(mask, ms, args, error))
              return false;
            keep[j] = ms[mask.result].i != 0;
          }
          if (keep[j] && sj == negInf)
            keep[j] = 0; // a score of -inf masks too
          s[j] = sj;
          if (keep[j]) {
            m = std::max(m, sj);
            result.maxAbsScore = std::max(result.maxAbsScore, std::fabs(sj));
          }
        }
        double l = 0;
        int64_t visible = 0;
        for (int64_t j = 0; j < keys; ++j) {
          p[j] = !keep[j] ? 0.0 : softmax ? std::exp(s[j] - m) : 1.0 / (1.0 + std::exp(-s[j]));
          visible += keep[j];
          l += p[j];
        }
        result.visiblePairs += visible;
        for (int64_t d = 0; d < Dv; ++d) {
          double acc = 0, absSum = 0, squares = 0;
          for (int64_t j = 0; j < keys; ++j) {
            if (p[j] == 0)
              continue;
            double term = p[j] * vBase[j * Dv + d];
            acc += term;
            absSum += std::fabs(term);
            squares += term * term;
          }
          if (!softmax) {
            int64_t at = ((b * Hq + h) * S + r) * Dv + d;
            result.sumRounding[at] = 2 * 0x1p-24 * std::sqrt(static_cast<double>(visible)) * absSum;
            result.weightRounding[at] = std::sqrt(squares);
          }
          double x = softmax ? (l > 0 ? acc / l : 0.0) : acc;
          if (gate.result >= 0) {
            gs[0].f = x; gs[1].i = b; gs[2].i = h; gs[3].i = i; gs[4].i = d;
            if (!run(gate, gs, args, error))
              return false;
            x = gs[gate.result].f;
          }
          result.out[((b * Hq + h) * S + r) * Dv + d] = x;
        }
        if (softmax && l > 0)
          result.lse[(b * Hq + h) * S + r] = m + std::log(l);
      }
    }
  }
  int64_t offset = op.getAlign() == QueryAlign::end ? T - S : 0; // topk: never paged
  for (const auto &table : mask.topk)
    for (const auto &[b, h, qb] : table->ambiguous) {
      result.rowAmbiguous.resize(static_cast<size_t>(B * Hq * S), 0);
      for (int64_t r = std::max<int64_t>(qb * table->blockQ - offset, 0);
           r < std::min<int64_t>((qb + 1) * table->blockQ - offset, S); ++r)
        result.rowAmbiguous[(b * Hq + h) * S + r] = 1;
    }
  return true;
}

//===----------------------------------------------------------------------===//
// MaskOracle
//===----------------------------------------------------------------------===//

struct MaskOracle::Impl {
  std::vector<ArgValue> args;
  Tape tape;
  std::vector<Slot> slots;
};

MaskOracle::MaskOracle() : impl(std::make_unique<Impl>()) {}
MaskOracle::~MaskOracle() = default;

std::unique_ptr<MaskOracle> MaskOracle::create(AttentionOp op,
                                               llvm::ArrayRef<ArgValue> args,
                                               std::string &error) {
  std::unique_ptr<MaskOracle> oracle(new MaskOracle());
  oracle->impl->args.assign(args.begin(), args.end());
  llvm::DenseMap<Value, int> argIndex;
  auto fn = op->getParentOfType<func::FuncOp>();
  for (BlockArgument a : fn.getArguments())
    if (a.getArgNumber() < args.size())
      argIndex[a] = a.getArgNumber();
  auto q = op.getQuery().getType(), k = op.getKey().getType(),
       v = op.getValue().getType();
  int64_t sizes[7] = {q.getDimSize(0), q.getDimSize(1), k.getDimSize(1),
                      q.getDimSize(2), k.getDimSize(2), q.getDimSize(3),
                      v.getDimSize(3)};
  TapeCompiler compiler(op, oracle->impl->args, argIndex, sizes);
  if (!compiler.compile(op.getMask(), oracle->impl->tape, error))
    return nullptr;
  oracle->impl->slots.resize(oracle->impl->tape.numSlots);
  return oracle;
}

bool MaskOracle::keep(int64_t b, int64_t h, int64_t i, int64_t j, bool &result,
                      std::string &error) {
  Tape &tape = impl->tape;
  if (tape.result < 0) {
    result = true;
    return true;
  }
  std::vector<Slot> &s = impl->slots;
  s[0].i = b;
  s[1].i = h;
  s[2].i = i;
  s[3].i = j;
  if (!run(tape, s, impl->args, error))
    return false;
  result = s[tape.result].i != 0;
  return true;
}

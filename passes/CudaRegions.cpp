//===- CudaRegions.cpp - Regions as CUDA device functions -----------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Regions are straight-line arith/math code, so each op becomes one C
// statement; the mask's tile bounds come from TileIntervals (the same code
// the CPU kernel runs per tile), built into a scratch block and translated
// the same way, scf.for scans included.
//
//===----------------------------------------------------------------------===//

#include "passes/CudaEmission.h"
#include "passes/KernelTemplates.h"
#include "passes/RegionInlining.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"

#include <cmath>
#include <cstdlib>

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;
using namespace attnc::cuda_emit;

std::string cuda_emit::floatLiteral(double v) {
  if (std::isnan(v))
    return "__int_as_float(0x7fc00000)";
  if (std::isinf(v))
    return v > 0 ? "ATTNC_INF" : "(-ATTNC_INF)";
  std::string text;
  llvm::raw_string_ostream s(text);
  // 9 significant digits read back as the same f32.
  s << llvm::format("%.9g", static_cast<float>(v));
  if (text.find_first_of(".e") == std::string::npos)
    text += ".0";
  return "(" + text + "f)";
}

std::string RegionEmitter::typeOf(Type t) {
  if (t.isF32() || t.isBF16() || t.isF16())
    return "float"; // narrow floats are carried as f32 values rounded to them
  if (t.isF64())
    return "double";
  if (t.isInteger(1))
    return "bool";
  if (t.isIndex() || t.isInteger(64))
    return "attnc_index";
  if (t.isInteger(32))
    return "int";
  return "";
}

std::string RegionEmitter::nameOf(Value v) {
  auto it = names.find(v);
  if (it != names.end())
    return it->second;
  Attribute cst;
  if (matchPattern(v, m_Constant(&cst))) {
    if (auto f = dyn_cast<FloatAttr>(cst))
      return floatLiteral(f.getValueAsDouble());
    if (auto i = dyn_cast<IntegerAttr>(cst)) {
      if (i.getType().isInteger(1))
        return i.getValue().isZero() ? "false" : "true";
      int64_t x = i.getValue().getSExtValue();
      std::string t = typeOf(i.getType());
      if (x == INT64_MIN)
        return "(attnc_index)(-9223372036854775807LL - 1)";
      return "((" + t + ")" + std::to_string(x) + "LL)";
    }
  }
  if (auto arg = dyn_cast<BlockArgument>(v))
    if (arg.getOwner() == &fn.getBody().front())
      return "a.x" + std::to_string(arg.getArgNumber());
  error = "the CUDA emitter cannot name a value";
  return "0";
}

std::string RegionEmitter::tensorIndex(Value memref, ValueRange indices) {
  auto arg = dyn_cast<BlockArgument>(memref);
  if (!arg || arg.getOwner() != &fn.getBody().front()) {
    error = "the CUDA emitter reads only tensors passed to the kernel";
    return "0";
  }
  std::string field = "a.x" + std::to_string(arg.getArgNumber());
  std::string at;
  for (unsigned d = 0; d < indices.size(); ++d) {
    // Clamped to the tensor: a region may compute any index.
    std::string idx = "attnc_clamp_read(" + nameOf(indices[d]) + ", " + field + "_d" +
                      std::to_string(d) + ")";
    at = d == 0 ? idx : "(" + at + ") * " + field + "_d" + std::to_string(d) + " + " + idx;
  }
  return at.empty() ? "0" : at;
}

std::string RegionEmitter::load(Value memref, ValueRange indices) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  auto arg = cast<BlockArgument>(memref);
  std::string field = "a.x" + std::to_string(arg.getArgNumber());
  // An empty tensor has nothing to read, not even at the clamped index (0
  // then): it reads attnc_zeros instead. Selecting the pointer, not the
  // value, keeps the load unconditional, so equal loads of neighbouring
  // elements (a row's document id, a head's slope) fold into one. The test
  // is bitwise and the pointer an argument (attnc_or_zeros): with `&&` and
  // `?:` on the field the pointer's own load was conditional, each region
  // read sat behind a branch, and nothing folded across them (a low-rank
  // bias issued 512 loads per tile and took NVRTC two minutes).
  std::string nonEmpty;
  for (unsigned d = 0; d < indices.size(); ++d)
    nonEmpty += std::string(d ? " & " : "") + "(" + field + "_d" + std::to_string(d) + " > 0)";
  std::string base =
      nonEmpty.empty() ? field : "attnc_or_zeros(" + field + ", " + nonEmpty + ")";
  std::string at = base + "[" + tensorIndex(memref, indices) + "]";
  if (elem.isBF16())
    at = "attnc_bf16_to_f32(" + at + ")";
  else if (elem.isF16())
    at = "attnc_f16_to_f32(" + at + ")";
  return at;
}

LogicalResult RegionEmitter::emitBlock(Block &block, int indent) {
  for (Operation &o : block)
    if (failed(emitOp(o, indent)))
      return failure();
  return success();
}

LogicalResult RegionEmitter::emitOps(ArrayRef<Operation *> ops, int indent) {
  for (Operation *o : ops)
    if (failed(emitOp(*o, indent)))
      return failure();
  return success();
}

std::string RegionEmitter::declTypeOf(Value v) {
  if (isa_and_nonnull<ListedOp>(v.getDefiningOp()))
    return "bool";
  return narrow.contains(v) ? "int" : typeOf(v.getType());
}

/// The unsigned C type of the same width as `cType` (int or attnc_index).
static std::string unsignedOf(const std::string &cType) {
  return cType == "attnc_index" ? "unsigned long long" : "unsigned";
}

static const char *cmpIOperator(arith::CmpIPredicate p, bool &isUnsigned) {
  using P = arith::CmpIPredicate;
  isUnsigned = p == P::ult || p == P::ule || p == P::ugt || p == P::uge;
  switch (p) {
  case P::eq: return "==";
  case P::ne: return "!=";
  case P::slt: case P::ult: return "<";
  case P::sle: case P::ule: return "<=";
  case P::sgt: case P::ugt: return ">";
  case P::sge: case P::uge: return ">=";
  }
  return "==";
}

static std::string cmpF(arith::CmpFPredicate p, const std::string &x, const std::string &y) {
  using P = arith::CmpFPredicate;
  switch (p) {
  case P::AlwaysFalse: return "false";
  case P::OEQ: return x + " == " + y;
  case P::OGT: return x + " > " + y;
  case P::OGE: return x + " >= " + y;
  case P::OLT: return x + " < " + y;
  case P::OLE: return x + " <= " + y;
  case P::ONE: return "(" + x + " < " + y + " || " + x + " > " + y + ")";
  case P::ORD: return "(" + x + " == " + x + " && " + y + " == " + y + ")";
  case P::UEQ: return "!(" + x + " < " + y + " || " + x + " > " + y + ")";
  case P::UGT: return "!(" + x + " <= " + y + ")";
  case P::UGE: return "!(" + x + " < " + y + ")";
  case P::ULT: return "!(" + x + " >= " + y + ")";
  case P::ULE: return "!(" + x + " > " + y + ")";
  case P::UNE: return x + " != " + y;
  case P::UNO: return "(" + x + " != " + x + " || " + y + " != " + y + ")";
  case P::AlwaysTrue: return "true";
  }
  return "false";
}

LogicalResult RegionEmitter::emitOp(Operation &o, int indent) {
  std::string pad(indent, ' ');
  if (isa<YieldOp>(o)) {
    os << pad << "return " << nameOf(o.getOperand(0)) << ";\n";
    return success(error.empty());
  }
  if (auto forOp = dyn_cast<scf::ForOp>(o)) {
    // for (iv = lb; iv < ub; iv += step) with the carried values in locals.
    std::vector<std::string> carried;
    for (auto [init, res] : llvm::zip(forOp.getInitArgs(), forOp.getResults())) {
      std::string n = fresh();
      os << pad << typeOf(res.getType()) << " " << n << " = " << nameOf(init) << ";\n";
      names[res] = n;
      carried.push_back(n);
    }
    std::string iv = fresh();
    // Scans over tensors: several loads in flight rather than one at a time.
    os << pad << "#pragma unroll " << scanUnroll << "\n";
    os << pad << "for (attnc_index " << iv << " = " << nameOf(forOp.getLowerBound()) << "; "
       << iv << " < " << nameOf(forOp.getUpperBound()) << "; " << iv
       << " += " << nameOf(forOp.getStep()) << ") {\n";
    names[forOp.getInductionVar()] = iv;
    for (auto [arg, n] : llvm::zip(forOp.getRegionIterArgs(), carried))
      names[arg] = n; // read before the yield overwrites: yields come last
    Block &body = *forOp.getBody();
    for (Operation &inner : body.without_terminator())
      if (failed(emitOp(inner, indent + 2)))
        return failure();
    auto yield = cast<scf::YieldOp>(body.getTerminator());
    // Yielded values go through temporaries: one may read another's carrier.
    std::vector<std::string> tmp;
    for (auto [v, n] : llvm::zip(yield.getOperands(), carried)) {
      std::string t = fresh();
      os << pad << "  " << typeOf(v.getType()) << " " << t << " = " << nameOf(v) << ";\n";
      tmp.push_back(t);
    }
    for (auto [t, n] : llvm::zip(tmp, carried))
      os << pad << "  " << n << " = " << t << ";\n";
    os << pad << "}\n";
    return success(error.empty());
  }
  if (auto listed = dyn_cast<ListedOp>(o)) {
    // The first min(count, L) entries of one row of the list, searched.
    auto arg = dyn_cast<BlockArgument>(listed.getList());
    if (!arg || arg.getOwner() != &fn.getBody().front()) {
      error = "the CUDA emitter reads only tensors passed to the kernel";
      return failure();
    }
    std::string field = "a.x" + std::to_string(arg.getArgNumber());
    std::string len = field + "_d" + std::to_string(listed.getPrefix().size());
    std::string found = fresh(), n = fresh(), t = fresh(), row = fresh();
    os << pad << "bool " << found << " = false;\n";
    os << pad << "{\n";
    os << pad << "  const attnc_index " << n << " = attnc_clamp_index(" << nameOf(listed.getCount())
       << ", " << len << ");\n";
    os << pad << "  const attnc_index " << row << " = (" << tensorIndex(listed.getList(), listed.getPrefix())
       << ") * " << len << ";\n";
    os << pad << "  for (attnc_index " << t << " = 0; " << t << " < " << n << " && !" << found << "; ++"
       << t << ")\n";
    os << pad << "    " << found << " = (attnc_index)" << field << "[" << row << " + " << t
       << "] == " << nameOf(listed.getValue()) << ";\n";
    os << pad << "}\n";
    names[listed.getResult()] = found;
    return success(error.empty());
  }
  if (o.getNumResults() != 1) {
    error = "the CUDA emitter cannot translate '" + o.getName().getStringRef().str() + "'";
    return failure();
  }
  Value result = o.getResult(0);
  std::string type = narrow.contains(result) ? "int" : typeOf(result.getType());
  if (type.empty()) {
    error = "the CUDA emitter has no C type for a result of '" +
            o.getName().getStringRef().str() + "'";
    return failure();
  }
  if (matchPattern(result, m_Constant()))
    return success(); // constants are printed where they are used
  auto x = [&](unsigned n) { return nameOf(o.getOperand(n)); };
  bool wide = type == "attnc_index";
  std::string uType = unsignedOf(type);
  auto wrap = [&](const char *opText) { // two's complement, as arith defines it
    return "(" + type + ")((" + uType + ")" + x(0) + " " + opText + " (" + uType + ")" +
           x(1) + ")";
  };
  auto call = [&](const char *f, unsigned n = 1) {
    std::string s = std::string(f) + "(";
    for (unsigned i = 0; i < n; ++i)
      s += (i ? ", " : "") + x(i);
    return s + ")";
  };
  auto divide = [&](const char *helper) {
    return "(" + type + ")" + helper + "((attnc_index)" + x(0) + ", (attnc_index)" + x(1) + ")";
  };
  // Unsigned division by zero gives 0, like the signed helpers.
  auto divideUnsigned = [&](const char *opText) {
    return "(" + type + ")((" + uType + ")" + x(1) + " ? (" + uType + ")" + x(0) + " " + opText +
           " (" + uType + ")" + x(1) + " : 0)";
  };
  auto pick = [&](const std::string &cast, const char *cmp) {
    return "(" + cast + x(0) + " " + cmp + " " + cast + x(1) + " ? " + x(0) + " : " + x(1) + ")";
  };
  std::string expr =
      llvm::TypeSwitch<Operation *, std::string>(&o)
          .Case([&](arith::AddIOp) { return wrap("+"); })
          .Case([&](arith::SubIOp) { return wrap("-"); })
          .Case([&](arith::MulIOp) { return wrap("*"); })
          .Case([&](arith::DivSIOp) { return divide("attnc_divsi"); })
          .Case([&](arith::RemSIOp) { return divide("attnc_remsi"); })
          .Case([&](arith::FloorDivSIOp) { return divide("attnc_floordivsi"); })
          .Case([&](arith::CeilDivSIOp) { return divide("attnc_ceildivsi"); })
          .Case([&](arith::DivUIOp) { return divideUnsigned("/"); })
          .Case([&](arith::RemUIOp) { return divideUnsigned("%"); })
          .Case([&](arith::MinSIOp) { return pick("", "<"); })
          .Case([&](arith::MaxSIOp) { return pick("", ">"); })
          .Case([&](arith::MinUIOp) { return pick("(" + uType + ")", "<"); })
          .Case([&](arith::MaxUIOp) { return pick("(" + uType + ")", ">"); })
          .Case([&](arith::AndIOp) {
            return type == "bool" ? "(" + x(0) + " && " + x(1) + ")" : "(" + x(0) + " & " + x(1) + ")";
          })
          .Case([&](arith::OrIOp) {
            return type == "bool" ? "(" + x(0) + " || " + x(1) + ")" : "(" + x(0) + " | " + x(1) + ")";
          })
          .Case([&](arith::XOrIOp) {
            return type == "bool" ? "(" + x(0) + " != " + x(1) + ")" : "(" + x(0) + " ^ " + x(1) + ")";
          })
          .Case([&](arith::ShLIOp) {
            return "(" + type + ")((" + uType + ")" + x(0) + " << (" + x(1) + (wide ? " & 63))" : " & 31))");
          })
          .Case([&](arith::ShRSIOp) { return "(" + x(0) + " >> (" + x(1) + (wide ? " & 63))" : " & 31))"); })
          .Case([&](arith::ShRUIOp) {
            return "(" + type + ")((" + uType + ")" + x(0) + " >> (" + x(1) + (wide ? " & 63))" : " & 31))");
          })
          .Case([&](arith::CmpIOp c) {
            bool isUnsigned;
            const char *opText = cmpIOperator(c.getPredicate(), isUnsigned);
            if (!isUnsigned)
              return "(" + x(0) + " " + opText + " " + x(1) + ")";
            std::string u = "(" + unsignedOf(typeOf(c.getLhs().getType())) + ")";
            return "(" + u + x(0) + " " + opText + " " + u + x(1) + ")";
          })
          .Case([&](arith::AddFOp) { return "(" + x(0) + " + " + x(1) + ")"; })
          .Case([&](arith::SubFOp) { return "(" + x(0) + " - " + x(1) + ")"; })
          .Case([&](arith::MulFOp) { return "(" + x(0) + " * " + x(1) + ")"; })
          .Case([&](arith::DivFOp) { return "(" + x(0) + " / " + x(1) + ")"; })
          .Case([&](arith::RemFOp) { return call("fmodf", 2); })
          .Case([&](arith::NegFOp) { return "(-" + x(0) + ")"; })
          .Case<arith::MaximumFOp, arith::MaxNumFOp>([&](auto) { return call("fmaxf", 2); })
          .Case<arith::MinimumFOp, arith::MinNumFOp>([&](auto) { return call("fminf", 2); })
          .Case([&](arith::CmpFOp c) { return "(" + cmpF(c.getPredicate(), x(0), x(1)) + ")"; })
          .Case([&](arith::SelectOp) { return "(" + x(0) + " ? " + x(1) + " : " + x(2) + ")"; })
          .Case<arith::IndexCastOp, arith::ExtSIOp, arith::FPToSIOp>(
              [&](auto) { return "(" + type + ")" + x(0); })
          .Case<arith::IndexCastUIOp, arith::ExtUIOp>([&](Operation *c) {
            Type from = c->getOperand(0).getType();
            if (from.isInteger(1))
              return "(" + type + ")" + x(0);
            std::string u = "(" + unsignedOf(typeOf(from)) + ")";
            return "(" + type + ")" + u + x(0);
          })
          .Case([&](arith::TruncIOp) {
            return type == "bool" ? "(bool)(" + x(0) + " & 1)" : "(" + type + ")" + x(0);
          })
          .Case([&](arith::SIToFPOp) { return "(" + type + ")" + x(0); })
          .Case([&](arith::UIToFPOp c) {
            std::string u = "(" + unsignedOf(typeOf(c.getIn().getType())) + ")";
            return "(" + type + ")" + u + x(0);
          })
          .Case([&](arith::FPToUIOp) { return "(" + type + ")(unsigned long long)" + x(0); })
          .Case([&](arith::ExtFOp) { return "(" + type + ")" + x(0); })
          .Case([&](arith::TruncFOp t) {
            Type to = t.getType();
            if (to.isBF16())
              return "attnc_round_bf16(" + x(0) + ")";
            if (to.isF16())
              return "attnc_round_f16(" + x(0) + ")";
            return "(" + type + ")" + x(0);
          })
          .Case([&](math::ExpOp) { return call("expf"); })
          .Case([&](math::Exp2Op) { return call("exp2f"); })
          .Case([&](math::ExpM1Op) { return call("expm1f"); })
          .Case([&](math::LogOp) { return call("logf"); })
          .Case([&](math::Log2Op) { return call("log2f"); })
          .Case([&](math::Log1pOp) { return call("log1pf"); })
          .Case([&](math::TanhOp) { return call("tanhf"); })
          .Case([&](math::SqrtOp) { return call("sqrtf"); })
          .Case([&](math::RsqrtOp) { return call("rsqrtf"); })
          .Case([&](math::AbsFOp) { return call("fabsf"); })
          .Case([&](math::AbsIOp) { return "(" + x(0) + " < 0 ? -" + x(0) + " : " + x(0) + ")"; })
          .Case([&](math::FloorOp) { return call("floorf"); })
          .Case([&](math::CeilOp) { return call("ceilf"); })
          .Case([&](math::RoundOp) { return call("roundf"); })
          .Case([&](math::RoundEvenOp) { return call("rintf"); })
          .Case([&](math::PowFOp) { return call("powf", 2); })
          .Case([&](math::SinOp) { return call("sinf"); })
          .Case([&](math::CosOp) { return call("cosf"); })
          .Case([&](math::ErfOp) { return call("erff"); })
          .Case([&](math::CopySignOp) { return call("copysignf", 2); })
          .Case([&](math::FmaOp) { return call("fmaf", 3); })
          .Case([&](ReadOp r) { return load(r.getSource(), r.getIndices()); })
          .Case([&](memref::LoadOp l) { return load(l.getMemRef(), l.getIndices()); })
          .Case([&](memref::DimOp d) -> std::string {
            auto arg = dyn_cast<BlockArgument>(d.getSource());
            std::optional<int64_t> dim = d.getConstantIndex();
            if (!arg || !dim)
              return "";
            return "a.x" + std::to_string(arg.getArgNumber()) + "_d" + std::to_string(*dim);
          })
          .Case([&](SizeOp s) -> std::string {
            switch (s.getKind()) {
            case SizeKind::batch: return "a.B";
            case SizeKind::q_heads: return "a.Hq";
            case SizeKind::kv_heads: return "a.Hkv";
            case SizeKind::q_len: return "a.S";
            case SizeKind::kv_len: return "a.T";
            case SizeKind::head_dim: return "(attnc_index)ATTNC_D";
            case SizeKind::value_dim: return "(attnc_index)ATTNC_DV";
            }
            return "";
          })
          .Default([&](Operation *) { return std::string(); });
  if (expr.empty()) {
    error = "the CUDA emitter cannot translate '" + o.getName().getStringRef().str() + "'";
    return failure();
  }
  std::string n = fresh();
  names[result] = n;
  os << pad << "const " << type << " " << n << " = " << expr << ";\n";
  return success(error.empty());
}

//===----------------------------------------------------------------------===//
// The translation unit
//===----------------------------------------------------------------------===//


/// Emits `region` as its hoisted parts (in order: an op in an earlier part
/// is not emitted again by a later one's struct) and `element`, the function
/// of every argument that computes the rest from the parts' structs. With
/// `wrapper`, also a function of the arguments alone that calls them all, for
/// callers that evaluate one element at a time.
///
/// Why parts: a kernel evaluates the mask and score for each element of a
/// tile, and NVVM folds the loads two elements share (a row's document id, a
/// column's factor) only after inlining all of them; a score reading four
/// values of its row and four of its column gave it 64 elements x 8 loads
/// per thread and tile to fold, and minutes of compile time. The kernels call
/// the row part once per row and the column part once per column instead.
bool cuda_emit::isTensorRead(Operation *o) { return isa<ReadOp, ListedOp, memref::LoadOp>(o); }

bool cuda_emit::readsTensor(Operation *o) {
  return o->walk([](Operation *inner) {
            return isTensorRead(inner) ? WalkResult::interrupt() : WalkResult::advance();
          })
      .wasInterrupted();
}

LogicalResult cuda_emit::emitSplitRegion(AttentionOp op, func::FuncOp fn, llvm::raw_ostream &os,
                                          Region &region, ArrayRef<RegionArg> args,
                                          ArrayRef<HoistedPart> parts, const char *result,
                                          const char *element, const char *wrapper) {
  if (region.empty())
    return success();
  Block &block = region.front();
  SmallVector<IndexBounds> bounds;
  for (const RegionArg &arg : args)
    bounds.push_back(arg.bounds);
  llvm::DenseSet<Value> narrow = narrowIndexValues(block, bounds);
  auto argType = [&](RegionEmitter &em, unsigned k) {
    Value arg = block.getArgument(k);
    return arg.getType().isIndex() ? std::string("int") : em.typeOf(arg.getType());
  };

  // Each op goes to the first part whose arguments cover what it depends on
  // (through operands or values a nested region reads), else to the element.
  llvm::DenseMap<Operation *, unsigned> partOf;
  SmallVector<SmallVector<Operation *>> partOps(parts.size());
  SmallVector<Operation *> elementOps;
  SmallVector<llvm::DenseSet<Value>> outside;
  for (const HoistedPart &part : parts) {
    SmallVector<bool> flagged(args.size(), true);
    for (unsigned k : part.args)
      flagged[k] = false;
    for (auto [k, arg] : llvm::enumerate(args))
      if (arg.ambient)
        flagged[k] = false;
    outside.push_back(valuesDependingOn(region, flagged));
  }
  for (Operation &o : block) {
    bool placed = false;
    if (!o.hasTrait<OpTrait::IsTerminator>() && o.getNumResults() != 0 &&
        !matchPattern(&o, m_Constant())) {
      for (unsigned n = 0; n < outside.size(); ++n) {
        const llvm::DenseSet<Value> &dependent = outside[n];
        if (llvm::any_of(o.getResults(), [&](Value v) { return dependent.contains(v); }))
          continue;
        partOf[&o] = n;
        placed = true;
        break;
      }
    }
    if (!placed && !matchPattern(&o, m_Constant()))
      elementOps.push_back(&o);
  }
  // A part also emits the earlier parts' ops it reads (an invariant the row
  // part holds, read by the column part), as its own copies: walking the
  // block backwards, an op goes to its own part and to every later part
  // that reads its results.
  SmallVector<llvm::DenseSet<Operation *>> needed(parts.size());
  for (Operation &o : llvm::reverse(block)) {
    auto it = partOf.find(&o);
    if (it == partOf.end())
      continue;
    for (unsigned n = it->second; n < parts.size(); ++n) {
      if (n != it->second && !needed[n].contains(&o))
        continue;
      needed[n].insert(&o);
      o.walk([&](Operation *inner) {
        for (Value v : inner->getOperands())
          if (Operation *def = v.getDefiningOp(); def && def->getBlock() == &block)
            needed[n].insert(def);
      });
    }
  }
  for (Operation &o : block)
    for (unsigned n = 0; n < parts.size(); ++n)
      if (needed[n].contains(&o) && partOf.count(&o))
        partOps[n].push_back(&o);

  // What the element part reads from each part's struct: a value goes to
  // the first part that computes it.
  SmallVector<llvm::SetVector<Value>> carried(parts.size());
  for (Operation *o : elementOps)
    o->walk([&](Operation *inner) {
      for (Value v : inner->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (!def || def->getBlock() != &block)
          continue;
        auto it = partOf.find(def);
        if (it != partOf.end())
          carried[it->second].insert(v);
      }
    });

  SmallVector<std::unique_ptr<RegionEmitter>> partEms;
  for (auto [n, part] : llvm::enumerate(parts)) {
    std::string body;
    llvm::raw_string_ostream bodyOs(body);
    auto em = std::make_unique<RegionEmitter>(op, fn, bodyOs);
    em->setNarrow(narrow);
    em->setScanUnroll(part.scanUnroll);
    for (unsigned k : part.args)
      em->bind(block.getArgument(k), args[k].name);
    for (auto [k, arg] : llvm::enumerate(args))
      if (arg.ambient)
        em->bind(block.getArgument(k), arg.name);
    if (failed(em->emitOps(partOps[n], 2)))
      return emitError(op.getLoc(), em->error);
    os << "struct " << part.type << " {\n";
    for (Value v : carried[n])
      os << "  " << em->declTypeOf(v) << " " << em->nameOf(v) << ";\n";
    os << "};\n";
    os << "ATTNC_DEV " << part.type << " " << part.function << "(const AttncArgs &a";
    for (unsigned k : part.args)
      if (!args[k].ambient)
        os << ", " << argType(*em, k) << " " << args[k].name;
    os << ") {\n" << body << "  return " << part.type << "{";
    for (auto [i, v] : llvm::enumerate(carried[n]))
      os << (i ? ", " : "") << em->nameOf(v);
    os << "};\n}\n";
    if (part.shuffleDefine) {
      // The part as another lane holds it, one shuffle per field.
      os << "ATTNC_DEV " << part.type << " attnc_shfl(const " << part.type
         << " &x, int src) {\n  return " << part.type << "{";
      for (auto [i, v] : llvm::enumerate(carried[n]))
        os << (i ? ", " : "") << "attnc_shfl(x." << em->nameOf(v) << ", src)";
      os << "};\n}\n";
      // Opt-in until it is timed on the GPU: $ATTNC_CUDA_COL_SHUFFLE=1
      // (docs/cuda-backend.md); otherwise every lane computes the column
      // parts it uses.
      const char *env = std::getenv("ATTNC_CUDA_COL_SHUFFLE");
      bool reads = llvm::any_of(partOps[n], [](Operation *o) { return readsTensor(o); });
      os << "#define " << part.shuffleDefine << " "
         << (reads && env && std::atoi(env) == 1 ? 1 : 0) << "\n";
    }
    partEms.push_back(std::move(em));
  }

  RegionEmitter em(op, fn, os);
  em.setNarrow(std::move(narrow));
  os << "ATTNC_DEV " << result << " " << element << "(const AttncArgs &a";
  for (const HoistedPart &part : parts)
    os << ", const " << part.type << " &" << part.param;
  for (unsigned k = 0; k < args.size(); ++k) {
    if (!args[k].ambient)
      os << ", " << argType(em, k) << " " << args[k].name;
    em.bind(block.getArgument(k), args[k].name);
  }
  os << ") {\n";
  for (auto [n, part] : llvm::enumerate(parts))
    for (Value v : carried[n])
      em.bind(v, std::string(part.param) + "." + partEms[n]->nameOf(v));
  if (failed(em.emitOps(elementOps, 2)))
    return emitError(op.getLoc(), em.error);
  os << "}\n";

  if (!wrapper)
    return success();
  os << "ATTNC_DEV " << result << " " << wrapper << "(const AttncArgs &a";
  for (unsigned k = 0; k < args.size(); ++k)
    if (!args[k].ambient)
      os << ", " << argType(em, k) << " " << args[k].name;
  os << ") {\n  return " << element << "(a";
  for (const HoistedPart &part : parts) {
    os << ", " << part.function << "(a";
    for (unsigned k : part.args)
      if (!args[k].ambient)
        os << ", " << args[k].name;
    os << ")";
  }
  for (const RegionArg &arg : args)
    if (!arg.ambient)
      os << ", " << arg.name;
  os << ");\n}\n";
  return success();
}

LogicalResult cuda_emit::emitArgsAndRegions(func::FuncOp fn, AttentionOp op,
                                             llvm::raw_ostream &os, CudaKernel &out) {
  MemRefType oType = op.getOutput().getType();
  os << "// Generated by attnc for '" << fn.getSymName() << "'.\n";
  // The tensor cores' input type (bf16, else f16), which attn_common.cuh's
  // packing and matrix products already follow.
  os << "#define ATTNC_F16 " << (op.getQuery().getType().getElementType().isF16() ? 1 : 0)
     << "\n";
  os << kAttnCommonCuh;

  // The argument struct: 8-byte slots, in the order `out.slots` records.
  os << "\nstruct AttncArgs {\n";
  auto slot = [&](CudaArgSlot s) { out.slots.push_back(s); };
  const char *elemC = "const attnc_b16";
  os << "  " << elemC << " *q;\n  " << elemC << " *k;\n  " << elemC << " *v;\n";
  Block &entry = fn.getBody().front();
  auto argNo = [&](Value v) { return static_cast<int>(cast<BlockArgument>(v).getArgNumber()); };
  slot({CudaArgSlot::tensor, argNo(op.getQuery())});
  slot({CudaArgSlot::tensor, argNo(op.getKey())});
  slot({CudaArgSlot::tensor, argNo(op.getValue())});
  os << "  " << (oType.getElementType().isF32() ? "float" : "attnc_b16") << " *o;\n";
  slot({CudaArgSlot::tensor, argNo(op.getOutput())});
  os << "  float *lse;\n";
  if (op.getLse())
    slot({CudaArgSlot::tensor, argNo(op.getLse())});
  else
    slot({CudaArgSlot::absent});
  const char *sizeNames[] = {"B", "Hq", "Hkv", "S", "T"};
  for (int s = 0; s < 5; ++s) {
    os << "  attnc_index " << sizeNames[s] << ";\n";
    CudaArgSlot sz{CudaArgSlot::size};
    sz.dim = s;
    slot(sz);
  }
  os << "  unsigned char *classes;\n";
  slot({CudaArgSlot::classes});
  for (BlockArgument arg : entry.getArguments()) {
    Value v = arg;
    if (v == op.getQuery() || v == op.getKey() || v == op.getValue() ||
        v == op.getOutput() || v == op.getLse())
      continue;
    int n = arg.getArgNumber();
    std::string field = "x" + std::to_string(n);
    if (auto mem = dyn_cast<MemRefType>(arg.getType())) {
      Type t = mem.getElementType();
      const char *c = t.isF32() ? "float" : (t.isBF16() || t.isF16()) ? "attnc_b16"
                      : t.isInteger(32) ? "int" : t.isInteger(64) ? "long long" : nullptr;
      if (!c)
        return emitError(op.getLoc(), "the CUDA target cannot pass a tensor of ") << t;
      os << "  const " << c << " *" << field << ";\n";
      slot({CudaArgSlot::tensor, n});
      for (int64_t k = 0; k < mem.getRank(); ++k) {
        os << "  attnc_index " << field << "_d" << k << ";\n";
        CudaArgSlot dimSlot{CudaArgSlot::tensorDim, n};
        dimSlot.dim = static_cast<int>(k);
        slot(dimSlot);
      }
      continue;
    }
    Type t = arg.getType();
    CudaArgSlot s{CudaArgSlot::scalar, n};
    if (t.isF32()) {
      os << "  float " << field << ";\n  int " << field << "_pad;\n";
      s.scalarKind = CudaArgSlot::f32;
    } else if (t.isInteger(32)) {
      os << "  int " << field << ";\n  int " << field << "_pad;\n";
      s.scalarKind = CudaArgSlot::i32;
    } else if (t.isInteger(64) || t.isIndex()) {
      os << "  attnc_index " << field << ";\n";
      s.scalarKind = CudaArgSlot::i64;
    } else {
      return emitError(op.getLoc(), "the CUDA target cannot pass a parameter of ") << t;
    }
    slot(s);
  }
  if (op.isPaged()) {
    // Page strides in bytes (pages sit apart in a pool), the page count and
    // the page size; q4 codes count half bytes.
    auto pageSlot = [&](Value v, const char *field) {
      os << "  attnc_index " << field << ";\n";
      if (!v) {
        out.slots.push_back({CudaArgSlot::absent});
        return;
      }
      CudaArgSlot sl{CudaArgSlot::pageBytes, argNo(v)};
      out.slots.push_back(sl);
    };
    pageSlot(op.getKey(), "kPageBytes");
    pageSlot(op.getValue(), "vPageBytes");
    pageSlot(op.getKeyScale(), "ksPageBytes");
    pageSlot(op.getValueScale(), "vsPageBytes");
    os << "  attnc_index pages;\n  attnc_index pageTokens;\n";
    CudaArgSlot pages{CudaArgSlot::tensorDim, argNo(op.getKey())};
    pages.dim = 0;
    out.slots.push_back(pages);
    CudaArgSlot tokens{CudaArgSlot::tensorDim, argNo(op.getKey())};
    tokens.dim = 2;
    out.slots.push_back(tokens);
  }
  os << "};\n\n";

  // The regions as device functions.
  // Their index arguments are ints: the launch bounds batches and heads by
  // 65535 and positions by kMaxCudaPositions, with i = r + T - S below 0
  // where queries align to the end and outnumber the keys.
  const IndexBounds none{0, -1}, batchOrHead{0, 65535},
      queryPos{-kMaxCudaPositions, kMaxCudaPositions + 1024},
      keyPos{0, kMaxCudaPositions + 1024}, valueDim{0, 1 << 16};
  // The mask and the score in three parts: what depends on the row (and the
  // batch and head alone), on the column, and on both or the score; the gate
  // in two, the row's part and the element's.
  if (failed(emitSplitRegion(op, fn, os, op.getMask(),
                             {{"b", batchOrHead}, {"h", batchOrHead}, {"i", queryPos},
                              {"j", keyPos}},
                             {{"attnc_mask_row", "AttncMaskRow", "row", {0, 1, 2}},
                              {"attnc_mask_col", "AttncMaskCol", "col", {0, 1, 3}, "ATTNC_MASK_COL_SHUFFLE"}},
                             "bool", "attnc_mask_at", "attnc_mask")) ||
      failed(emitSplitRegion(op, fn, os, op.getScore(),
                             {{"s", none},
                              {"b", batchOrHead},
                              {"h", batchOrHead},
                              {"i", queryPos},
                              {"j", keyPos}},
                             {{"attnc_score_row", "AttncScoreRow", "row", {1, 2, 3}},
                              {"attnc_score_col", "AttncScoreCol", "col", {1, 2, 4}, "ATTNC_SCORE_COL_SHUFFLE"}},
                             "float", "attnc_score_at", "attnc_score")) ||
      failed(emitSplitRegion(op, fn, os, op.getGate(),
                             {{"x", none},
                              {"b", batchOrHead},
                              {"h", batchOrHead},
                              {"i", queryPos},
                              {"d", valueDim}},
                             {{"attnc_gate_row", "AttncGateRow", "row", {1, 2, 3}}}, "float",
                             "attnc_gate", nullptr)))
    return failure();

  return success();
}

int cuda_emit::dtypeCode(Type t) { return t.isF32() ? 0 : t.isBF16() ? 1 : 2; }

/// The defines both kernel templates read for the variant's kind, alignment,
/// outputs and regions.
void cuda_emit::emitVariantDefines(AttentionOp op, llvm::raw_ostream &os) {
  os << "#define ATTNC_SIGMOID " << (op.getKernel() == KernelKind::sigmoid ? 1 : 0) << "\n"
     << "#define ATTNC_ALIGN_END " << (op.getAlign() == QueryAlign::end ? 1 : 0) << "\n"
     << "#define ATTNC_HAS_LSE " << (op.getLse() ? 1 : 0) << "\n"
     << "#define ATTNC_HAS_MASK " << (op.getMask().empty() ? 0 : 1) << "\n"
     << "#define ATTNC_HAS_SCORE " << (op.getScore().empty() ? 0 : 1) << "\n"
     << "#define ATTNC_HAS_GATE " << (op.getGate().empty() ? 0 : 1) << "\n";
}

/// The compute capability in an arch name ("sm_90a" -> 90), 0 if none.
int cuda_emit::smNumber(StringRef arch) {
  int n = 0;
  if (!arch.consume_front("sm_") || arch.consumeInteger(10, n))
    return 0;
  return n;
}

//===- AttnToCUDA.cpp - Emit a CUDA kernel for an attn program --*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Regions are straight-line arith/math code, so each op becomes one C
// statement; the mask's tile bounds come from TileIntervals (the same code
// the CPU kernel runs per tile), built into a scratch block and translated
// the same way, scf.for scans included. Why text into a template and not
// the gpu/nvgpu dialects: see docs/cuda-backend.md.
//
//===----------------------------------------------------------------------===//

#include "passes/AttnToCUDA.h"
#include "dialects/attn/AttnOps.h"
#include "passes/KernelTemplates.h"
#include "passes/TileIntervals.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdlib>

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;

namespace {
/// Prints the C++ for ops of one function body.
class RegionEmitter {
public:
  RegionEmitter(AttentionOp op, func::FuncOp fn, llvm::raw_ostream &os)
      : op(op), fn(fn), os(os) {}

  /// Names a block argument of the body being emitted.
  void bind(Value v, std::string name) { names[v] = std::move(name); }
  LogicalResult emitBlock(Block &block, int indent);
  std::string nameOf(Value v);
  std::string typeOf(Type t);
  /// The error to report, once emission failed.
  std::string error;

private:
  LogicalResult emitOp(Operation &o, int indent);
  std::string fresh() { return "v" + std::to_string(counter++); }
  std::string tensorIndex(Value memref, ValueRange indices);
  std::string load(Value memref, ValueRange indices);

  AttentionOp op;
  func::FuncOp fn;
  llvm::raw_ostream &os;
  llvm::DenseMap<Value, std::string> names;
  int counter = 0;
};
} // namespace

static std::string floatLiteral(double v) {
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
  std::string at = field + "[" + tensorIndex(memref, indices) + "]";
  if (elem.isBF16())
    at = "attnc_bf16_to_f32(" + at + ")";
  else if (elem.isF16())
    at = "attnc_f16_to_f32(" + at + ")";
  // An empty tensor has nothing to read, not even at the clamped index.
  std::string nonEmpty;
  for (unsigned d = 0; d < indices.size(); ++d)
    nonEmpty += std::string(d ? " && " : "") + field + "_d" + std::to_string(d) + " > 0";
  return nonEmpty.empty() ? at : "(" + nonEmpty + " ? " + at + " : 0)";
}

LogicalResult RegionEmitter::emitBlock(Block &block, int indent) {
  for (Operation &o : block)
    if (failed(emitOp(o, indent)))
      return failure();
  return success();
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
    os << pad << "#pragma unroll 8\n";
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
  std::string type = typeOf(result.getType());
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

/// The common head of every generated unit: attn_common.cuh, the argument
/// struct AttncArgs (recording its slots in `out`) and the regions as
/// device functions.
static LogicalResult emitArgsAndRegions(func::FuncOp fn, AttentionOp op, llvm::raw_ostream &os,
                                        CudaKernel &out) {
  MemRefType oType = op.getOutput().getType();
  os << "// Generated by attnc for '" << fn.getSymName() << "'.\n";
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
  auto emitRegion = [&](Region &region, const char *signature,
                        std::initializer_list<const char *> argNames) -> LogicalResult {
    if (region.empty())
      return success();
    os << "ATTNC_DEV " << signature << " {\n";
    RegionEmitter em(op, fn, os);
    Block &block = region.front();
    unsigned k = 0;
    for (const char *name : argNames)
      em.bind(block.getArgument(k++), name);
    if (failed(em.emitBlock(block, 2)))
      return emitError(op.getLoc(), em.error);
    os << "}\n";
    return success();
  };
  if (failed(emitRegion(op.getMask(),
                        "bool attnc_mask(const AttncArgs &a, attnc_index b, attnc_index h, "
                        "attnc_index i, attnc_index j)",
                        {"b", "h", "i", "j"})) ||
      failed(emitRegion(op.getScore(),
                        "float attnc_score(const AttncArgs &a, float s, attnc_index b, "
                        "attnc_index h, attnc_index i, attnc_index j)",
                        {"s", "b", "h", "i", "j"})) ||
      failed(emitRegion(op.getGate(),
                        "float attnc_gate(const AttncArgs &a, float x, attnc_index b, "
                        "attnc_index h, attnc_index i, attnc_index d)",
                        {"x", "b", "h", "i", "d"})))
    return failure();

  return success();
}

static int dtypeCode(Type t) { return t.isF32() ? 0 : t.isBF16() ? 1 : 2; }

/// The defines both kernel templates read for the variant's kind, alignment,
/// outputs and regions.
static void emitVariantDefines(AttentionOp op, llvm::raw_ostream &os) {
  os << "#define ATTNC_SIGMOID " << (op.getKernel() == KernelKind::sigmoid ? 1 : 0) << "\n"
     << "#define ATTNC_ALIGN_END " << (op.getAlign() == QueryAlign::end ? 1 : 0) << "\n"
     << "#define ATTNC_HAS_LSE " << (op.getLse() ? 1 : 0) << "\n"
     << "#define ATTNC_HAS_MASK " << (op.getMask().empty() ? 0 : 1) << "\n"
     << "#define ATTNC_HAS_SCORE " << (op.getScore().empty() ? 0 : 1) << "\n"
     << "#define ATTNC_HAS_GATE " << (op.getGate().empty() ? 0 : 1) << "\n";
}

/// Bytes of a row of `features` in a paged format (0 bf16/f16, 1 q8, 2 q4).
static int64_t kRowBytes(int64_t features, int format) {
  return format == 0 ? 2 * features : format == 1 ? features : features / 2;
}

/// The compute capability in an arch name ("sm_90a" -> 90), 0 if none.
static int smNumber(StringRef arch) {
  int n = 0;
  if (!arch.consume_front("sm_") || arch.consumeInteger(10, n))
    return 0;
  return n;
}

/// The paged form: the split-KV decode kernel and its combine kernel. On
/// sm_90 and up with D = Dv of 64 or 128 (and quantized scale rows of whole
/// 16-byte pieces, as bulk copies need) the tensor-core kernel, else the
/// portable one.
static LogicalResult emitPagedDecode(func::FuncOp fn, AttentionOp op, int64_t d, int64_t dv,
                                     StringRef arch, CudaKernel &out) {
  out = CudaKernel();
  out.decode = true;
  out.entry = "attnc_" + fn.getSymName().str();
  out.threads = 128;
  std::optional<KVQuant> quant = op.getKvQuant();
  int format = !quant ? 0 : *quant == KVQuant::q8 ? 1 : 2;
  auto groups = [&](Value scales) -> int64_t {
    return scales ? cast<MemRefType>(scales.getType()).getDimSize(3) : 1;
  };
  int64_t groupsK = groups(op.getKeyScale()), groupsV = groups(op.getValueScale());
  const char *mmaKnob = std::getenv("ATTNC_DECODE_MMA"); // 0: the portable kernel, to compare
  bool mma = smNumber(arch) >= 90 && d == dv && (d == 64 || d == 128) &&
             (format == 0 || (groupsK % 4 == 0 && groupsV % 4 == 0)) &&
             !(mmaKnob && std::string(mmaKnob) == "0");
  int minBlocks;
  int64_t tk;
  if (mma) {
    // Stages of 4 to 8 KB (16 to 64 keys), two per warp. Three CTAs per SM
    // for bf16/f16 rows (12 warps with ~96 KB of copies in flight) and four
    // for quantized ones, whose dequantizing needs more warps to hide its
    // latency: on the H200 (docs/kv-cache.md) bf16 pages ran at 4.07 TB/s
    // against 3.91 with two CTAs of three stages, q4 at 1.96 against 1.45.
    int64_t keyBytes = 2 * kRowBytes(d, format) + (format ? 4 * (groupsK + groupsV) : 0);
    tk = 16;
    while (tk < 64 && 2 * tk * keyBytes <= 8192)
      tk *= 2;
    if (const char *env = std::getenv("ATTNC_DECODE_TK")) {
      int64_t v = std::atoi(env);
      if (v == 16 || v == 32 || v == 64)
        tk = v;
    }
    int64_t stages = 2;
    if (const char *env = std::getenv("ATTNC_DECODE_STAGES"))
      stages = std::clamp<int64_t>(std::atoi(env), 2, 8);
    minBlocks = format == 0 ? 3 : 4;
    if (const char *env = std::getenv("ATTNC_DECODE_MIN_BLOCKS"))
      minBlocks = std::clamp(std::atoi(env), 1, 16);
    int64_t ringOffset = (4 * stages * 16 + 127) / 128 * 128;
    out.decodeMma = true;
    out.decodeRows = 8;
    out.decodeStages = static_cast<int>(stages);
    // Splits hold whole tiles for each of the four warps.
    out.decodeTileKeys = static_cast<int>(4 * tk);
    out.decodeSmemFixed =
        ringOffset + std::max<int64_t>(4 * stages * tk * keyBytes, 4 * 8 * dv * 4 + 256);
  } else {
    // About 16 KB of raw rows per tile, so that a CTA keeps enough loads in
    // flight; quantized rows are smaller, so their tiles hold more keys.
    int64_t rowBytes = (d + dv) * (format == 0 ? 2 : 1) / (format == 2 ? 2 : 1);
    tk = rowBytes >= 512 ? 32 : rowBytes >= 256 ? 64 : 128; // divides the 128 threads
    // Tuning knobs, recorded in the source (so in the cache key):
    // $ATTNC_DECODE_TK (32, 64 or 128) and $ATTNC_DECODE_MIN_BLOCKS.
    auto tileBytes = [&](int64_t keys) {
      return keys * (kRowBytes(d, format) + 16 + kRowBytes(dv, format) + 16) +
             4 * keys * (groupsK + groupsV);
    };
    if (const char *env = std::getenv("ATTNC_DECODE_TK")) {
      int64_t v = std::atoi(env);
      // Two tiles must hold the key groups' final sums (16 KB).
      if ((v == 32 || v == 64 || v == 128) && 2 * tileBytes(v) >= 16384)
        tk = v;
    }
    // Four CTAs per SM measured best for bf16 pages on the H100 (2.43 against
    // 2.04 TB/s with no bound, docs/kv-cache.md).
    minBlocks = 4;
    if (const char *env = std::getenv("ATTNC_DECODE_MIN_BLOCKS"))
      minBlocks = std::clamp(std::atoi(env), 1, 16);
    out.decodeTileKeys = static_cast<int>(tk);
    // Query rows per CTA: their slices of q live in registers.
    out.decodeRows = d <= 128 ? 4 : 2;
    int64_t kRow = kRowBytes(d, format), vRow = kRowBytes(dv, format);
    // Two tiles of rows and scales (at the end, the key groups' sums, 16 KB),
    // weights [TK][4], row statistics, two tiles of page checks.
    out.decodeSmemFixed =
        2 * (tk * (kRow + 16) + tk * (vRow + 16) + 4 * tk * (groupsK + groupsV)) + 16 * tk + 48 +
        8 * tk;
  }
  out.decodeSmemPerRow = 0;
  out.blockQ = 1;
  out.blockK = static_cast<int>(tk);

  std::string text;
  llvm::raw_string_ostream os(text);
  if (failed(emitArgsAndRegions(fn, op, os, out)))
    return failure();
  auto argNo = [&](Value v) { return cast<BlockArgument>(v).getArgNumber(); };
  Type elem = op.getQuery().getType().getElementType();
  os << "\n#define ATTNC_KERNEL " << out.entry << "\n"
     << "#define ATTNC_COMBINE " << out.entry << "_combine\n"
     << "#define ATTNC_D " << d << "\n#define ATTNC_DV " << dv << "\n"
     << "#define ATTNC_F16 " << (elem.isF16() ? 1 : 0) << "\n"
     << "#define ATTNC_OUT " << dtypeCode(op.getOutput().getType().getElementType()) << "\n"
     << "#define ATTNC_KV_FORMAT " << format << "\n"
     << "#define ATTNC_GROUPS_K " << groupsK << "\n#define ATTNC_GROUPS_V " << groupsV << "\n"
     << "#define ATTNC_DECODE_TK " << tk << "\n"
     << "#define ATTNC_DECODE_STAGES " << out.decodeStages << "\n"

     << "#define ATTNC_DECODE_ROWS " << out.decodeRows << "\n"
     << "#define ATTNC_MIN_BLOCKS " << minBlocks << "\n"
     << "#define ATTNC_SCALE " << floatLiteral(op.getScale().convertToDouble()) << "\n";
  emitVariantDefines(op, os);
  os << "#define ATTNC_PAGE_TABLE(a) (a).x" << argNo(op.getPageTable()) << "\n"
     << "#define ATTNC_TABLE_WIDTH(a) (a).x" << argNo(op.getPageTable()) << "_d1\n"
     << "#define ATTNC_SEQ_LENS(a) (a).x" << argNo(op.getSeqLens()) << "\n";
  if (quant)
    os << "#define ATTNC_K_SCALE(a) (a).x" << argNo(op.getKeyScale()) << "\n"
       << "#define ATTNC_V_SCALE(a) (a).x" << argNo(op.getValueScale()) << "\n";
  os << (mma ? kAttnDecodeMmaCuh : kAttnDecodePagedCuh) << kAttnDecodeCombineCuh;
  out.source = std::move(text);
  return success();
}

LogicalResult attnc::emitCudaKernel(func::FuncOp fn, StringRef arch, CudaKernel &out) {
  AttentionOp op;
  fn.walk([&](AttentionOp a) { op = a; });
  if (!op)
    return emitError(fn.getLoc(), "no attn.attention to emit for CUDA");
  MemRefType qType = op.getQuery().getType(), oType = op.getOutput().getType();
  Type elem = qType.getElementType();
  if (op.getMask().walk([](TopKOp) { return WalkResult::interrupt(); }).wasInterrupted())
    return emitError(op.getLoc(), "attn.topk needs its selection table; run "
                                  "attn-materialize-topk before emitting CUDA");
  if (elem.isF32())
    return emitError(op.getLoc(), "the CUDA target takes bf16 or f16 q, k and v (the tensor cores' "
                        "types); this spec has f32: convert the inputs, or pass --dtype=bf16");
  int64_t d = qType.getDimSize(3), dv = oType.getDimSize(3);
  std::optional<KVQuant> quant = op.getKvQuant();
  if (op.isPaged()) {
    // The decode kernel copies rows in 16-byte pieces; eight lanes share a
    // key, each reading its slice of the row in 32-bit words that sit in
    // one scale group.
    int64_t align = quant == KVQuant::q4 ? 64 : quant == KVQuant::q8 ? 32 : 16;
    if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv) || d % align || dv % align ||
        d > 256 || dv > 256)
      return emitError(op.getLoc(), "the CUDA paged decode kernel takes static head dims that are "
                                    "multiples of ")
             << align << " up to 256; got D = " << d << ", Dv = " << dv;
    if (quant) {
      int64_t perWord = *quant == KVQuant::q4 ? 8 : 4;
      int64_t gk = d / cast<MemRefType>(op.getKeyScale().getType()).getDimSize(3);
      int64_t gv = dv / cast<MemRefType>(op.getValueScale().getType()).getDimSize(3);
      if (gk % perWord || gv % 8)
        return emitError(op.getLoc(), "the CUDA paged decode kernel takes key scale groups of a "
                                      "multiple of ")
               << perWord << " features and value groups of a multiple of 8; got " << gk
               << " and " << gv;
    }
    if (128 % (dv / 8))
      return emitError(op.getLoc(), "the CUDA paged decode kernel takes value dims of 16, 32, 64, "
                                    "128 or 256 (8 features per thread, keys spread over 128 "
                                    "threads); got ")
             << dv;
    if (op.getStaticGroupSize() == 0)
      return emitError(op.getLoc(), "the CUDA paged decode kernel needs static head counts");
    return emitPagedDecode(fn, op, d, dv, arch, out);
  }
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv))
    return emitError(op.getLoc(), "the CUDA target needs static head dims; give them with -D");
  if (d % 8 || dv % 8 || d > 256 || dv > 256 || d <= 0 || dv <= 0)
    return emitError(op.getLoc(), "the CUDA target takes head dims that are multiples of 8 up to 256; "
                        "got D = ")
           << d << ", Dv = " << dv;

  ScheduleAttr schedule = op.getScheduleAttr();
  if (!schedule)
    return emitError(op.getLoc(), "the CUDA emitter needs a schedule (run attn-select-schedule)");
  int64_t blockQ = schedule.getBlockQ(), blockK = schedule.getBlockK();
  // Warps take 16 query rows each, or 32 (two row tiles sharing every K and
  // V fragment they load) once there are four warps and the accumulators fit.
  int64_t mTiles = blockQ == 128 && std::max(d, dv) <= 128 ? 2 : 1;
  if (blockQ % 16 || blockQ < 16 || (blockQ > 64 && mTiles == 1) || blockK % 16 ||
      blockK < 16 || blockK > 128)
    return emitError(op.getLoc(), "the portable CUDA kernel takes block_q in {16, 32, 48, 64} "
                                  "(or 128 with head dims up to 128) and block_k a multiple of "
                                  "16 up to 128; the schedule has ")
           << blockQ << " x " << blockK;
  out = CudaKernel();
  // Hopper: two warpgroups of 64 rows each, the matrix products as wgmma
  // from 128-byte-swizzled shared memory (head dims that are whole rows of
  // the swizzle pattern).
  out.hopper = arch == "sm_90a" && d == dv && (d == 64 || d == 128) && blockQ == 128 &&
               blockK == 64;
  if (out.hopper)
    mTiles = 1;
  // The Hopper kernel is warp-specialized (attn_fwd_ws.cuh): a TMA producer
  // warpgroup and two consumers with 232 registers each, room for 128-key
  // tiles and two tiles' products in flight. $ATTNC_CUDA_WS=0 selects the
  // earlier kernel (two warpgroups, two CTAs per SM, cp.async by every
  // thread) for comparisons.
  const char *wsEnv = std::getenv("ATTNC_CUDA_WS");
  out.warpSpecialized = out.hopper && !(wsEnv && std::string(wsEnv) == "0");
  // Both Hopper kernels take 128-key tiles (one wgmma per k step for S,
  // half the per-tile softmax bookkeeping), the two-CTA one only at D = 64
  // without a mask: with mask code its 128-register cap would spill.
  if (out.warpSpecialized || (out.hopper && d == 64 && op.getMask().empty()))
    blockK = 128;
  out.entry = "attnc_" + fn.getSymName().str();
  out.threads = out.warpSpecialized ? 384 : static_cast<int>(2 * blockQ / mTiles);
  out.blockQ = static_cast<int>(blockQ);
  out.blockK = static_cast<int>(blockK);
  int64_t dp = (d + 15) / 16 * 16, dvp = (dv + 15) / 16 * 16;
  // Hopper: 1024 bytes of slack to align the swizzled tiles; the
  // warp-specialized kernel adds its eight mbarriers.
  out.smemBytes = out.hopper ? 2 * (blockQ * d + 2 * blockK * d + 2 * blockK * dv) + 1024 +
                                   (out.warpSpecialized ? 64 : 0)
                             : 2 * (blockQ * (dp + 8) + 2 * blockK * (dp + 8) +
                                    2 * blockK * (dvp + 8));

  std::string text;
  llvm::raw_string_ostream os(text);
  if (failed(emitArgsAndRegions(fn, op, os, out)))
    return failure();

  // The mask's interval bounds over a tile, built in a scratch block whose
  // arguments stand for the box and the sizes, then translated like a region.
  bool hasTileClass = !op.getMask().empty();
  if (hasTileClass) {
    // The bounds code is built from these dialects' ops.
    op.getContext()->loadDialect<arith::ArithDialect, memref::MemRefDialect, scf::SCFDialect>();
    // The block lives in a temporary op at the top of `fn`, so the ops
    // built into it sit in a real region (scf.for's builder needs one).
    OpBuilder ob = OpBuilder::atBlockBegin(&fn.getBody().front());
    auto holder = scf::ExecuteRegionOp::create(ob, op.getLoc(), TypeRange{});
    Block *scratch = new Block();
    holder.getRegion().push_back(scratch);
    for (int k = 0; k < 11; ++k)
      scratch->addArgument(ob.getIndexType(), op.getLoc());
    ImplicitLocOpBuilder b(op.getLoc(), op.getContext());
    b.setInsertionPointToEnd(scratch);
    TileBox box{scratch->getArgument(0), scratch->getArgument(1), scratch->getArgument(2),
                scratch->getArgument(3), scratch->getArgument(4), scratch->getArgument(5)};
    auto sizeOf = [&](int kind) -> Value {
      if (kind <= 4)
        return scratch->getArgument(6 + kind);
      return arith::ConstantIndexOp::create(b, kind == 5 ? d : dv);
    };
    TileClass cls = classifyTile(b, op.getMask(), box, sizeOf);
    // Bounds that scan tensors are worth computing once per launch.
    scratch->walk([&](scf::ForOp) { out.classTable = true; });
    out.classUsesBatch = !op.getMask().getArgument(0).use_empty();
    out.classUsesHead = !op.getMask().getArgument(1).use_empty();
    os << "ATTNC_DEV int attnc_tile_class(const AttncArgs &a, attnc_index b, attnc_index h, "
          "attnc_index iLo, attnc_index iHi, attnc_index jLo, attnc_index jHi) {\n";
    RegionEmitter em(op, fn, os);
    const char *boxNames[] = {"b", "h", "iLo", "iHi", "jLo", "jHi",
                              "a.B", "a.Hq", "a.Hkv", "a.S", "a.T"};
    for (int k = 0; k < 11; ++k)
      em.bind(scratch->getArgument(k), boxNames[k]);
    LogicalResult emitted = em.emitBlock(*scratch, 2);
    if (succeeded(emitted))
      os << "  return (" << em.nameOf(cls.mayKeep) << " ? 1 : 0) | ("
         << em.nameOf(cls.mayDrop) << " ? 2 : 0);\n}\n";
    // Drop the scratch ops before the block goes: they use values of `fn`.
    for (Operation &o : llvm::make_early_inc_range(llvm::reverse(*scratch))) {
      o.dropAllUses();
      o.erase();
    }
    scratch->dropAllUses();
    holder.erase();
    if (failed(emitted))
      return emitError(op.getLoc(), em.error);
  }

  double scale = op.getScale().convertToDouble();
  os << "\n#define ATTNC_KERNEL " << out.entry << "\n"
     << "#define ATTNC_D " << d << "\n#define ATTNC_DV " << dv << "\n"
     << "#define ATTNC_F16 " << (elem.isF16() ? 1 : 0) << "\n"
     << "#define ATTNC_OUT " << dtypeCode(oType.getElementType()) << "\n"
     << "#define ATTNC_BLOCK_M " << blockQ << "\n"
     << "#define ATTNC_MTILES " << mTiles << "\n"
     << "#define ATTNC_WGMMA " << (out.hopper ? 1 : 0) << "\n"
     << "#define ATTNC_WS " << (out.warpSpecialized ? 1 : 0) << "\n"
     << "#define ATTNC_BLOCK_N " << blockK << "\n"
     << "#define ATTNC_SCALE " << floatLiteral(scale) << "\n";
  emitVariantDefines(op, os);
  os << "#define ATTNC_HAS_TILE_CLASS " << (hasTileClass ? 1 : 0) << "\n"
     << "#define ATTNC_CLASS_TABLE " << (out.classTable ? 1 : 0) << "\n";
  if (out.classTable)
    os << "#define ATTNC_CLASS_KERNEL " << out.entry << "_classes\n"
       << "#define ATTNC_CLASS_USES_B " << (out.classUsesBatch ? 1 : 0) << "\n"
       << "#define ATTNC_CLASS_USES_H " << (out.classUsesHead ? 1 : 0) << "\n";
  // The two-CTA Hopper kernel: registers capped for two CTAs per SM, so
  // that while one warpgroup runs its softmax another keeps the tensor
  // cores busy (+21% at D = 128 on the H100, docs/cuda-backend.md). The
  // warp-specialized kernel is one CTA per SM. $ATTNC_CUDA_MIN_BLOCKS
  // overrides it for tuning; the source, hence the cache key, records it.
  int minBlocks = out.hopper && !out.warpSpecialized ? 2 : 1;
  if (const char *env = std::getenv("ATTNC_CUDA_MIN_BLOCKS"))
    minBlocks = std::max(1, std::atoi(env));
  os << "#define ATTNC_MIN_BLOCKS " << minBlocks << "\n";
  os << kAttnFwdMmaCuh;
  if (out.warpSpecialized) {
    // $ATTNC_CUDA_PV_N=64 splits each P V product in two (for comparisons).
    const char *pvEnv = std::getenv("ATTNC_CUDA_PV_N");
    os << "#define ATTNC_WS_PV_N " << (pvEnv && std::string(pvEnv) == "64" ? 64 : 128) << "\n"
       << kAttnFwdWsCuh;
  }
  // A top-k block selection: its table is a hidden argument the two
  // selection kernels fill (attn-materialize-topk).
  for (BlockArgument arg : fn.getArguments()) {
    auto params = fn.getArgAttrOfType<ArrayAttr>(arg.getArgNumber(), "attn.topk");
    if (!params || params.size() != 4)
      continue;
    auto param = [&](int n) { return cast<IntegerAttr>(params[n]).getInt(); };
    out.topk = true;
    out.topkArg = static_cast<int>(arg.getArgNumber());
    out.topkBlockQ = param(1);
    out.topkBlockK = param(2);
    os << "\n#define ATTNC_TOPK_POOL " << out.entry << "_topk_pool\n"
       << "#define ATTNC_TOPK_SELECT " << out.entry << "_topk\n"
       << "#define ATTNC_TOPK_TABLE x" << arg.getArgNumber() << "\n"
       << "#define ATTNC_TOPK_TABLE_d2 x" << arg.getArgNumber() << "_d2\n"
       << "#define ATTNC_TOPK_TABLE_d3 x" << arg.getArgNumber() << "_d3\n"
       << "#define ATTNC_TOPK_K " << param(0) << "\n"
       << "#define ATTNC_TOPK_BQ " << param(1) << "\n"
       << "#define ATTNC_TOPK_BK " << param(2) << "\n"
       << "#define ATTNC_TOPK_CAUSAL " << param(3) << "\n"
       << "#define ATTNC_TOPK_CHUNK " << out.topkChunk << "\n";
    os << kAttnTopkCuh;
  }
  out.source = std::move(text);
  return success();
}

//===- AttnOps.cpp - attn operations: verifiers and helpers -----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The verifiers enforce what every pass relies on: consistent shapes, GQA
// divisibility, and regions that are pure functions of their block arguments,
// the op's extras and the problem sizes.
//
//===----------------------------------------------------------------------===//

#include "dialects/attn/AttnOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace attnc::attn;

#define GET_OP_CLASSES
#include "dialects/attn/AttnOps.cpp.inc"

StringRef attnc::attn::regionName(VariantRegion kind) {
  switch (kind) {
  case VariantRegion::Score:
    return "score";
  case VariantRegion::Mask:
    return "mask";
  case VariantRegion::Gate:
    return "gate";
  }
  llvm_unreachable("VariantRegion has three enumerators");
}

Value attnc::attn::yieldedValue(Region &region) {
  if (region.empty())
    return {};
  auto yield = dyn_cast<YieldOp>(region.front().getTerminator());
  return yield ? yield.getValue() : Value();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

int64_t AttentionOp::getStaticGroupSize() {
  int64_t hq = getQuery().getType().getDimSize(1);
  int64_t hkv = getKey().getType().getDimSize(1);
  if (ShapedType::isDynamic(hq) || ShapedType::isDynamic(hkv) || hkv == 0)
    return 0;
  return hq / hkv;
}

void AttentionOp::getAsmBlockArgumentNames(Region &region,
                                           OpAsmSetValueNameFn setNameFn) {
  if (region.empty())
    return;
  static const char *const scoreNames[] = {"s", "b", "h", "i", "j"};
  static const char *const maskNames[] = {"b", "h", "i", "j"};
  static const char *const gateNames[] = {"x", "b", "h", "i", "d"};
  ArrayRef<const char *> names = &region == &getMask() ? ArrayRef(maskNames)
                                 : &region == &getGate() ? ArrayRef(gateNames)
                                                         : ArrayRef(scoreNames);
  for (auto [arg, name] : llvm::zip(region.getArguments(), names))
    setNameFn(arg, name);
}

int64_t AttentionOp::getStaticHeadDim() {
  int64_t d = getKey().getType().getDimSize(3);
  if (ShapedType::isDynamic(d))
    return d;
  return getKvQuant() == KVQuant::q4 ? 2 * d : d;
}

bool AttentionOp::isExtra(Value v) {
  return llvm::is_contained(getExtras(), v);
}

namespace {
/// One named dimension of one operand, for shape agreement checks.
struct DimRef {
  StringRef operand;
  MemRefType type;
  unsigned index;
  int64_t size() const { return type.getDimSize(index); }
};

std::string describe(int64_t size) {
  return ShapedType::isDynamic(size) ? std::string("?") : std::to_string(size);
}
} // namespace

/// Two static sizes that should agree and do not give a diagnostic naming both.
static LogicalResult expectSameDim(Operation *op, StringRef what, DimRef a,
                                   DimRef b) {
  int64_t x = a.size(), y = b.size();
  if (ShapedType::isDynamic(x) || ShapedType::isDynamic(y) || x == y)
    return success();
  return op->emitOpError() << "expects the " << what << " of " << a.operand
                           << " (dim " << a.index << " = " << describe(x)
                           << ") to match " << b.operand << " (dim " << b.index
                           << " = " << describe(y) << ")";
}

/// The paged form: table [B, M], lens [B], contiguous pages, and scales
/// exactly when the codes are quantized.
static LogicalResult verifyPagedKV(AttentionOp op) {
  MemRefType q = op.getQuery().getType(), k = op.getKey().getType(),
             v = op.getValue().getType();
  Operation *o = op.getOperation();
  std::optional<KVQuant> quant = op.getKvQuant();
  if (!op.isPaged()) {
    if (op.getSeqLens())
      return op.emitOpError("expects sequence lengths only with a block table");
    if (quant || op.getKeyScale() || op.getValueScale())
      return op.emitOpError("expects quantized keys and values only in the paged form");
    return success();
  }
  if (!op.getSeqLens())
    return op.emitOpError("expects sequence lengths with the block table");
  auto table = cast<MemRefType>(op.getPageTable().getType());
  auto lens = cast<MemRefType>(op.getSeqLens().getType());
  if (failed(expectSameDim(o, "batch size", {"block table", table, 0}, {"query", q, 0})) ||
      failed(expectSameDim(o, "batch size", {"lengths", lens, 0}, {"query", q, 0})))
    return failure();
  // Pages sit apart in a pool: the page stride is dynamic (the caller's),
  // and within a page the layout is row-major, which the runtime checks
  // against the caller's strides.
  auto pagedLayout = [](MemRefType t) {
    SmallVector<int64_t> strides;
    int64_t offset;
    if (failed(t.getStridesAndOffset(strides, offset)) || offset != 0 ||
        !ShapedType::isDynamic(strides[0]))
      return false;
    int64_t expect = 1;
    for (int d = t.getRank() - 1; d >= 1; --d) {
      if (ShapedType::isDynamic(expect) ? !ShapedType::isDynamic(strides[d])
                                        : strides[d] != expect)
        return false;
      expect = ShapedType::isDynamic(expect) || t.isDynamicDim(d) ? ShapedType::kDynamic
                                                                  : expect * t.getDimSize(d);
    }
    return true;
  };
  auto layoutError = [&](StringRef name, MemRefType t) {
    return op.emitOpError() << "expects the " << name
                            << " to be row-major within a page, with a dynamic page stride "
                               "(strided<[?, ...]>), got "
                            << t;
  };
  for (auto [name, t] : {std::pair<StringRef, MemRefType>{"key pages", k}, {"value pages", v}})
    if (!pagedLayout(t))
      return layoutError(name, t);
  if (static_cast<bool>(op.getKeyScale()) != static_cast<bool>(op.getValueScale()))
    return op.emitOpError("expects both key and value scales, or neither");
  for (auto [name, scale] :
       {std::pair<StringRef, Value>{"key scales", op.getKeyScale()}, {"value scales", op.getValueScale()}})
    if (scale && !pagedLayout(cast<MemRefType>(scale.getType())))
      return layoutError(name, cast<MemRefType>(scale.getType()));
  if (!quant) {
    if (op.getKeyScale())
      return op.emitOpError("expects scales only with kv_quant");
    return success();
  }
  if (!op.getKeyScale())
    return op.emitOpError() << "expects scales(...) with kv_quant = "
                            << stringifyKVQuant(*quant);
  int packing = *quant == KVQuant::q4 ? 2 : 1;
  for (auto [name, codes, scale, want] :
       {std::tuple<StringRef, MemRefType, Value, int64_t>{"key", k, op.getKeyScale(),
                                                          q.getDimSize(3)},
        {"value", v, op.getValueScale(), op.getOutput().getType().getDimSize(3)}}) {
    auto s = cast<MemRefType>(scale.getType());
    int64_t d = codes.getDimSize(3), groups = s.getDimSize(3);
    if (ShapedType::isDynamic(d) || ShapedType::isDynamic(groups))
      return op.emitOpError() << "expects static " << name
                              << " features and scale groups with kv_quant";
    if (!ShapedType::isDynamic(want) && want != d * packing)
      return op.emitOpError() << "expects " << name << " codes of " << want / packing
                              << " bytes per row for " << want << " features with "
                              << stringifyKVQuant(*quant) << ", got " << d;
    int64_t features = d * packing;
    if (groups < 1 || features % groups != 0 ||
        (*quant == KVQuant::q4 && (features / groups) % 2 != 0))
      return op.emitOpError() << "expects the " << name << " scale groups (" << groups
                              << ") to split " << features << " features evenly"
                              << (*quant == KVQuant::q4 ? " into even groups" : "");
    for (unsigned dim = 0; dim < 3; ++dim)
      if (failed(expectSameDim(o, "page shape", {name == "key" ? "key scales" : "value scales", s, dim},
                               {name, codes, dim})))
        return failure();
  }
  return success();
}

LogicalResult AttentionOp::verify() {
  MemRefType q = getQuery().getType(), k = getKey().getType(),
             v = getValue().getType(), o = getOutput().getType();
  Operation *op = getOperation();

  struct Check {
    StringRef what;
    DimRef a, b;
  };
  // Paged k and v are [pages, Hkv, page size, D]: they share no batch or
  // key length with q, and q4 codes pack two features per byte.
  bool paged = isPaged();
  std::optional<KVQuant> quant = getKvQuant();
  SmallVector<Check> checks = {
      {"batch size", {"out", o, 0}, {"query", q, 0}},
      {"head count", {"value", v, 1}, {"key", k, 1}},
      {"head count", {"out", o, 1}, {"query", q, 1}},
      {"key length", {"value", v, 2}, {"key", k, 2}},
      {"query length", {"out", o, 2}, {"query", q, 2}},
  };
  if (paged)
    checks.push_back({"page count", {"value", v, 0}, {"key", k, 0}});
  else
    checks.append({{"batch size", {"key", k, 0}, {"query", q, 0}},
                   {"batch size", {"value", v, 0}, {"query", q, 0}}});
  if (quant != KVQuant::q4)
    checks.append({{"head dim", {"key", k, 3}, {"query", q, 3}},
                   {"value dim", {"out", o, 3}, {"value", v, 3}}});
  for (const Check &c : checks)
    if (failed(expectSameDim(op, c.what, c.a, c.b)))
      return failure();
  if (failed(verifyPagedKV(*this)))
    return failure();

  int64_t hq = q.getDimSize(1), hkv = k.getDimSize(1);
  if (!ShapedType::isDynamic(hkv) && hkv == 0)
    return emitOpError("expects at least one KV head");
  if (!ShapedType::isDynamic(hq) && !ShapedType::isDynamic(hkv) &&
      hq % hkv != 0)
    return emitOpError() << "expects the query heads (" << hq
                         << ") to be a multiple of the KV heads (" << hkv
                         << ") for grouped-query attention";

  if (!isa<FloatType>(q.getElementType()))
    return emitOpError() << "expects a float query, got " << q.getElementType()
                         << " (i8 is for quantized paged keys and values)";
  if (quant) {
    if (!k.getElementType().isInteger(8) || !v.getElementType().isInteger(8))
      return emitOpError() << "expects i8 key and value codes with kv_quant, got "
                           << k.getElementType() << " and " << v.getElementType();
  } else if (q.getElementType() != k.getElementType() ||
             q.getElementType() != v.getElementType())
    return emitOpError() << "expects query, key and value of one element "
                            "type, got "
                         << q.getElementType() << ", " << k.getElementType()
                         << " and " << v.getElementType();

  if (Value lse = getLse()) {
    if (getKernel() != KernelKind::softmax)
      return emitOpError("expects no lse output with kernel = sigmoid: "
                         "sigmoid attention has no normaliser");
    auto l = cast<MemRefType>(lse.getType());
    if (failed(expectSameDim(op, "batch size", {"lse", l, 0}, {"query", q, 0})) ||
        failed(expectSameDim(op, "head count", {"lse", l, 1}, {"query", q, 1})) ||
        failed(expectSameDim(op, "query length", {"lse", l, 2}, {"query", q, 2})))
      return failure();
  }

  if (!std::isfinite(getScale().convertToDouble()))
    return emitOpError("expects a finite scale");

  for (auto [idx, extra] : llvm::enumerate(getExtras())) {
    Type t = extra.getType();
    if (!isa<MemRefType, IntegerType, IndexType, FloatType>(t))
      return emitOpError() << "expects extra #" << idx
                           << " to be a memref or an integer, index or float "
                              "scalar, got "
                           << t;
  }
  return success();
}

/// Checks one region's signature, terminator and purity.
static LogicalResult verifyVariantRegion(AttentionOp op, Region &region,
                                         VariantRegion kind) {
  if (region.empty())
    return success();
  MLIRContext *ctx = op.getContext();
  Type f32 = Float32Type::get(ctx), idx = IndexType::get(ctx);
  SmallVector<Type> expectedArgs;
  Type expectedResult;
  switch (kind) {
  case VariantRegion::Score:
    expectedArgs = {f32, idx, idx, idx, idx};
    expectedResult = f32;
    break;
  case VariantRegion::Mask:
    expectedArgs = {idx, idx, idx, idx};
    expectedResult = IntegerType::get(ctx, 1);
    break;
  case VariantRegion::Gate:
    expectedArgs = {f32, idx, idx, idx, idx};
    expectedResult = f32;
    break;
  }
  StringRef name = regionName(kind);
  Block &block = region.front();
  if (block.getArgumentTypes() != ArrayRef<Type>(expectedArgs)) {
    auto typeList = [](TypeRange types) {
      std::string text;
      llvm::raw_string_ostream os(text);
      llvm::interleaveComma(types, os, [&](Type t) { t.print(os); });
      return text;
    };
    return op.emitOpError() << "expects the " << name << " region to take ("
                            << typeList(expectedArgs) << "), got ("
                            << typeList(block.getArgumentTypes()) << ")";
  }
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield)
    return op.emitOpError() << "expects the " << name
                            << " region to end with attn.yield";
  if (yield.getValue().getType() != expectedResult)
    return op.emitOpError() << "expects the " << name << " region to yield "
                            << expectedResult << ", got "
                            << yield.getValue().getType();

  for (Operation &inner : block) {
    StringRef ns = inner.getDialect() ? inner.getDialect()->getNamespace() : "";
    if (ns != "arith" && ns != "math" && ns != "attn")
      return inner.emitOpError() << "is not allowed in the " << name
                                 << " region of attn.attention: only arith, "
                                    "math and attn ops may appear there";
    if (!isa<ReadOp, ListedOp>(inner) && !isMemoryEffectFree(&inner))
      return inner.emitOpError() << "has side effects; the " << name
                                 << " region must be pure";
    for (Value operand : inner.getOperands()) {
      // Folding hoists constants out of non-isolated regions; they are fine.
      if (operand.getParentRegion() == &region || op.isExtra(operand) ||
          matchPattern(operand, m_Constant()))
        continue;
      return inner.emitOpError()
             << "uses a value defined outside the " << name
             << " region that is neither a constant nor an extra of "
                "attn.attention; pass "
                "parameters and tensors through extras(...)";
    }
  }
  return success();
}

LogicalResult AttentionOp::verifyRegions() {
  if (failed(verifyVariantRegion(*this, getScore(), VariantRegion::Score)) ||
      failed(verifyVariantRegion(*this, getMask(), VariantRegion::Mask)) ||
      failed(verifyVariantRegion(*this, getGate(), VariantRegion::Gate)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// ReadOp
//===----------------------------------------------------------------------===//

LogicalResult ReadOp::verify() {
  auto type = cast<MemRefType>(getSource().getType());
  if (static_cast<int64_t>(getIndices().size()) != type.getRank())
    return emitOpError() << "expects " << type.getRank()
                         << " indices for a rank-" << type.getRank()
                         << " tensor, got " << getIndices().size();
  return success();
}

//===----------------------------------------------------------------------===//
// ListedOp
//===----------------------------------------------------------------------===//

LogicalResult ListedOp::verify() {
  auto type = cast<MemRefType>(getList().getType());
  if (!isa<IntegerType>(type.getElementType()))
    return emitOpError() << "expects a list of integers, got " << type.getElementType();
  if (static_cast<int64_t>(getPrefix().size()) + 1 != type.getRank())
    return emitOpError() << "expects " << type.getRank() - 1
                         << " prefix indices for a rank-" << type.getRank()
                         << " list, got " << getPrefix().size();
  return success();
}

//===----------------------------------------------------------------------===//
// TopKOp
//===----------------------------------------------------------------------===//

LogicalResult TopKOp::verify() {
  int64_t k = getTopKAttr().getInt(), bq = getBlockQAttr().getInt(),
          bk = getBlockKAttr().getInt();
  if (k <= 0 || bq <= 0 || bk <= 0)
    return emitOpError() << "expects a positive top_k, block_q and block_k, got " << k << ", "
                         << bq << " and " << bk;
  auto parent = cast<AttentionOp>((*this)->getParentOp());
  if ((*this)->getParentRegion() != &parent.getMask())
    return emitOpError() << "is only allowed in the mask region";
  if (parent.isPaged())
    return emitOpError() << "is not supported with paged keys and values";
  return success();
}

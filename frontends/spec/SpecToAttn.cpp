//===- SpecToAttn.cpp - Build attn IR from a checked spec -----------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Emits func.func @NAME(q, k, v, extras..., params..., o[, lse]) holding one
// attn.attention and its regions; EmitExpr.cpp fills the regions in.
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/SpecEmitter.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace attnc;
using namespace attnc::spec;
using llvm::SMLoc;
using llvm::StringRef;

func::FuncOp SpecEmitter::buildFunc() {
  const SpecDecl &decl = *spec.decl;
  SmallVector<Type> types;
  SmallVector<Location> locs;
  SmallVector<NamedAttrList> attrs;

  // Paged k, v and scales: pages may sit apart (a pool's pages), so the
  // page stride is dynamic; q4 codes take half a byte per feature.
  auto pagedRole = [&](const ResolvedTensor &t) {
    if (!spec.paged)
      return false;
    if (&t == &spec.k || &t == &spec.v)
      return true;
    for (int n : {spec.paged->keyScale, spec.paged->valueScale})
      if (n >= 0 && &t == &spec.extras[n])
        return true;
    return false;
  };
  auto addTensor = [&](const ResolvedTensor &t) {
    SmallVector<int64_t> shape(t.shape);
    if (spec.paged && spec.paged->quant == attn::KVQuant::q4 &&
        (&t == &spec.k || &t == &spec.v))
      shape[3] /= 2;
    if (pagedRole(t)) {
      SmallVector<int64_t> strides(4, ShapedType::kDynamic);
      strides[3] = 1;
      if (!ShapedType::isDynamic(shape[3])) {
        strides[2] = shape[3];
        if (!ShapedType::isDynamic(shape[2]))
          strides[1] = shape[2] * shape[3];
      }
      types.push_back(MemRefType::get(shape, t.elementType,
                                      StridedLayoutAttr::get(ctx, 0, strides)));
    } else {
      types.push_back(MemRefType::get(shape, t.elementType));
    }
    locs.push_back(loc(t.decl->name.loc));
    NamedAttrList list;
    list.append("attn.name", b.getStringAttr(t.decl->name.name));
    SmallVector<Attribute> dims;
    for (const std::string &label : t.dimLabels)
      dims.push_back(b.getStringAttr(label));
    list.append("attn.dims", b.getArrayAttr(dims));
    attrs.push_back(std::move(list));
  };

  addTensor(spec.q);
  addTensor(spec.k);
  addTensor(spec.v);
  for (const ResolvedTensor &t : spec.extras) {
    globals[t.decl->name.name] = {Global::Kind::Tensor,
                                  t.decl->name.loc,
                                  static_cast<unsigned>(types.size()),
                                  &t,
                                  nullptr,
                                  ConstValue()};
    addTensor(t);
  }
  for (const ResolvedParam &p : spec.params) {
    globals[p.decl->name.name] = {Global::Kind::Param,
                                  p.decl->name.loc,
                                  static_cast<unsigned>(types.size()),
                                  nullptr,
                                  &p,
                                  ConstValue()};
    types.push_back(p.type);
    locs.push_back(loc(p.decl->name.loc));
    NamedAttrList list;
    list.append("attn.name", b.getStringAttr(p.decl->name.name));
    if (p.defaultValue)
      list.append("attn.default", p.defaultValue);
    attrs.push_back(std::move(list));
  }
  addTensor(spec.o);
  if (spec.lse)
    addTensor(*spec.lse);
  for (const auto &c : spec.consts)
    globals[c.getKey()] = {Global::Kind::Const,
                           spec.constLocs.lookup(c.getKey()),
                           0,
                           nullptr,
                           nullptr,
                           c.getValue()};

  auto fn = func::FuncOp::create(b, loc(decl.name.loc), decl.name.name,
                                 b.getFunctionType(types, {}));
  fn->setAttr("attn.spec", b.getStringAttr(decl.name.name));
  for (auto [i, list] : llvm::enumerate(attrs))
    fn.setArgAttrs(i, list.getDictionary(ctx));
  entry = b.createBlock(&fn.getBody(), {}, types, locs);
  return fn;
}

LogicalResult SpecEmitter::run() {
  OpBuilder::InsertionGuard guard(b);
  buildFunc();
  const SpecDecl &decl = *spec.decl;

  unsigned numExtras = spec.extras.size() + spec.params.size();
  unsigned oIndex = 3 + numExtras;
  Value lse = spec.lse ? entry->getArgument(oIndex + 1) : Value();
  Value pageTable, seqLens, keyScale, valueScale;
  attn::KVQuantAttr quant;
  if (spec.paged) {
    // Extras are the arguments after q, k and v, in declaration order.
    auto extra = [&](int n) { return n < 0 ? Value() : entry->getArgument(3 + n); };
    pageTable = extra(spec.paged->table);
    seqLens = extra(spec.paged->lens);
    keyScale = extra(spec.paged->keyScale);
    valueScale = extra(spec.paged->valueScale);
    if (spec.paged->quant)
      quant = attn::KVQuantAttr::get(ctx, *spec.paged->quant);
  }
  auto op = attn::AttentionOp::create(
      b, loc(decl.name.loc), entry->getArgument(0), entry->getArgument(1),
      entry->getArgument(2), entry->getArgument(oIndex), lse,
      /*extras=*/ValueRange(), pageTable, seqLens, keyScale, valueScale,
      spec.kernel, spec.align, llvm::APFloat(spec.scale), attn::ScheduleAttr(),
      quant);

  // Source order, so that diagnostics come out in the order of the file.
  for (const RegionDecl &r : decl.regions) {
    if (&r == spec.score)
      emitRegion(spec.score, op.getScore(), attn::VariantRegion::Score);
    else if (&r == spec.mask)
      emitRegion(spec.mask, op.getMask(), attn::VariantRegion::Mask);
    else if (&r == spec.gate)
      emitRegion(spec.gate, op.getGate(), attn::VariantRegion::Gate);
  }

  // Extras in signature order: tensors first, then params.
  SmallVector<unsigned> used(usedArgs.begin(), usedArgs.end());
  llvm::sort(used);
  SmallVector<Value> extras;
  for (unsigned i : used)
    extras.push_back(entry->getArgument(i));
  op.getExtrasMutable().assign(extras);

  b.setInsertionPointToEnd(entry);
  func::ReturnOp::create(b, loc(decl.endLoc));
  return success(ok);
}

bool SpecEmitter::declareLocal(const Ident &id, Typed typed) {
  auto g = globals.find(id.name);
  if (g != globals.end()) {
    StringRef what = g->second.kind == Global::Kind::Const   ? "const"
                     : g->second.kind == Global::Kind::Param ? "param"
                                                             : "tensor";
    error(id.loc,
          "'" + id.name + "' shadows the " + what + " '" + id.name +
              "'; pick another name",
          g->second.defLoc, "the " + what + " is declared here");
    return false;
  }
  namedValues.insert(typed.value);
  auto [it, inserted] = locals.try_emplace(id.name, Local{typed, id.loc});
  if (!inserted) {
    error(id.loc, "redefinition of '" + id.name + "'", it->second.defLoc,
          "'" + id.name + "' was first defined here");
    return false;
  }
  return true;
}

void SpecEmitter::emitRegion(const RegionDecl *decl, Region &region,
                             attn::VariantRegion kind) {
  if (!decl || diag.stopped())
    return;
  locals.clear();
  poisoned.clear();
  paramCasts.clear();
  Type f32 = b.getF32Type(), idx = b.getIndexType();
  SmallVector<Type> types;
  if (kind != attn::VariantRegion::Mask)
    types.push_back(f32);
  types.append(4, idx);
  SmallVector<Location> locs;
  for (const Ident &p : decl->params)
    locs.push_back(loc(p.loc));
  Block *block = b.createBlock(&region, {}, types, locs);
  regionBlock = block;
  regionKind = kind;
  for (auto [param, arg] : llvm::zip(decl->params, block->getArguments()))
    declareLocal(param, {arg, isa<FloatType>(arg.getType()) ? ScalarKind::Float
                                                            : ScalarKind::Int});

  for (const LetDecl &let : decl->lets) {
    if (diag.stopped())
      return;
    FailureOr<Typed> v = emit(*let.value);
    if (failed(v)) {
      // Later uses of the name fail quietly instead of "unknown name".
      poisoned.insert(let.name.name);
      ok = false;
      continue;
    }
    declareLocal(let.name, *v);
  }
  if (diag.stopped())
    return;
  const Expr &result = *decl->result;
  FailureOr<Typed> v = emit(result);
  if (failed(v)) {
    ok = false;
    return;
  }
  Location resultLoc = loc(result.loc);
  StringRef name = attn::regionName(kind);
  Value yielded;
  if (kind == attn::VariantRegion::Mask) {
    if (v->kind != ScalarKind::Bool)
      return error(result.loc, "the mask must be a bool expression, got " +
                                   kindName(v->kind) +
                                   "; compare it, e.g. 'x != 0'");
    yielded = v->value;
  } else {
    if (v->kind == ScalarKind::Bool)
      return error(result.loc, "the " + name +
                                   " must be a float expression, got bool; "
                                   "use select(c, a, b) or float(c)");
    yielded = promote(*v, ScalarKind::Float, resultLoc);
  }
  attn::YieldOp::create(b, resultLoc, yielded);
}

LogicalResult attnc::spec::emitSpec(const CheckedSpec &spec,
                                    SpecDiagnostics &diag, OpBuilder &builder) {
  return SpecEmitter(spec, diag, builder).run();
}

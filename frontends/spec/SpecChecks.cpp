//===- SpecChecks.cpp - Declaration checks of one spec --------------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Resolves the inputs, outputs, params, consts, settings and region headers
// of a spec and checks everything the attn.attention verifier would reject
// later, so that the user sees the mistake at its place in the source.
//
//===----------------------------------------------------------------------===//

#include "frontends/spec/SpecDiagnostics.h"
#include "frontends/spec/SpecToAttn.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace attnc;
using namespace attnc::spec;
using llvm::SMLoc;
using llvm::StringRef;

namespace {
/// What a tensor is for; decides its allowed ranks and dtypes.
enum class Role { QKV, Out, Lse, Extra };

class SpecChecker {
public:
  SpecChecker(const SpecDecl &spec, const SpecOptions &opts,
              SpecDiagnostics &diag, CheckedSpec &out)
      : spec(spec), opts(opts), diag(diag), out(out), ctx(diag.getContext()) {}

  LogicalResult run() {
    out.decl = &spec;
    checkUniqueNames();
    findPagedSetting();
    bool tensorsOk = checkTensors();
    if (tensorsOk && pagedSetting)
      tensorsOk = checkPagedTensors();
    tensorsOk &= !pagedInvalid; // k and v's dims mean nothing without it
    if (tensorsOk)
      checkDims();
    checkParams();
    checkConsts();
    checkSettings();
    checkRegions();
    if (tensorsOk)
      checkScaleAndLse();
    return success(ok);
  }

private:
  void error(SMLoc loc, const llvm::Twine &msg) {
    diag.error(loc, msg);
    ok = false;
  }
  void error(SMLoc loc, const llvm::Twine &msg, SMLoc noteLoc,
             const llvm::Twine &note) {
    diag.error(loc, msg, noteLoc, note);
    ok = false;
  }

  void checkUniqueNames();
  void findPagedSetting();
  bool checkPagedTensors();
  bool checkTensors();
  bool resolveTensor(const TensorDecl &decl, Role role, ResolvedTensor &res);
  void checkDims();
  void checkParams();
  void checkConsts();
  void checkSettings();
  void checkRegions();
  void checkScaleAndLse();

  const SpecDecl &spec;
  const SpecOptions &opts;
  SpecDiagnostics &diag;
  CheckedSpec &out;
  MLIRContext *ctx;
  bool ok = true;
  const SettingDecl *kernelSetting = nullptr;
  const SettingDecl *scaleSetting = nullptr;
  /// The `kv = paged(...)` setting and its argument names.
  const SettingDecl *pagedSetting = nullptr;
  SmallVector<const Expr *, 4> pagedArgs;
  bool pagedInvalid = false;
};
} // namespace

void SpecChecker::checkUniqueNames() {
  llvm::StringMap<SMLoc> seen;
  auto add = [&](const Ident &id) {
    auto [it, inserted] = seen.try_emplace(id.name, id.loc);
    if (!inserted)
      error(id.loc, "redefinition of '" + id.name + "'", it->second,
            "'" + id.name + "' was first defined here");
  };
  for (const TensorDecl &t : spec.inputs)
    add(t.name);
  for (const TensorDecl &t : spec.outputs)
    add(t.name);
  for (const ParamDecl &p : spec.params)
    add(p.name);
  for (const ConstDecl &c : spec.consts)
    add(c.name);
}

/// The element type named `name`, or null.
static Type lookupDType(StringRef name, MLIRContext *ctx) {
  return llvm::StringSwitch<Type>(name)
      .Case("f32", Float32Type::get(ctx))
      .Case("bf16", BFloat16Type::get(ctx))
      .Case("f16", Float16Type::get(ctx))
      .Case("i32", IntegerType::get(ctx, 32))
      .Case("i64", IntegerType::get(ctx, 64))
      .Case("q8", IntegerType::get(ctx, 8))
      .Case("q4", IntegerType::get(ctx, 8))
      .Default(Type());
}

bool SpecChecker::resolveTensor(const TensorDecl &decl, Role role,
                                ResolvedTensor &res) {
  res.decl = &decl;
  bool good = true;
  StringRef name = decl.name.name;

  // Element type.
  Type elt = lookupDType(decl.dtype.name, ctx);
  bool pagedKV = pagedSetting && role == Role::QKV && name != "q";
  bool quantized = decl.dtype.name == "q8" || decl.dtype.name == "q4";
  StringRef allowed = role == Role::Lse     ? "f32"
                      : role == Role::Extra ? "f32, bf16, f16, i32 or i64"
                      : pagedKV             ? "f32, bf16, f16, q8 or q4"
                                            : "f32, bf16 or f16";
  bool eltOk = elt && (role != Role::Extra || !quantized) &&
               (role == Role::Extra || isa<FloatType>(elt) || (pagedKV && quantized)) &&
               (role != Role::Lse || elt.isF32());
  if (!eltOk && quantized && role == Role::QKV && name != "q") {
    error(decl.dtype.loc, "'" + name + "' is " + decl.dtype.name +
                              ": quantized keys and values live in pages; add kv = "
                              "paged(table, lens, k_scale, v_scale)");
    good = false;
  } else if (!eltOk) {
    error(decl.dtype.loc, "invalid dtype '" + decl.dtype.name + "' for '" +
                              name + "'; expected " + allowed);
    good = false;
  }
  res.elementType = elt;

  // Rank.
  size_t rank = decl.dims.size();
  if ((role == Role::QKV || role == Role::Out) && rank != 4) {
    error(decl.name.loc, "'" + name + "' must have 4 dimensions (" +
                             (role == Role::Out ? "[B, Hq, S, Dv]"
                              : name == "q"     ? "[B, Hq, S, D]"
                              : pagedKV && name == "k" ? "[P, Hkv, PS, D]"
                              : pagedKV         ? "[P, Hkv, PS, Dv]"
                              : name == "k"     ? "[B, Hkv, T, D]"
                                                : "[B, Hkv, T, Dv]") +
                             "), got " + llvm::Twine(rank));
    good = false;
  } else if (role == Role::Lse && rank != 3) {
    error(decl.name.loc, "'lse' must have 3 dimensions ([B, Hq, S]), got " +
                             llvm::Twine(rank));
    good = false;
  } else if (role == Role::Extra && (rank < 1 || rank > 4)) {
    error(decl.name.loc, "extra tensor '" + name +
                             "' must have 1 to 4 dimensions, got " +
                             llvm::Twine(rank));
    good = false;
  }

  // Sizes, with -D applied.
  for (const DimDecl &dim : decl.dims) {
    if (dim.isSymbol()) {
      out.dimSymbols.try_emplace(dim.symbol, dim.loc);
      auto it = opts.dims.find(dim.symbol);
      if (it != opts.dims.end()) {
        res.shape.push_back(it->second);
        res.dimLabels.push_back(std::to_string(it->second));
      } else {
        res.shape.push_back(ShapedType::kDynamic);
        res.dimLabels.push_back(dim.symbol.str());
      }
      continue;
    }
    if (dim.size < 1 || dim.size > kMaxDimSize) {
      error(dim.loc, "a dimension must be between 1 and " +
                         llvm::Twine(kMaxDimSize) + ", got " +
                         llvm::Twine(dim.size));
      good = false;
    }
    res.shape.push_back(dim.size);
    res.dimLabels.push_back(std::to_string(dim.size));
  }
  return good;
}

void SpecChecker::findPagedSetting() {
  for (const SettingDecl &s : spec.settings) {
    if (s.name.name != "kv")
      continue;
    if (pagedSetting)
      return; // checkSettings reports the duplicate
    const Expr &value = *s.value;
    if (value.kind != Expr::Kind::Call || value.name != "paged" ||
        (value.operands.size() != 2 && value.operands.size() != 4)) {
      error(value.loc, "kv must be paged(table, lens) or paged(table, lens, "
                       "k_scale, v_scale)");
      pagedInvalid = true;
      return;
    }
    for (const auto &arg : value.operands)
      if (arg->kind != Expr::Kind::Name) {
        error(arg->loc, "the arguments of paged(...) are input tensor names");
        pagedInvalid = true;
        return;
      }
    pagedSetting = &s;
    for (const auto &arg : value.operands)
      pagedArgs.push_back(arg.get());
  }
}

bool SpecChecker::checkPagedTensors() {
  CheckedSpec::PagedKV paged;
  static const char *const roles[] = {"block table", "lengths", "key scales",
                                      "value scales"};
  int *slots[] = {&paged.table, &paged.lens, &paged.keyScale, &paged.valueScale};
  bool good = true;
  for (size_t n = 0; n < pagedArgs.size(); ++n) {
    const Expr *arg = pagedArgs[n];
    auto it = llvm::find_if(out.extras, [&](const ResolvedTensor &t) {
      return t.decl->name.name == arg->name;
    });
    if (it == out.extras.end()) {
      error(arg->loc, "the " + llvm::Twine(roles[n]) + " '" + arg->name +
                          "' of paged(...) is not an input tensor after q, k and v");
      good = false;
      continue;
    }
    *slots[n] = static_cast<int>(it - out.extras.begin());
    bool isInt = n < 2;
    unsigned rank = n == 0 ? 2 : n == 1 ? 1 : 4;
    bool typeOk = isInt ? it->elementType.isInteger(32) : it->elementType.isF32();
    if (!typeOk || it->shape.size() != rank) {
      error(it->decl->name.loc,
            "the " + llvm::Twine(roles[n]) + " '" + arg->name + "' must be " +
                (n == 0   ? "i32[B, M]"
                 : n == 1 ? "i32[B]"
                          : "f32[P, Hkv, PS, groups]"),
            arg->loc, "it is used by paged(...) here");
      good = false;
    }
  }
  StringRef codes = out.k.decl->dtype.name;
  bool quantized = codes == "q8" || codes == "q4";
  if (quantized != (pagedArgs.size() == 4)) {
    error(pagedSetting->value->loc,
          quantized ? "q8 and q4 keys and values need their scales: kv = "
                      "paged(table, lens, k_scale, v_scale)"
                    : "scales are only for q8 and q4 keys and values; write "
                      "kv = paged(table, lens)",
          out.k.decl->dtype.loc, "k's dtype is here");
    good = false;
  }
  if (quantized) {
    paged.quant = codes == "q8" ? attn::KVQuant::q8 : attn::KVQuant::q4;
    for (const ResolvedTensor *t : {&out.k, &out.v}) {
      const DimDecl &d = t->decl->dims[3];
      if (d.isSymbol() && !opts.dims.count(d.symbol)) {
        error(d.loc, "the feature dim of quantized '" + t->decl->name.name +
                         "' must be a number (or fixed with -D)");
        good = false;
      } else if (codes == "q4" && t->shape[3] % 2 != 0) {
        error(d.loc, "q4 packs two features per byte: the feature dim of '" +
                         t->decl->name.name + "' must be even");
        good = false;
      }
    }
    for (int n : {2, 3}) {
      if (!good || *slots[n] < 0)
        break;
      const ResolvedTensor &scales = out.extras[*slots[n]];
      const ResolvedTensor &codesT = n == 2 ? out.k : out.v;
      int64_t features = codesT.shape[3], groups = scales.shape[3];
      bool even = ShapedType::isDynamic(groups) ? false
                  : features % groups == 0 &&
                        (codes != "q4" || (features / groups) % 2 == 0);
      if (!even) {
        error(scales.decl->dims[3].loc,
              "the last dim of '" + scales.decl->name.name +
                  "' is the number of scale groups: a number that divides the " +
                  llvm::Twine(features) + " features of '" + codesT.decl->name.name +
                  "'" + (codes == "q4" ? " into groups of even size" : ""));
        good = false;
      }
    }
  }
  out.paged = paged;
  return good;
}

bool SpecChecker::checkTensors() {
  bool good = true;
  static const char *const qkv[] = {"q", "k", "v"};
  ResolvedTensor *slots[] = {&out.q, &out.k, &out.v};
  for (unsigned i = 0; i < 3; ++i) {
    if (i >= spec.inputs.size()) {
      error(spec.name.loc, "spec '" + spec.name.name + "' has no input '" +
                               qkv[i] +
                               "'; the first three inputs must be q, k and v");
      good = false;
      continue;
    }
    const TensorDecl &t = spec.inputs[i];
    if (t.name.name != qkv[i]) {
      error(t.name.loc, "input #" + llvm::Twine(i + 1) + " must be named '" +
                            qkv[i] + "', got '" + t.name.name +
                            "'; the first three inputs are q, k and v");
      good = false;
      continue;
    }
    good &= resolveTensor(t, Role::QKV, *slots[i]);
  }
  for (size_t i = 3; i < spec.inputs.size(); ++i) {
    const TensorDecl &t = spec.inputs[i];
    StringRef n = t.name.name;
    if (n == "q" || n == "k" || n == "v")
      continue; // reported as a redefinition
    if (n == "o" || n == "lse") {
      error(t.name.loc,
            "an input cannot be named '" + n + "'; o and lse are the outputs");
      good = false;
      continue;
    }
    ResolvedTensor res;
    good &= resolveTensor(t, Role::Extra, res);
    out.extras.push_back(std::move(res));
  }

  bool haveO = false;
  for (const TensorDecl &t : spec.outputs) {
    StringRef n = t.name.name;
    if (n == "o" && !haveO) {
      haveO = true;
      good &= resolveTensor(t, Role::Out, out.o);
    } else if (n == "lse" && !out.lse) {
      out.lse.emplace();
      good &= resolveTensor(t, Role::Lse, *out.lse);
    } else if (n != "o" && n != "lse") {
      error(t.name.loc, "unknown output '" + n +
                            "'; the outputs are o (required) and lse "
                            "(optional)");
      good = false;
    } else {
      good = false; // a redefinition, already reported
    }
  }
  if (!haveO) {
    error(spec.outputsLoc, "spec '" + spec.name.name +
                               "' has no output 'o'; declare it as "
                               "o: <dtype>[B, Hq, S, Dv]");
    good = false;
  }
  if (!good)
    return false;

  if (pagedSetting && out.k.elementType.isInteger(8)) {
    if (out.k.decl->dtype.name != out.v.decl->dtype.name) {
      error(out.v.decl->dtype.loc,
            "'v' has dtype " + out.v.decl->dtype.name + " but k has " +
                out.k.decl->dtype.name + "; quantized k and v must share one format",
            out.k.decl->dtype.loc, "k's dtype is here");
      return false;
    }
    return true;
  }
  if (out.k.elementType != out.q.elementType ||
      out.v.elementType != out.q.elementType) {
    const ResolvedTensor &bad =
        out.k.elementType != out.q.elementType ? out.k : out.v;
    error(bad.decl->dtype.loc,
          "'" + bad.decl->name.name + "' has dtype " + bad.decl->dtype.name +
              " but q has " + out.q.decl->dtype.name +
              "; q, k and v must share one dtype",
          out.q.decl->dtype.loc, "q's dtype is here");
    return false;
  }
  return true;
}

void SpecChecker::checkDims() {
  struct Pos {
    const ResolvedTensor *t;
    unsigned dim;
  };
  struct Group {
    StringRef what;
    SmallVector<Pos, 5> positions;
  };
  const ResolvedTensor *lse = out.lse ? &*out.lse : nullptr;
  SmallVector<Group> groups = {
      {"batch size", {{&out.q, 0}, {&out.k, 0}, {&out.v, 0}, {&out.o, 0}}},
      {"query head count", {{&out.q, 1}, {&out.o, 1}}},
      {"KV head count", {{&out.k, 1}, {&out.v, 1}}},
      {"query length", {{&out.q, 2}, {&out.o, 2}}},
      {"key length", {{&out.k, 2}, {&out.v, 2}}},
      {"head dim", {{&out.q, 3}, {&out.k, 3}}},
      {"value dim", {{&out.v, 3}, {&out.o, 3}}},
  };
  if (out.paged) {
    // Paged: k and v are [P, Hkv, PS, D]; the table and lengths carry B.
    const ResolvedTensor *table = &out.extras[out.paged->table],
                         *lens = &out.extras[out.paged->lens];
    groups[0].positions = {{&out.q, 0}, {&out.o, 0}, {table, 0}, {lens, 0}};
    groups[4] = {"page size", {{&out.k, 2}, {&out.v, 2}}};
    groups.push_back({"page count", {{&out.k, 0}, {&out.v, 0}}});
    if (out.paged->quant) {
      const ResolvedTensor *ks = &out.extras[out.paged->keyScale],
                           *vs = &out.extras[out.paged->valueScale];
      for (auto [g, dim] : {std::pair<size_t, unsigned>{2, 1}, {4, 2}, {7, 0}}) {
        groups[g].positions.push_back({ks, dim});
        groups[g].positions.push_back({vs, dim});
      }
    }
  }
  if (lse) {
    groups[0].positions.push_back({lse, 0});
    groups[1].positions.push_back({lse, 1});
    groups[3].positions.push_back({lse, 2});
  }
  for (const Group &g : groups) {
    Pos ref = g.positions.front();
    for (Pos p : ArrayRef(g.positions).drop_front()) {
      StringRef want = ref.t->dimLabels[ref.dim];
      StringRef got = p.t->dimLabels[p.dim];
      if (want == got)
        continue;
      const DimDecl &dim = p.t->decl->dims[p.dim];
      error(dim.loc,
            "dimension " + llvm::Twine(p.dim) + " of '" + p.t->decl->name.name +
                "' (the " + g.what + ") is '" + got + "' but it is '" + want +
                "' in '" + ref.t->decl->name.name + "'",
            ref.t->decl->dims[ref.dim].loc,
            "write the same size or the same name in both places");
      break;
    }
  }

  int64_t hq = out.q.shape[1], hkv = out.k.shape[1];
  if (!ShapedType::isDynamic(hq) && !ShapedType::isDynamic(hkv) &&
      hq % hkv != 0)
    error(out.k.decl->dims[1].loc,
          "the query heads (" + llvm::Twine(hq) +
              ") must be a multiple of the KV heads (" + llvm::Twine(hkv) +
              ") for grouped-query attention",
          out.q.decl->dims[1].loc, "the query heads are set here");
}

void SpecChecker::checkParams() {
  for (const ParamDecl &p : spec.params) {
    if (diag.stopped())
      return;
    ResolvedParam res;
    res.decl = &p;
    StringRef ty = p.type.name;
    if (ty == "i32" || ty == "i64") {
      res.type = IntegerType::get(ctx, ty == "i32" ? 32 : 64);
      res.kind = ScalarKind::Int;
    } else if (ty == "f32") {
      res.type = Float32Type::get(ctx);
      res.kind = ScalarKind::Float;
    } else {
      error(p.type.loc,
            "invalid param type '" + ty + "'; a param is i32, i64 or f32");
      continue;
    }
    if (p.hasDefault) {
      if (res.kind == ScalarKind::Int) {
        int64_t lo = ty == "i32" ? std::numeric_limits<int32_t>::min()
                                 : std::numeric_limits<int64_t>::min();
        int64_t hi = ty == "i32" ? std::numeric_limits<int32_t>::max()
                                 : std::numeric_limits<int64_t>::max();
        if (p.defaultIsFloat) {
          error(p.defaultLoc, "the default of " + ty + " param '" +
                                  p.name.name + "' must be an integer");
          continue;
        }
        if (p.intDefault < lo || p.intDefault > hi) {
          error(p.defaultLoc, "default value " + llvm::Twine(p.intDefault) +
                                  " is out of range for " + ty + " (" +
                                  llvm::Twine(lo) + " to " + llvm::Twine(hi) +
                                  ")");
          continue;
        }
        res.defaultValue = IntegerAttr::get(res.type, p.intDefault);
      } else {
        double v = p.defaultIsFloat ? p.floatDefault
                                    : static_cast<double>(p.intDefault);
        if (std::isinf(static_cast<float>(v))) {
          error(p.defaultLoc, "default value " + formatDouble(v) +
                                  " is out of range for f32");
          continue;
        }
        res.defaultValue = FloatAttr::get(res.type, v);
      }
    }
    out.params.push_back(res);
  }
}

/// What each non-const name of `spec` is, for "not a constant" errors.
static llvm::StringMap<std::string> describeNames(const SpecDecl &spec) {
  llvm::StringMap<std::string> what;
  for (const TensorDecl &t : spec.outputs)
    what.try_emplace(t.name.name, "an output");
  for (const TensorDecl &t : spec.inputs)
    what.try_emplace(t.name.name, "a tensor");
  for (const ParamDecl &p : spec.params)
    what.try_emplace(p.name.name, "a runtime param");
  return what;
}

void SpecChecker::checkConsts() {
  llvm::StringMap<std::string> what = describeNames(spec);
  for (const ConstDecl &c : spec.consts)
    what.try_emplace(c.name.name, "a const defined later");
  auto describe = [&](StringRef name) -> std::string {
    return what.lookup(name);
  };
  ConstEvaluator eval(diag, out.consts, describe);
  for (size_t index = 0; index < spec.consts.size(); ++index) {
    if (diag.stopped())
      return;
    const ConstDecl &c = spec.consts[index];
    FailureOr<ConstValue> v = eval.evaluate(*c.value, /*diagnose=*/true);
    if (failed(v)) {
      what[c.name.name] = "a const whose value is invalid";
      ok = false;
      continue;
    }
    out.consts.try_emplace(c.name.name, *v);
    out.constLocs.try_emplace(c.name.name, c.name.loc);
  }
}

void SpecChecker::checkSettings() {
  llvm::StringMap<SMLoc> seen;
  llvm::StringMap<std::string> what = describeNames(spec);
  auto describe = [&](StringRef name) -> std::string {
    return what.lookup(name);
  };
  ConstEvaluator eval(diag, out.consts, describe);
  for (const SettingDecl &s : spec.settings) {
    if (diag.stopped())
      return;
    StringRef name = s.name.name;
    auto [it, inserted] = seen.try_emplace(name, s.name.loc);
    if (!inserted) {
      error(s.name.loc, "setting '" + name + "' is given twice", it->second,
            "first given here");
      continue;
    }
    const Expr &value = *s.value;
    if (name == "scale") {
      scaleSetting = &s;
      FailureOr<ConstValue> v = eval.evaluate(value, /*diagnose=*/true);
      if (failed(v)) {
        ok = false;
      } else if (v->kind == ScalarKind::Bool) {
        error(value.loc, "the scale must be a number, got bool");
      } else {
        out.scale = v->asDouble();
      }
      continue;
    }
    if (name == "kernel" || name == "align") {
      bool isKernel = name == "kernel";
      StringRef word = value.kind == Expr::Kind::Name ? value.name : "";
      if (isKernel && (word == "softmax" || word == "sigmoid")) {
        kernelSetting = &s;
        out.kernel = word == "softmax" ? attn::KernelKind::softmax
                                       : attn::KernelKind::sigmoid;
      } else if (!isKernel && (word == "start" || word == "end")) {
        out.align =
            word == "start" ? attn::QueryAlign::start : attn::QueryAlign::end;
      } else {
        error(value.loc, isKernel ? "kernel must be 'softmax' or 'sigmoid'"
                                  : "align must be 'start' or 'end'");
      }
      continue;
    }
    if (name == "kv")
      continue; // read by findPagedSetting
    static const StringRef settingNames[] = {"scale", "kernel", "align", "kv"};
    if (std::optional<StringRef> guess = closestName(name, settingNames))
      error(s.name.loc, "unknown setting '" + name + "'", s.name.loc,
            "did you mean '" + *guess + "'?");
    else
      error(s.name.loc, "unknown setting '" + name +
                            "'; the settings are scale, kernel, align and kv");
  }
}

void SpecChecker::checkRegions() {
  for (const RegionDecl &r : spec.regions) {
    if (diag.stopped())
      return;
    StringRef kind = r.kind.name;
    const RegionDecl **slot = kind == "score"  ? &out.score
                              : kind == "mask" ? &out.mask
                              : kind == "gate" ? &out.gate
                                               : nullptr;
    if (!slot) {
      static const StringRef regionNames[] = {"score", "mask", "gate"};
      if (std::optional<StringRef> guess = closestName(kind, regionNames))
        error(r.kind.loc, "unknown region '" + kind + "'", r.kind.loc,
              "did you mean '" + *guess + "'?");
      else
        error(r.kind.loc, "unknown region '" + kind +
                              "'; the regions are score, mask and gate");
      continue;
    }
    if (*slot) {
      error(r.kind.loc, "the " + kind + " region is defined twice",
            (*slot)->kind.loc, "first defined here");
      continue;
    }
    StringRef signature = kind == "score"  ? "(s, b, h, i, j)"
                          : kind == "mask" ? "(b, h, i, j)"
                                           : "(x, b, h, i, d)";
    size_t want = kind == "mask" ? 4 : 5;
    if (r.params.size() != want) {
      error(r.kind.loc, "the " + kind + " region takes " + llvm::Twine(want) +
                            " parameters " + signature + ", got " +
                            llvm::Twine(r.params.size()));
      continue;
    }
    bool unique = true;
    for (size_t i = 0; i < r.params.size() && unique; ++i)
      for (size_t j = 0; j < i; ++j)
        if (r.params[i].name == r.params[j].name) {
          error(r.params[i].loc,
                "duplicate parameter name '" + r.params[i].name + "'",
                r.params[j].loc, "first used here");
          unique = false;
          break;
        }
    if (unique)
      *slot = &r;
  }
}

void SpecChecker::checkScaleAndLse() {
  if (!scaleSetting) {
    int64_t d = out.q.shape[3];
    const DimDecl &dim = out.q.decl->dims[3];
    if (ShapedType::isDynamic(d))
      error(dim.loc,
            "cannot infer the default scale 1/sqrt(D): the head dim '" +
                dim.symbol + "' of q is symbolic",
            dim.loc,
            "set 'scale = ...' in the spec, or fix the size with -D " +
                dim.symbol + "=<size>");
    else
      out.scale = 1.0 / std::sqrt(static_cast<double>(d));
  }
  if (out.lse && out.kernel == attn::KernelKind::sigmoid)
    error(out.lse->decl->name.loc,
          "lse is only defined for kernel = softmax; sigmoid attention has "
          "no normaliser",
          kernelSetting->name.loc, "the kernel is set to sigmoid here");
}

LogicalResult attnc::spec::checkSpec(const SpecDecl &spec,
                                     const SpecOptions &opts,
                                     SpecDiagnostics &diag, CheckedSpec &out) {
  return SpecChecker(spec, opts, diag, out).run();
}

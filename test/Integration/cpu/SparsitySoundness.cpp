//===- SparsitySoundness.cpp - Block plans never drop a visible pair -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// For every spec given, at many random query/key lengths, tile shapes and
// parameter values: builds the compile-time block plan
// (attn-infer-block-sparsity) and checks every (i, j) of every tile against
// the reference's interpretation of the mask: no visible pair in an EMPTY
// tile, no masked pair in a FULL tile. Parameters are baked in as constants
// so that masks with runtime windows are planned too.
//
// Masks that read tensors (document ids, block masks, block lists) have no
// compile-time plan; for them the test emits the same run-time tile bound
// the CPU kernel and the GPU class kernel use (classifyTile), runs it with a
// small interpreter on random tensors (sorted segment ids, random small
// ints, random lists) and checks it against the reference the same way.
// Prints "N passed, N failed" last. With --report=N it instead prints, per
// spec, the share of EMPTY, PARTIAL and FULL 64 x 64 tiles at S = T = N on
// benchmark-like inputs.
//
//===----------------------------------------------------------------------===//

#include "compiler/Compile.h"
#include "compiler/Reference.h"
#include "dialects/attn/AttnOps.h"
#include "passes/Passes.h"
#include "passes/TileIntervals.h"
#include "attnc/runtime/TopKSelect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/TypeSwitch.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdio>
#include <random>

using namespace mlir;
using namespace attnc;

namespace {
struct Case {
  int64_t s, t, bq, bk;
  std::map<std::string, int64_t> params;
  /// Size every other symbol too (the run-time check needs tensors).
  bool sizeAll = false;
  /// Sizes of named symbols that sizeAll would otherwise pick.
  std::map<std::string, int64_t> named;
  /// Cap the lengths so that every pair can be checked.
  bool exhaustive = true;
};

/// Runs the integer IR classifyTile emits (arith, math.absi, memref.load
/// and dim of the kernel's tensors, scf.for) on concrete values.
class BoundInterpreter {
public:
  BoundInterpreter(func::FuncOp fn, const std::vector<ArgValue> &args) : fn(fn), args(args) {}
  llvm::DenseMap<Value, int64_t> env;
  /// Values the caller sets (the tile's box); never recomputed.
  llvm::DenseSet<Value> seeded;
  std::string error;

  bool run(Block &block) {
    for (Operation &op : block.without_terminator())
      if (!step(op))
        return false;
    return true;
  }

private:
  int64_t get(Value v) {
    auto it = env.find(v);
    if (it != env.end())
      return it->second;
    if (auto arg = dyn_cast<BlockArgument>(v); arg && arg.getOwner() == &fn.getBody().front())
      return static_cast<int64_t>(args[arg.getArgNumber()].scalar);
    error = "the interpreter has no value for an operand";
    return 0;
  }
  const TensorView *tensorOf(Value v) {
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || arg.getOwner() != &fn.getBody().front() || !args[arg.getArgNumber()].isTensor)
      return nullptr;
    return &args[arg.getArgNumber()].tensor;
  }
  static int64_t wrap(int64_t x, Type t) {
    unsigned w = t.isIndex() ? 64 : t.getIntOrFloatBitWidth();
    if (w == 1)
      return x & 1;
    if (w >= 64)
      return x;
    unsigned shift = 64 - w;
    return static_cast<int64_t>(static_cast<uint64_t>(x) << shift) >> shift;
  }
  bool step(Operation &op) {
    if (auto forOp = dyn_cast<scf::ForOp>(op)) {
      int64_t lo = get(forOp.getLowerBound()), hi = get(forOp.getUpperBound()),
              st = get(forOp.getStep());
      llvm::SmallVector<int64_t> carried;
      for (Value v : forOp.getInitArgs())
        carried.push_back(get(v));
      for (int64_t iv = lo; iv < hi && st > 0; iv += st) {
        env[forOp.getInductionVar()] = iv;
        for (auto [arg, v] : llvm::zip(forOp.getRegionIterArgs(), carried))
          env[arg] = v;
        if (!run(*forOp.getBody()))
          return false;
        auto yield = cast<scf::YieldOp>(forOp.getBody()->getTerminator());
        for (auto [n, v] : llvm::enumerate(yield.getOperands()))
          carried[n] = get(v);
      }
      for (auto [res, v] : llvm::zip(forOp.getResults(), carried))
        env[res] = v;
      return error.empty();
    }
    if (op.getNumResults() != 1) {
      error = "the interpreter cannot run '" + op.getName().getStringRef().str() + "'";
      return false;
    }
    Value r = op.getResult(0);
    if (seeded.count(r))
      return true;
    auto x = [&](unsigned n) { return get(op.getOperand(n)); };
    using P = arith::CmpIPredicate;
    bool ok = true;
    int64_t v = llvm::TypeSwitch<Operation *, int64_t>(&op)
        .Case([&](arith::ConstantOp c) -> int64_t {
          if (auto i = dyn_cast<IntegerAttr>(c.getValue()))
            return i.getType().isInteger(1) ? !i.getValue().isZero()
                                             : i.getValue().getSExtValue();
          ok = false;
          return 0;
        })
        .Case([&](arith::AddIOp) { return static_cast<int64_t>(static_cast<uint64_t>(x(0)) + static_cast<uint64_t>(x(1))); })
        .Case([&](arith::SubIOp) { return static_cast<int64_t>(static_cast<uint64_t>(x(0)) - static_cast<uint64_t>(x(1))); })
        .Case([&](arith::MulIOp) { return static_cast<int64_t>(static_cast<uint64_t>(x(0)) * static_cast<uint64_t>(x(1))); })
        .Case([&](arith::DivSIOp) { return x(1) ? x(0) / x(1) : 0; })
        .Case([&](arith::RemSIOp) { return x(1) ? x(0) % x(1) : 0; })
        .Case([&](arith::FloorDivSIOp) -> int64_t {
          int64_t a = x(0), b = x(1);
          if (!b)
            return 0;
          int64_t q = a / b;
          return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
        })
        .Case([&](arith::MinSIOp) { return std::min(x(0), x(1)); })
        .Case([&](arith::MaxSIOp) { return std::max(x(0), x(1)); })
        .Case([&](arith::AndIOp) { return x(0) & x(1); })
        .Case([&](arith::OrIOp) { return x(0) | x(1); })
        .Case([&](arith::XOrIOp) { return x(0) ^ x(1); })
        .Case([&](arith::SelectOp) { return x(0) ? x(1) : x(2); })
        .Case<arith::IndexCastOp, arith::ExtSIOp, arith::TruncIOp>([&](Operation *) { return x(0); })
        .Case([&](math::AbsIOp) { return x(0) < 0 ? -x(0) : x(0); })
        .Case([&](arith::CmpIOp c) -> int64_t {
          int64_t a = x(0), b = x(1);
          uint64_t ua = a, ub = b;
          switch (c.getPredicate()) {
          case P::eq: return a == b;
          case P::ne: return a != b;
          case P::slt: return a < b;
          case P::sle: return a <= b;
          case P::sgt: return a > b;
          case P::sge: return a >= b;
          case P::ult: return ua < ub;
          case P::ule: return ua <= ub;
          case P::ugt: return ua > ub;
          case P::uge: return ua >= ub;
          }
          return 0;
        })
        .Case([&](memref::DimOp d) -> int64_t {
          const TensorView *t = tensorOf(d.getSource());
          std::optional<int64_t> dim = d.getConstantIndex();
          if (!t || !dim) {
            ok = false;
            return 0;
          }
          return t->shape[*dim];
        })
        .Case([&](memref::LoadOp l) -> int64_t {
          const TensorView *t = tensorOf(l.getMemRef());
          if (!t) {
            ok = false;
            return 0;
          }
          int64_t idx[8];
          for (auto [n, i] : llvm::enumerate(l.getIndices())) {
            idx[n] = get(i);
            if (idx[n] < 0 || idx[n] >= t->shape[n]) {
              error = "the tile bound reads index " + std::to_string(idx[n]) + " of dim " +
                      std::to_string(n) + " (size " + std::to_string(t->shape[n]) + ")";
              return 0;
            }
          }
          return static_cast<int64_t>(t->load(idx));
        })
        .Default([&](Operation *) {
          ok = false;
          return 0;
        });
    if (!ok) {
      error = "the interpreter cannot run '" + op.getName().getStringRef().str() + "'";
      return false;
    }
    env[r] = wrap(v, r.getType());
    return error.empty();
  }

  func::FuncOp fn;
  const std::vector<ArgValue> &args;
};

/// Buffers for every tensor argument of `fn`, zeroed. The inputs `fills`
/// picks are filled in row-major order with `value(argNumber, tensor, index,
/// n)`, `n` counting the elements of one tensor from 0 (so a generator can
/// start afresh).
using FillsFn = llvm::function_ref<bool(unsigned, const TensorView &)>;
using ElementFn =
    llvm::function_ref<double(unsigned, const TensorView &, const int64_t *, int64_t)>;
std::vector<ArgValue> makeArgs(func::FuncOp fn, std::vector<std::vector<char>> &buffers,
                               FillsFn fills, ElementFn value) {
  std::vector<ArgValue> args;
  KernelInfo info = extractKernelInfo(fn);
  for (BlockArgument arg : fn.getArguments()) {
    ArgValue v;
    auto type = dyn_cast<MemRefType>(arg.getType());
    v.isTensor = static_cast<bool>(type);
    if (type) {
      const ArgInfo &a = info.args[arg.getArgNumber()];
      TensorView &t = v.tensor;
      t.dtype = a.dtype;
      t.shape.assign(type.getShape().begin(), type.getShape().end());
      buffers.emplace_back(static_cast<size_t>(t.numel()) * dtypeSize(t.dtype));
      t.data = buffers.back().data();
      std::vector<int64_t> idx(t.shape.size(), 0);
      bool fill = !a.isOutput && fills(arg.getArgNumber(), t);
      for (int64_t n = 0; fill && n < t.numel(); ++n) {
        int64_t rem = n;
        for (size_t d = t.shape.size(); d-- > 0;) {
          idx[d] = rem % t.shape[d];
          rem /= t.shape[d];
        }
        t.store(idx.data(), value(arg.getArgNumber(), t, idx.data(), n));
      }
    }
    args.push_back(v);
  }
  return args;
}

bool isIntTensor(const TensorView &t) { return t.dtype == DType::i32 || t.dtype == DType::i64; }

/// Uniform in [-1, 1): enough for block selections, and far cheaper than
/// normal variates over millions of q and k elements.
float signedUnit(std::mt19937 &rng) {
  return static_cast<float>(rng() >> 8) * 0x1p-23f - 1.0f;
}

/// Random contents for every input tensor: with `floats`, q and k
/// (arguments 0 and 1, which feed an attn.topk selection) uniform in
/// [-1, 1), other floats zero; int tensors get, at
/// random, sorted segment ids along the last dim (document masks), ints in
/// [0, 6), or ints up to the last dim's size (block lists and their counts).
std::vector<ArgValue> randomArgs(func::FuncOp fn, bool floats, std::mt19937 &rng,
                                 std::vector<std::vector<char>> &buffers) {
  int style = 0;
  int64_t segment = 0, left = 0;
  auto fills = [&](unsigned arg, const TensorView &t) {
    return isIntTensor(t) || (floats && arg < 2);
  };
  return makeArgs(fn, buffers, fills, [&](unsigned, const TensorView &t, const int64_t *idx,
                                          int64_t n) -> double {
    if (!isIntTensor(t))
      return signedUnit(rng);
    if (n == 0)
      style = static_cast<int>(rng() % 3);
    int64_t last = t.shape.back(), at = idx[t.shape.size() - 1];
    if (style == 0) {
      if (at == 0 || --left <= 0) {
        segment = at == 0 ? 0 : segment + 1;
        left = 1 + static_cast<int64_t>(rng() % 40);
      }
      return static_cast<double>(segment);
    }
    if (style == 1)
      return static_cast<double>(rng() % 6);
    return static_cast<double>(rng() % (last + 2)) - 1;
  });
}

/// Loads `path` with the query and key lengths fixed, bakes params in, sets
/// the tile shape and runs the plan. Returns the op, or null.
attn::AttentionOp planned(MLIRContext &ctx, const std::string &path,
                          Case &c, OwningOpRef<ModuleOp> &module,
                          std::string &why) {
  // First pass: find the names of the query and key length dims.
  auto load = [&](const std::map<std::string, int64_t> &dims) {
    llvm::SourceMgr sm;
    auto buffer = llvm::MemoryBuffer::getFile(path);
    if (!buffer)
      return OwningOpRef<ModuleOp>();
    sm.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
    ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
    return loadAttnModule(ctx, sm, dims);
  };
  OwningOpRef<ModuleOp> probe = load({});
  if (!probe) {
    why = "cannot load";
    return {};
  }
  func::FuncOp fn = findKernelFunc(*probe);
  KernelInfo info = extractKernelInfo(fn);
  // Static lengths stay; one symbol for both lengths means S = T.
  const ArgInfo &q = info.args[0], &k = info.args[1];
  if (q.dims[2] >= 0)
    c.s = q.dims[2];
  if (k.dims[2] >= 0)
    c.t = k.dims[2];
  else if (q.dims[2] < 0 && k.dimNames[2] == q.dimNames[2])
    c.t = c.s;
  if (c.exhaustive && c.s * c.t > 400000) {
    why = "too large to check exhaustively";
    return {};
  }
  std::map<std::string, int64_t> dims;
  if (q.dims[2] < 0)
    dims[q.dimNames[2]] = c.s;
  if (k.dims[2] < 0)
    dims[k.dimNames[2]] = c.t;
  if (c.sizeAll) {
    // Every other symbol: the batch 1 or 2, two query heads per KV head,
    // one KV head where the query heads are fixed, head dims 8, and sizes
    // of extra tensors large enough for any index a mask derives from i or
    // j. (Heads sized like positions made tensors of heads x positions^2,
    // gigabytes, for specs with symbolic heads.)
    auto roleSize = [&](const ArgInfo &a, size_t d) -> int64_t {
      if (&a == &q && d == 0)
        return 1 + c.s % 2;
      if (&a == &q && d == 1)
        return 2 * std::max<int64_t>(k.dims[1], 1);
      if (&a == &k && d == 1)
        return q.dims[1] >= 0 ? 1 : 2;
      if ((&a == &q || &a == &k) && d == 3)
        return 8;
      return std::max(c.s, c.t) + 1;
    };
    for (const ArgInfo &a : info.args)
      for (size_t d = 0; d < a.dims.size(); ++d)
        if (a.dims[d] < 0 && !dims.count(a.dimNames[d]))
          dims[a.dimNames[d]] = c.named.count(a.dimNames[d]) ? c.named.at(a.dimNames[d])
                                                             : roleSize(a, d);
  }
  module = load(dims);
  if (!module) {
    why = "cannot load with the lengths";
    return {};
  }
  fn = findKernelFunc(*module);
  attn::AttentionOp op = findAttention(fn);
  if (op.getQuery().getType().getDimSize(2) != c.s ||
      op.getKey().getType().getDimSize(2) != c.t) {
    why = "static lengths differ";
    return {};
  }
  // Bake scalar params in as constants.
  OpBuilder b(&ctx);
  b.setInsertionPointToStart(&fn.getBody().front());
  for (BlockArgument arg : fn.getArguments()) {
    if (isa<MemRefType>(arg.getType()))
      continue;
    auto name = fn.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "attn.name");
    auto it = c.params.find(name ? name.str() : "");
    if (it == c.params.end())
      continue;
    Value cst = arith::ConstantOp::create(
        b, fn.getLoc(), IntegerAttr::get(arg.getType(), it->second));
    arg.replaceAllUsesWith(cst);
  }
  op.setScheduleAttr(attn::ScheduleAttr::get(&ctx, c.bq, c.bk));
  PassManager pm(&ctx);
  pm.addNestedPass<func::FuncOp>(createAttnInferBlockSparsityPass());
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  if (failed(pm.run(*module))) {
    why = "the pass failed";
    return {};
  }
  return op;
}
/// The run-time tile bound of a mask that reads tensors, emitted once over
/// a box of placeholders and interpreted per tile.
struct RuntimeBound {
  std::unique_ptr<BoundInterpreter> interp;
  Block *block = nullptr;
  TileBox box;
  TileClass bound;

  /// 0 EMPTY, 1 PARTIAL, 2 FULL for one tile.
  bool classify(int64_t b, int64_t h, int64_t iLo, int64_t iHi, int64_t jLo, int64_t jHi,
                int8_t &kind, std::string &error) {
    interp->env.clear();
    interp->env[box.b] = b;
    interp->env[box.h] = h;
    interp->env[box.iLo] = iLo;
    interp->env[box.iHi] = iHi;
    interp->env[box.jLo] = jLo;
    interp->env[box.jHi] = jHi;
    if (!interp->run(*block)) {
      error = interp->error;
      return false;
    }
    bool mayKeep = interp->env.lookup(bound.mayKeep), mayDrop = interp->env.lookup(bound.mayDrop);
    kind = !mayKeep ? 0 : mayDrop ? 1 : 2;
    return true;
  }
};

/// Emits `op`'s run-time bound. A top-k selection is materialized first and
/// its table filled by the runtime's selectTopKBlocks from q and k in
/// `args` (the table is appended to `args`), as kernels see it.
bool emitRuntimeBound(MLIRContext &ctx, ModuleOp module, attn::AttentionOp op, const Case &c,
                      std::vector<ArgValue> &args, std::vector<std::vector<char>> &buffers,
                      RuntimeBound &rb, std::string &error) {
  func::FuncOp fn = op->getParentOfType<func::FuncOp>();
  bool selects = false;
  op.getMask().walk([&](attn::TopKOp) { selects = true; });
  if (selects) {
    PassManager pm(&ctx);
    pm.addNestedPass<func::FuncOp>(createAttnMaterializeTopKPass());
    unsigned tableArg = 0;
    if (mlir::failed(pm.run(module)) || !hiddenTopK(fn, tableArg)) {
      error = "attn-materialize-topk failed";
      return false;
    }
    TopKParams params = *hiddenTopK(fn, tableArg);
    const TensorView &q = args[0].tensor, &k = args[1].tensor;
    ArgValue table;
    table.tensor.dtype = DType::i32;
    table.tensor.shape = {q.shape[0], q.shape[1], topKQueryBlocks(params, c.s, c.t),
                          topKKeyBlocks(params, c.t)};
    buffers.emplace_back(static_cast<size_t>(table.tensor.numel()) * 4);
    table.tensor.data = buffers.back().data();
    selectTopKBlocks(q, k, params, static_cast<int32_t *>(table.tensor.data), 1);
    args.push_back(table);
  }
  OpBuilder ob(&ctx);
  ob.setInsertionPoint(op);
  auto exec = scf::ExecuteRegionOp::create(ob, op.getLoc(), TypeRange{});
  rb.block = &exec.getRegion().emplaceBlock();
  ImplicitLocOpBuilder b(op.getLoc(), &ctx);
  b.setInsertionPointToStart(rb.block);
  auto slot = [&]() { return arith::ConstantIndexOp::create(b, -1).getResult(); };
  rb.box = {slot(), slot(), slot(), slot(), slot(), slot()};
  rb.bound = classifyTile(b, op.getMask(), rb.box, [&](int) { return slot(); });
  scf::YieldOp::create(b);
  rb.interp = std::make_unique<BoundInterpreter>(fn, args);
  for (Value v : {rb.box.b, rb.box.h, rb.box.iLo, rb.box.iHi, rb.box.jLo, rb.box.jHi})
    rb.interp->seeded.insert(v);
  return true;
}
} // namespace

/// Inputs like the benchmarks': prefix lengths N / 4, documents of 50 to
/// 1950 tokens, 8 listed key blocks per query block, block masks keeping
/// about 1 in 8 blocks plus the diagonal, normal q and k.
std::vector<ArgValue> reportArgs(func::FuncOp fn, int64_t n, std::mt19937 &rng,
                                 std::vector<std::vector<char>> &buffers) {
  bool hasCounts = false; // block lists come with a rank-3 tensor of counts
  for (BlockArgument arg : fn.getArguments())
    if (auto t = dyn_cast<MemRefType>(arg.getType()))
      hasCounts |= t.getRank() == 3 && t.getElementType().isInteger(32);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int64_t doc = 0, left = 0;
  auto all = [](unsigned, const TensorView &) { return true; };
  return makeArgs(fn, buffers, all, [&](unsigned, const TensorView &t, const int64_t *idx,
                                        int64_t) -> double {
    if (!isIntTensor(t))
      return normal(rng);
    switch (t.shape.size()) {
    case 1:
      return static_cast<double>(n / 4);
    case 2:
      if (idx[1] == 0 || --left <= 0) {
        doc = idx[1] == 0 ? 0 : doc + 1;
        left = 50 + static_cast<int64_t>(rng() % 1901);
      }
      return static_cast<double>(doc);
    case 3:
      return 8;
    default:
      if (hasCounts)
        return static_cast<double>(rng() % t.shape[3]);
      return (rng() % 8 == 0 || idx[3] / 2 == idx[2]) ? 1 : 0;
    }
  });
}

/// --report=N [--set=NAME=VALUE...]: what the tile bounds skip for every
/// spec at S = T = N with 64 x 64 tiles (batch 0, head 0), params at their
/// defaults unless set.
int report(MLIRContext &ctx, int64_t n, const std::vector<std::string> &paths,
           const std::map<std::string, int64_t> &set) {
  std::mt19937 rng(7);
  std::printf("%-44s %7s %7s %7s %7s  %s\n", "spec", "tiles", "EMPTY", "PARTIAL", "FULL",
              "how");
  for (const std::string &path : paths) {
    Case c;
    c.s = c.t = n;
    c.bq = c.bk = 64;
    c.sizeAll = true;
    c.exhaustive = false;
    c.named = {{"B", 1}, {"QB", (n + 127) / 128}, {"KB", (n + 63) / 64}};
    // Params at their defaults.
    {
      llvm::SourceMgr sm;
      auto buffer = llvm::MemoryBuffer::getFile(path);
      if (!buffer)
        continue;
      sm.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
      ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
      OwningOpRef<ModuleOp> probe = loadAttnModule(ctx, sm, {});
      if (!probe)
        continue;
      for (const ArgInfo &a : extractKernelInfo(findKernelFunc(*probe)).args)
        if (!a.isTensor && a.defaultValue)
          c.params[a.name] = static_cast<int64_t>(*a.defaultValue);
      for (const auto &[name, value] : set)
        if (c.params.count(name))
          c.params[name] = value;
    }
    OwningOpRef<ModuleOp> module;
    std::string why;
    attn::AttentionOp op = planned(ctx, path, c, module, why);
    if (!op) {
      std::printf("%-44s skipped: %s\n", path.c_str(), why.c_str());
      continue;
    }
    int64_t nq = (c.s + c.bq - 1) / c.bq, nk = (c.t + c.bk - 1) / c.bk;
    int64_t counts[3] = {0, 0, 0};
    const char *how = "compile-time plan";
    bool selects = false;
    op.getMask().walk([&](attn::TopKOp) { selects = true; });
    auto plan = op->getAttrOfType<DenseElementsAttr>("attn.block_plan");
    if (op.getMask().empty()) {
      counts[2] = nq * nk;
      how = "no mask";
    } else if (plan && !selects) {
      for (int8_t kind : plan.getValues<int8_t>())
        ++counts[kind];
    } else {
      how = "run-time bound";
      func::FuncOp fn = op->getParentOfType<func::FuncOp>();
      std::vector<std::vector<char>> buffers;
      std::vector<ArgValue> args = reportArgs(fn, n, rng, buffers);
      RuntimeBound rb;
      std::string error;
      if (!emitRuntimeBound(ctx, *module, op, c, args, buffers, rb, error)) {
        std::printf("%-44s failed: %s\n", path.c_str(), error.c_str());
        return 1;
      }
      int64_t offset = op.getAlign() == attn::QueryAlign::end ? c.t - c.s : 0;
      for (int64_t qt = 0; qt < nq; ++qt)
        for (int64_t kt = 0; kt < nk; ++kt) {
          int8_t kind;
          if (!rb.classify(0, 0, qt * c.bq + offset, std::min(c.s, (qt + 1) * c.bq) - 1 + offset,
                           kt * c.bk, std::min(c.t, (kt + 1) * c.bk) - 1, kind, error)) {
            std::printf("%-44s failed: %s\n", path.c_str(), error.c_str());
            return 1;
          }
          ++counts[kind];
        }
    }
    double total = static_cast<double>(nq * nk);
    std::printf("%-44s %7lld %6.1f%% %6.1f%% %6.1f%%  %s\n", path.c_str(),
                static_cast<long long>(nq * nk), 100 * counts[0] / total, 100 * counts[1] / total,
                100 * counts[2] / total, how);
  }
  return 0;
}

int main(int argc, char **argv) {
  MLIRContext ctx(MLIRContext::Threading::DISABLED);
  prepareContext(ctx);
  // The run-time bounds are emitted as scf/memref/arith IR.
  ctx.loadDialect<scf::SCFDialect, memref::MemRefDialect, arith::ArithDialect,
                  math::MathDialect>();
  if (argc > 1 && llvm::StringRef(argv[1]).starts_with("--report=")) {
    int64_t n = std::atoll(argv[1] + 9);
    std::vector<std::string> paths;
    std::map<std::string, int64_t> set; // --set NAME=VALUE overrides a param's default
    for (int a = 2; a < argc; ++a) {
      llvm::StringRef arg = argv[a];
      if (arg.consume_front("--set=")) {
        auto [name, value] = arg.split('=');
        set[name.str()] = std::atoll(value.str().c_str());
      } else {
        paths.push_back(arg.str());
      }
    }
    return report(ctx, n > 0 ? n : 4096, paths, set);
  }
  std::mt19937 rng(2026);
  int passed = 0, failed = 0;
  for (int a = 1; a < argc; ++a) {
    std::string path = argv[a];
    int planned_ = 0, runtimeChecked = 0, checkedTiles = 0, emptyTiles = 0, fullTiles = 0;
    bool specFailed = false;
    // Run-time bounds depend on the data too: more trials for them.
    for (int trial = 0; trial < (runtimeChecked ? 200 : 40) && !specFailed; ++trial) {
      Case c;
      c.s = 1 + rng() % 200;
      c.t = c.s + rng() % 120;
      c.bq = 1 + rng() % 70;
      c.bk = 1 + rng() % 70;
      if (trial % 3 == 0) { // tiles that nest in the examples' 128 x 64 blocks
        c.bq = 8 << (rng() % 5);
        c.bk = 4 << (rng() % 5);
      }
      c.params = {{"window", 1 + rng() % 150}, {"sinks", rng() % 8},
                  {"recent", 1 + rng() % 100}, {"chunk", 1 + rng() % 64},
                  {"prompt", 1 + rng() % 150}, {"carry", rng() % 60}};
      OwningOpRef<ModuleOp> module;
      std::string why;
      attn::AttentionOp op = planned(ctx, path, c, module, why);
      if (!op)
        continue;
      auto plan = op->getAttrOfType<DenseElementsAttr>("attn.block_plan");
      func::FuncOp fn = op->getParentOfType<func::FuncOp>();
      std::vector<ArgValue> args;
      std::vector<std::vector<char>> buffers;
      // The run-time bound: emitted once over a box of placeholders, then
      // interpreted per tile on random tensors.
      RuntimeBound rb;
      std::unique_ptr<MaskOracle> oracle;
      bool selects = false;
      op.getMask().walk([&](attn::TopKOp) { selects = true; });
      if (!plan || selects) { // a selection reads q and k: check it on data
        if (op.getMask().empty() || c.sizeAll)
          continue;
        // Reload with every symbol sized, then emit the bound.
        c.sizeAll = true;
        op = planned(ctx, path, c, module, why);
        if (!op)
          continue;
        fn = op->getParentOfType<func::FuncOp>();
        args = randomArgs(fn, selects, rng, buffers);
        // The oracle interprets the mask as written (attn.topk selects in
        // f64); the bound sees what kernels see: the table the runtime
        // fills (attn-materialize-topk, selectTopKBlocks), so the two
        // selections are compared too.
        std::string oracleError;
        oracle = MaskOracle::create(op, args, oracleError);
        if (!oracle) {
          std::printf("FAIL %s: %s\n", path.c_str(), oracleError.c_str());
          specFailed = true;
          break;
        }
        std::string boundError;
        if (!emitRuntimeBound(ctx, *module, op, c, args, buffers, rb, boundError)) {
          std::printf("FAIL %s: %s\n", path.c_str(), boundError.c_str());
          specFailed = true;
          break;
        }
        ++runtimeChecked;
      } else {
        ++planned_;
        // Reference arguments: tensors are never read by these masks.
        for (BlockArgument arg : fn.getArguments()) {
          ArgValue v;
          v.isTensor = isa<MemRefType>(arg.getType());
          args.push_back(v);
        }
      }
      int64_t bIdx = rb.interp ? static_cast<int64_t>(rng() % op.getQuery().getType().getDimSize(0)) : 0;
      int64_t hIdx = rb.interp ? static_cast<int64_t>(rng() % op.getQuery().getType().getDimSize(1)) : 0;
      std::string error;
      if (!oracle)
        oracle = MaskOracle::create(op, args, error);
      if (!oracle) {
        std::printf("FAIL %s: %s\n", path.c_str(), error.c_str());
        specFailed = true;
        break;
      }
      int64_t offset = op.getAlign() == attn::QueryAlign::end ? c.t - c.s : 0;
      int64_t nq = (c.s + c.bq - 1) / c.bq, nk = (c.t + c.bk - 1) / c.bk;
      llvm::SmallVector<int8_t> kinds;
      if (plan)
        kinds = llvm::to_vector(plan.getValues<int8_t>());
      for (int64_t qt = 0; qt < nq && !specFailed; ++qt)
        for (int64_t kt = 0; kt < nk && !specFailed; ++kt) {
          int8_t kind;
          if (rb.interp) {
            std::string tileError;
            if (!rb.classify(bIdx, hIdx, qt * c.bq + offset,
                             std::min(c.s, (qt + 1) * c.bq) - 1 + offset, kt * c.bk,
                             std::min(c.t, (kt + 1) * c.bk) - 1, kind, tileError)) {
              std::printf("FAIL %s: %s\n", path.c_str(), tileError.c_str());
              specFailed = true;
              break;
            }
          } else {
            kind = kinds[qt * nk + kt];
          }
          ++checkedTiles;
          emptyTiles += kind == 0;
          fullTiles += kind == 2;
          for (int64_t r = qt * c.bq; r < std::min(c.s, (qt + 1) * c.bq) && !specFailed; ++r)
            for (int64_t j = kt * c.bk; j < std::min(c.t, (kt + 1) * c.bk); ++j) {
              bool keep;
              if (!oracle->keep(bIdx, hIdx, r + offset, j, keep, error)) {
                std::printf("FAIL %s: %s\n", path.c_str(), error.c_str());
                specFailed = true;
                break;
              }
              if ((kind == 0 && keep) || (kind == 2 && !keep)) {
                std::printf("FAIL %s: S=%lld T=%lld tiles %lldx%lld: tile (%lld, %lld) is %s "
                            "but (i=%lld, j=%lld) is %s\n",
                            path.c_str(), (long long)c.s, (long long)c.t, (long long)c.bq,
                            (long long)c.bk, (long long)qt, (long long)kt,
                            kind == 0 ? "EMPTY" : "FULL", (long long)(r + offset),
                            (long long)j, keep ? "visible" : "masked");
                specFailed = true;
                break;
              }
            }
        }
    }
    std::printf("%s %-40s %2d plans, %2d run-time bounds, %6d tiles checked exhaustively "
                "(%d EMPTY, %d FULL)\n",
                specFailed ? "FAIL" : "PASS", path.c_str(), planned_, runtimeChecked,
                checkedTiles, emptyTiles, fullTiles);
    (specFailed ? failed : passed) += 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

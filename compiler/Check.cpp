//===- Check.cpp - Run a kernel on random inputs against the reference -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "compiler/Check.h"
#include "compiler/Compile.h"
#include "compiler/Reference.h"
#include "attnc/runtime/Cuda.h"
#include "dialects/attn/AttnOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <limits>
#include <random>

using namespace attnc;

namespace {
double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

/// Device buffers mirroring host tensors, freed on scope exit.
struct DeviceCopies {
  std::vector<void *> buffers;
  ~DeviceCopies() {
    for (void *p : buffers)
      cuda::free(p);
  }
  bool upload(const std::vector<TensorView> &host, std::vector<TensorView> &dev,
              std::string &error) {
    for (size_t t = 0; t < host.size(); ++t) {
      size_t bytes = storageBytes(host[t].dtype, host[t].numel());
      void *p = nullptr;
      if (!cuda::malloc(&p, bytes, error))
        return false;
      buffers.push_back(p);
      if (!cuda::copyToDevice(p, host[t].data, bytes, error))
        return false;
      dev[t].data = p;
    }
    return true;
  }
  bool download(const KernelInfo &info, std::vector<TensorView> &host,
                const std::vector<TensorView> &dev, std::string &error) {
    size_t t = 0;
    for (const ArgInfo &a : info.args) {
      if (!a.isTensor)
        continue;
      if (a.isOutput && !cuda::copyToHost(host[t].data, dev[t].data,
                                          static_cast<size_t>(host[t].numel()) *
                                              dtypeSize(host[t].dtype),
                                          error))
        return false;
      ++t;
    }
    return true;
  }
};

/// CUDA kernels whose tile classes come from a class kernel: a launch that
/// takes them from a TilePlan must write the very same bytes. `host` holds
/// the outputs of the launch without a plan; the outputs on the device are
/// poisoned with NaN first.
bool checkTilePlan(const Kernel &kernel, const std::vector<TensorView> &host,
                   const std::vector<TensorView> &dev, const CheckOptions &check,
                   CheckReport &report) {
  Result<TilePlan> plan = kernel.planTiles(dev, check.params);
  if (!plan) {
    report.error = "tile plan: " + plan.error();
    return false;
  }
  if (plan->empty())
    return true;
  const KernelInfo &info = kernel.info();
  std::vector<size_t> outputs;
  size_t t = 0;
  for (const ArgInfo &a : info.args) {
    if (!a.isTensor)
      continue;
    if (a.isOutput) {
      outputs.push_back(t);
      size_t bytes = storageBytes(dev[t].dtype, dev[t].numel());
      if (!cuda::memset8(dev[t].data, 0xff, bytes, report.error))
        return false;
    }
    ++t;
  }
  if (Status st = kernel.launch(dev, check.params, nullptr, *plan); !st) {
    report.error = "launch with a tile plan: " + st.error();
    return false;
  }
  if (!cuda::synchronize(report.error))
    return false;
  for (size_t o : outputs) {
    size_t bytes = storageBytes(dev[o].dtype, dev[o].numel());
    std::vector<char> planned(bytes);
    if (!cuda::copyToHost(planned.data(), dev[o].data, bytes, report.error))
      return false;
    if (std::memcmp(planned.data(), host[o].data, bytes) != 0) {
      report.error = "a launch with a tile plan wrote other bytes than one without";
      return false;
    }
  }
  report.planChecked = true;
  return true;
}

/// Paged inputs: each sequence's pages a permutation of the pool, lengths
/// from full to empty, codes over their whole range and scales (bf16 values,
/// as the pool stores) that give values of about unit size. False for
/// tensors that are none of these.
bool pagedInput(const PagedInfo &paged, int tensor, const TensorView &v, const TensorView *k,
                const std::vector<int64_t> &idx, std::mt19937 &rng, const CheckOptions &c,
                double &value) {
  if (tensor == paged.table) {
    // Pages are handed out in a shuffled order fixed by the seed.
    int64_t n = idx[0] * v.shape[1] + idx[1];
    value = static_cast<double>((n * 7919 + c.seed) % k->shape[0]);
    return true;
  }
  if (tensor == paged.lens) {
    int64_t full = c.kvLen, b = idx[0];
    value = static_cast<double>(b == 0 ? full : b == v.shape[0] - 1 && b >= 2 ? 0 : rng() % (full + 1));
    return true;
  }
  if (tensor == 1 || tensor == 2) {
    if (v.dtype == DType::q8)
      value = static_cast<double>(static_cast<int>(rng() % 255) - 127);
    else if (v.dtype == DType::q4)
      value = static_cast<double>(static_cast<int>(rng() % 16) - 8);
    else
      return false;
    return true;
  }
  if (tensor == paged.keyScale || tensor == paged.valueScale) {
    // Values bf16 holds exactly, as BlockPool writes them (KvCache.cpp): 8
    // significant bits, from 1/8 to about 3/8 (q4) or 1/128 to 3/128 (q8).
    value = (128 + rng() % 256) / (k->dtype == DType::q4 ? 1024.0 : 16384.0);
    return true;
  }
  return false;
}

/// Sizes of every symbolic dim: given ones first, then by role in q/k/v.
std::map<std::string, int64_t> resolveSizes(const KernelInfo &info,
                                            const CheckOptions &c) {
  std::map<std::string, int64_t> sizes = c.sizes;
  int64_t roles[3][4] = {{c.batch, c.heads, c.qLen, c.headDim},
                         {c.batch, c.heads, c.kvLen, c.headDim},
                         {c.batch, c.heads, c.kvLen, c.headDim}};
  std::vector<const ArgInfo *> tensors;
  for (const ArgInfo &a : info.args)
    if (a.isTensor)
      tensors.push_back(&a);
  if (info.paged) {
    // Pages of 16 tokens unless given, rows long enough for kvLen, and a
    // few spare pages so that the table is not the identity.
    const ArgInfo &k = *tensors[1], &table = *tensors[info.paged->table];
    int64_t pageSize = k.dims[2] >= 0 ? k.dims[2] : sizes.count(k.dimNames[2]) ? sizes[k.dimNames[2]] : 16;
    int64_t width = table.dims[1] >= 0 ? table.dims[1]
                    : sizes.count(table.dimNames[1]) ? sizes[table.dimNames[1]]
                                                     : (c.kvLen + pageSize - 1) / pageSize;
    sizes.emplace(table.dimNames[1], width);
    int64_t batch = tensors[0]->dims[0] >= 0 ? tensors[0]->dims[0] : sizes.count(tensors[0]->dimNames[0]) ? sizes[tensors[0]->dimNames[0]] : c.batch;
    for (int r : {1, 2}) {
      roles[r][0] = batch * width + 3;
      roles[r][2] = pageSize;
    }
  }
  int t = 0;
  for (const ArgInfo &a : info.args) {
    if (!a.isTensor)
      continue;
    for (size_t d = 0; d < a.dims.size(); ++d)
      if (a.dims[d] < 0 && !sizes.count(a.dimNames[d]))
        sizes[a.dimNames[d]] = t < 3 && d < 4 ? roles[t][d] : 8;
    ++t;
  }
  return sizes;
}
} // namespace

/// The CUDA kernels are specialized on head dims: sizes for the symbolic
/// head dims of q and v (by the same rules as the run), to compile with.
static std::map<std::string, int64_t> headDimsToPin(const std::string &path,
                                                    const CompileOptions &options,
                                                    const CheckOptions &check) {
  std::map<std::string, int64_t> pinned;
  mlir::MLIRContext ctx(mlir::MLIRContext::Threading::DISABLED);
  prepareContext(ctx);
  llvm::SourceMgr sm;
  auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(path, /*IsText=*/false);
  if (!buffer)
    return pinned;
  sm.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
  mlir::ScopedDiagnosticHandler quiet(&ctx, [](mlir::Diagnostic &) { return mlir::success(); });
  auto module = loadAttnModule(ctx, sm, options.dims);
  mlir::func::FuncOp fn = module ? findKernelFunc(*module) : nullptr;
  if (!fn)
    return pinned; // the compile reports the error
  KernelInfo info = extractKernelInfo(fn);
  std::map<std::string, int64_t> sizes = resolveSizes(info, check);
  int t = 0;
  for (const ArgInfo &a : info.args) {
    if (!a.isTensor)
      continue;
    if ((t == 0 || t == 2) && a.dims.size() == 4 && a.dims[3] < 0 &&
        a.dimNames[3].rfind('?', 0) != 0)
      pinned[a.dimNames[3]] = sizes[a.dimNames[3]];
    ++t;
  }
  return pinned;
}

CheckReport attnc::checkSpec(const std::string &path,
                             const CompileOptions &options,
                             const CheckOptions &check) {
  CheckReport report;
  CompileOptions compileOptions = options;
  if (options.target == Target::cuda)
    for (const auto &[name, size] : headDimsToPin(path, options, check))
      compileOptions.dims.emplace(name, size);
  Result<Kernel> kernel = compileFile(path, compileOptions);
  if (!kernel) {
    report.error = kernel.error();
    return report;
  }
  const KernelInfo &info = kernel->info();
  report.compileMs = info.compileMs;
  report.fromCache = info.fromCache;
  if (info.quickTier) {
    // Checked and timed: the final kernel. The quick tiers are checked with
    // ATTNC_CUDA_WS=0 ATTNC_CUDA_CLASS_SPLIT=0 (CUDA: the same source, but
    // for the ptxas level) and JitApi's tier test (CPU).
    auto start = std::chrono::steady_clock::now();
    if (Status st = kernel->waitForFinalTier(); !st) {
      report.error = st.error();
      return report;
    }
    report.quickMs = info.compileMs;
    report.compileMs += std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start)
                            .count();
  }
  std::map<std::string, int64_t> sizes = resolveSizes(info, check);

  // A tensor argument's view at the run's sizes, without data.
  auto viewOf = [&](const ArgInfo &a) {
    TensorView v;
    v.dtype = a.dtype;
    for (size_t d = 0; d < a.dims.size(); ++d)
      v.shape.push_back(a.dims[d] >= 0 ? a.dims[d] : sizes[a.dimNames[d]]);
    return v;
  };
  // The buffers' bytes before any is allocated: -D sizes can ask for more
  // than memory (or more than size_t counts), which would abort or hang.
  constexpr size_t kMaxRunBytes = size_t(16) << 30;
  size_t total = 0;
  bool overflow = false;
  for (const ArgInfo &a : info.args)
    if (a.isTensor) {
      TensorView v = viewOf(a);
      size_t bytes = storageBytes(v.dtype, v.numel());
      overflow |=
          bytes == SIZE_MAX || __builtin_add_overflow(total, bytes, &total);
    }
  if (overflow || total > kMaxRunBytes) {
    report.error =
        "attnc: error: the run's tensors would take " +
        (overflow ? std::string("more bytes than fit in 64 bits")
                  : std::to_string(total >> 20) + " MiB") +
        "; a check run takes at most 16 GiB: pick smaller sizes with -D";
    return report;
  }

  // Buffers: random normal floats, nondecreasing small ids for int tensors
  // (segment ids, as document masks use), NaN in outputs to catch rows the
  // kernel never writes.
  std::mt19937 rng(check.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<char>> buffers;
  std::vector<TensorView> views;
  std::vector<ArgValue> refArgs;
  for (const ArgInfo &a : info.args) {
    ArgValue arg;
    if (!a.isTensor) {
      arg.isTensor = false;
      auto it = check.params.find(a.name);
      arg.scalar = it != check.params.end() ? it->second : a.defaultValue.value_or(0);
      refArgs.push_back(arg);
      continue;
    }
    TensorView v = viewOf(a);
    buffers.emplace_back(storageBytes(v.dtype, v.numel()));
    v.data = buffers.back().data();
    int tensorIndex = static_cast<int>(views.size());
    std::vector<int64_t> idx(v.shape.size(), 0);
    int64_t segment = 0, left = 0;
    for (int64_t n = 0; n < v.numel(); ++n) {
      int64_t rem = n;
      for (size_t d = v.shape.size(); d-- > 0;) {
        idx[d] = rem % v.shape[d];
        rem /= v.shape[d];
      }
      double value;
      if (a.isOutput) {
        value = std::nan("");
      } else if (info.paged && pagedInput(*info.paged, tensorIndex, v,
                                           tensorIndex > 1 ? &views[1] : nullptr, idx, rng,
                                           check, value)) {
        // a valid block table, lengths, codes or scales
      } else if (a.dtype == DType::i32 || a.dtype == DType::i64) {
        if (idx.back() == 0) {
          segment = 0;
          left = 1 + static_cast<int64_t>(rng() % 24);
        } else if (--left == 0) {
          ++segment;
          left = 1 + static_cast<int64_t>(rng() % 24);
        }
        value = static_cast<double>(segment);
      } else {
        value = normal(rng);
      }
      v.store(idx.data(), value);
    }
    views.push_back(v);
    arg.tensor = v;
    refArgs.push_back(arg);
  }
  if (info.paged) {
    // Lengths fit the table's rows even where the spec fixes M or PS small.
    const TensorView &lens = views[info.paged->lens];
    int64_t capacity = views[info.paged->table].shape[1] * views[1].shape[2];
    for (int64_t b = 0; b < lens.shape[0]; ++b)
      if (lens.load(&b) > static_cast<double>(capacity))
        lens.store(&b, static_cast<double>(capacity));
  }
  {
    const TensorView &q = views[0], &k = views[1], &vv = views[2];
    std::string keys = " T=" + std::to_string(k.shape[2]);
    if (info.paged) // pages, page size and block table width
      keys = " P=" + std::to_string(k.shape[0]) + " PS=" + std::to_string(k.shape[2]) +
             " M=" + std::to_string(views[info.paged->table].shape[1]);
    report.shape = "B=" + std::to_string(q.shape[0]) + " Hq=" + std::to_string(q.shape[1]) +
                   " Hkv=" + std::to_string(k.shape[1]) + " S=" + std::to_string(q.shape[2]) +
                   keys + " D=" + std::to_string(q.shape[3]) +
                   " Dv=" + std::to_string(vv.shape[3]) + " dtype=" + dtypeName(q.dtype);
  }
  if (std::find(check.skipShapes.begin(), check.skipShapes.end(), report.shape) !=
      check.skipShapes.end()) {
    report.ok = report.skipped = true;
    return report;
  }

  // The reference runs first, on the spec as the frontend built it, before
  // any pass: a shape it rejects never reaches the kernel.
  ReferenceResult ref;
  mlir::MLIRContext ctx(mlir::MLIRContext::Threading::DISABLED);
  if (!check.skipReference) {
    prepareContext(ctx);
    llvm::SourceMgr sm;
    auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(path, /*IsText=*/false);
    if (!buffer) {
      report.error = "cannot read " + path;
      return report;
    }
    sm.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
    std::string diagText;
    llvm::raw_string_ostream diagOS(diagText);
    mlir::SourceMgrDiagnosticHandler handler(sm, &ctx, diagOS);
    auto module = loadAttnModule(ctx, sm, compileOptions.dims);
    if (!module || (options.dtype && mlir::failed(overrideDType(*module, *options.dtype)))) {
      report.error = "reference: " + diagText;
      return report;
    }
    mlir::func::FuncOp fn = findKernelFunc(*module);
    auto refStart = std::chrono::steady_clock::now();
    if (!fn || !runReference(findAttention(fn), refArgs, ref, report.error)) {
      // A shape the spec does not define (its regions read outside their
      // tensors): nothing to compare against.
      if (check.skipWhenReferenceRejects && fn)
        report.ok = report.skipped = true;
      return report;
    }
    report.referenceMs = msSince(refStart);
  }

  // A CUDA kernel runs on device copies (outputs copied too: NaN poison),
  // and its outputs come back into `views` for the comparison.
  DeviceCopies device;
  std::vector<TensorView> runViews = views;
  if (kernel->target() == Target::cuda &&
      !device.upload(views, runViews, report.error))
    return report;
  if (Status st = kernel->run(runViews, check.params, check.threads); !st) {
    report.error = st.error();
    return report;
  }
  if (kernel->target() == Target::cuda && !device.download(info, views, runViews, report.error))
    return report;
  if (kernel->target() == Target::cuda && !checkTilePlan(*kernel, views, runViews, check, report))
    return report;
  report.kernelMs = 1e30;
  for (int r = 0; r < check.timingRuns; ++r) {
    auto start = std::chrono::steady_clock::now();
    (void)kernel->run(runViews, check.params, check.threads);
    report.kernelMs = std::min(report.kernelMs, msSince(start));
  }
  if (check.timingRuns == 0)
    report.kernelMs = 0;
  if (check.skipReference) {
    report.ok = true;
    return report;
  }


  DType dt = views[0].dtype;
  bool lowPrecision = dt != DType::f32;
  for (const ArgInfo &a : info.args)
    if (a.isOutput && a.dtype != DType::f32)
      lowPrecision = true;
  // f32: 1e-5 relative, plus what rounding a score of magnitude |s| in f32
  // costs every weight (a few ulps of |s|): ALiBi and relative biases reach
  // |s| ~ 100, where that term dominates.
  report.tolerance = lowPrecision ? 2e-2 : 1e-5 + 4 * 0x1p-24 * ref.maxAbsScore;
  // Storing a bf16 or f16 output rounds it by up to half an ulp, at most
  // |o| * 2^-8 (bf16) or |o| * 2^-11 (f16); from |o| = 8 on, bf16's alone
  // exceeds 2e-2. That much is allowed on top, per element.
  // A sigmoid kernel's sum is not normalised: rounding each of n weights
  // (and dequantized values) to bf16 or f16, as the tensor-core kernels do,
  // is a random walk of n steps of up to half an ulp of p_j v_jd each. Six
  // half-ulps times its scale, sqrt(sum (p_j v_jd)^2), is about seven of
  // its standard deviations, with both roundings; beyond that, 2e-2 applies.
  const double weightUlp = dt == DType::bf16 ? 0x1p-9 : dt == DType::f16 ? 0x1p-12 : 0.0;
  bool weightBudget = lowPrecision && weightUlp > 0 && !ref.weightRounding.empty();
  double worstExcess = 0, worstRelExcess = 0;
  auto compare = [&](const TensorView &got, const std::vector<double> &want,
                     bool isLse) {
    double halfUlpPerUnit = got.dtype == DType::bf16 ? 0x1p-8 : got.dtype == DType::f16 ? 0x1p-11 : 0;
    std::vector<int64_t> idx(got.shape.size(), 0);
    for (int64_t n = 0; n < got.numel(); ++n) {
      int64_t rem = n;
      for (size_t d = got.shape.size(); d-- > 0;) {
        idx[d] = rem % got.shape[d];
        rem /= got.shape[d];
      }
      // A near tie in a top-k block selection: either choice is right.
      int64_t row = isLse ? n : n / got.shape.back();
      if (!ref.rowAmbiguous.empty() && ref.rowAmbiguous[row]) {
        if (!isLse && idx.back() == 0)
          ++report.ambiguousRows;
        continue;
      }
      double g = got.load(idx.data()), w = want[n];
      if (isLse && std::isinf(w) && w < 0) {
        if (!(std::isinf(g) && g < 0))
          report.maxAbsError = report.maxRelError =
              std::numeric_limits<double>::infinity();
        continue;
      }
      if (!std::isfinite(g)) {
        ++report.nonFinite;
        continue;
      }
      double err = std::fabs(g - w);
      report.maxAbsError = std::max(report.maxAbsError, err);
      double weightRounding = !isLse && weightBudget ? 6 * weightUlp * ref.weightRounding[n] : 0.0;
      worstExcess = std::max(worstExcess, err - halfUlpPerUnit * std::fabs(w) - weightRounding);
      // A sigmoid's unnormalised sum over n keys rounds in f32 by up to
      // sumRounding: beyond it the usual relative bound applies.
      double sumBudget = !isLse && !ref.sumRounding.empty() ? ref.sumRounding[n] : 0.0;
      report.maxRelError = std::max(report.maxRelError, err / (1.0 + std::fabs(w)));
      worstRelExcess = std::max(worstRelExcess, (err - sumBudget) / (1.0 + std::fabs(w)));
    }
  };
  size_t t = 0;
  for (const ArgInfo &a : info.args) {
    if (!a.isTensor)
      continue;
    const TensorView &view = views[t++];
    if (!a.isOutput)
      continue;
    bool isLse = view.shape.size() == 3;
    compare(view, isLse ? ref.lse : ref.out, isLse);
  }
  double err = lowPrecision ? worstExcess : worstRelExcess;
  report.beyondSumRounding = !lowPrecision && !ref.sumRounding.empty();
  report.beyondWeightRounding = weightBudget;
  const TensorView &q = views[0];
  double flopsPerPair = 2.0 * q.shape[3] + 2.0 * views[2].shape[3];
  if (report.kernelMs > 0)
    report.gflops = flopsPerPair * ref.visiblePairs / (report.kernelMs * 1e6);
  if (report.nonFinite)
    report.error = std::to_string(report.nonFinite) + " outputs are NaN or inf";
  else if (!(err <= report.tolerance))
    report.error = "max error " + std::to_string(err) + " exceeds the tolerance " +
                   std::to_string(report.tolerance) +
                   (weightBudget ? " (beyond the output type's and the weights' rounding)"
                    : lowPrecision             ? " (beyond the output type's rounding)"
                    : report.beyondSumRounding ? " (beyond the sum's rounding)"
                                               : "");
  report.ok = report.error.empty();
  return report;
}

// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// A host program that JIT-compiles a spec through the installed attnc
// package and runs it on its own buffers:
//
//   cmake -S examples/host -B build-host -Dattnc_DIR=<prefix>/lib/cmake/attnc
//   cmake --build build-host && build-host/jit_example examples/sliding_window.attn
#include <attnc/attnc.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SPEC.attn\n", argv[0]);
    return 2;
  }
  attnc::CompileOptions options;
  options.dtype = attnc::DType::f32; // whatever the spec says, run in f32
  attnc::Result<attnc::Kernel> kernel = attnc::compileFile(argv[1], options);
  if (!kernel) {
    std::fputs(kernel.error().c_str(), stderr);
    return 1;
  }
  const attnc::KernelInfo &info = kernel->info();
  std::printf("kernel %s: %zu arguments, %s in %.1f ms\n", info.name.c_str(),
              info.args.size(), info.fromCache ? "loaded from the cache" : "compiled",
              info.compileMs);

  // One buffer per tensor argument; symbolic dims get 1 (batch-like) or 256.
  std::vector<std::vector<float>> buffers;
  std::vector<attnc::TensorView> views;
  for (const attnc::ArgInfo &arg : info.args) {
    if (!arg.isTensor)
      continue;
    attnc::TensorView view;
    view.dtype = attnc::DType::f32;
    for (size_t d = 0; d < arg.dims.size(); ++d)
      view.shape.push_back(arg.dims[d] >= 0 ? arg.dims[d] : (d == 0 ? 1 : 256));
    buffers.emplace_back(static_cast<size_t>(view.numel()));
    for (size_t i = 0; i < buffers.back().size(); ++i)
      buffers.back()[i] = std::sin(0.37f * static_cast<float>(i));
    view.data = buffers.back().data();
    views.push_back(view);
  }
  attnc::Status status = kernel->run(views, {{"window", 64}});
  if (!status) {
    std::fprintf(stderr, "run failed: %s\n", status.error().c_str());
    return 1;
  }
  double sum = 0;
  bool finite = true;
  size_t t = 0; // tensors are the tensor arguments, in order
  for (const attnc::ArgInfo &arg : info.args) {
    if (!arg.isTensor)
      continue;
    if (arg.isOutput)
      for (float x : buffers[t]) {
        finite &= std::isfinite(x);
        sum += std::fabs(x);
      }
    ++t;
  }
  std::printf("outputs %s, sum of |o| %.4f\n", finite ? "finite" : "NOT FINITE", sum);
  return finite && sum > 0 ? 0 : 1;
}

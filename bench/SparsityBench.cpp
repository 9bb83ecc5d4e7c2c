//===- SparsityBench.cpp - What the tile bounds save, per spec -------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Times each spec's CPU kernel twice on the same random inputs: as compiled
// (EMPTY tiles skipped, FULL tiles without mask code) and with
// CompileOptions::skipTiles off (the mask evaluated on every tile), and
// prints both and the speedup. Inputs come from the checker (compiler/
// Check.h): normal floats, and int tensors as short sorted segment ids, so
// specs that read int tensors are better measured with attnc-cpu-bench's
// document and block_sparse variants, whose inputs are realistic.
//
//   attnc-sparsity-bench [--len 4096] [--threads N] [--reps 3]
//                        [--param NAME=VALUE]... SPEC...
//
//===----------------------------------------------------------------------===//

#include "compiler/Check.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace attnc;

int main(int argc, char **argv) {
  int64_t len = 4096;
  unsigned threads = 0;
  int reps = 3;
  std::map<std::string, double> params;
  std::vector<std::string> specs;
  for (int a = 1; a < argc; ++a) {
    std::string arg = argv[a];
    auto value = [&]() -> std::string {
      if (a + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(1);
      }
      return argv[++a];
    };
    if (arg == "--len")
      len = std::atoll(value().c_str());
    else if (arg == "--threads")
      threads = static_cast<unsigned>(std::atoi(value().c_str()));
    else if (arg == "--reps")
      reps = std::atoi(value().c_str());
    else if (arg == "--param") {
      std::string kv = value();
      size_t eq = kv.find('=');
      if (eq == std::string::npos) {
        std::fprintf(stderr, "--param expects NAME=VALUE\n");
        return 1;
      }
      params[kv.substr(0, eq)] = std::atof(kv.c_str() + eq + 1);
    } else if (arg.rfind("--", 0) == 0) {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return 1;
    } else
      specs.push_back(arg);
  }
  std::printf("%-40s %10s %10s %8s   (S = T = %lld, B = 1, f32, %u threads)\n", "spec",
              "skip ms", "no-skip ms", "speedup", static_cast<long long>(len), threads);
  for (const std::string &spec : specs) {
    double ms[2] = {0, 0};
    std::string error;
    for (int skip = 0; skip < 2 && error.empty(); ++skip) {
      CompileOptions options;
      options.dtype = DType::f32;
      options.skipTiles = skip == 0;
      CheckOptions check;
      check.batch = 1;
      check.qLen = check.kvLen = len;
      check.headDim = 128;
      check.threads = threads;
      check.timingRuns = reps;
      check.skipReference = true;
      check.sizes = {{"QB", (len + 127) / 128}, {"KB", (len + 63) / 64}};
      // Only the params this spec declares (--param applies to all).
      Result<Kernel> probe = compileFile(spec, options);
      if (!probe) {
        error = probe.error();
        break;
      }
      for (const ArgInfo &a : probe->info().args)
        if (!a.isTensor && params.count(a.name))
          check.params[a.name] = params.at(a.name);
      CheckReport r = checkSpec(spec, options, check);
      if (!r.ok)
        error = r.error;
      ms[skip] = r.kernelMs;
    }
    if (!error.empty()) {
      std::printf("%-40s error: %s\n", spec.c_str(), error.c_str());
      continue;
    }
    std::printf("%-40s %10.1f %10.1f %7.2fx\n", spec.c_str(), ms[0], ms[1], ms[1] / ms[0]);
  }
  return 0;
}

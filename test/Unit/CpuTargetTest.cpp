//===- CpuTargetTest.cpp - Code generation choices per CPU ------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The instruction-set choices of the CPU lowering (compiler/Compile.h) for a
// CPU named as LLVM names it: the same function serves the JIT (this host)
// and AOT objects (--cpu), so a named CPU must give the same choices on any
// machine that compiles for it.
//
//===----------------------------------------------------------------------===//

#include "compiler/Compile.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

using namespace attnc;

namespace {
/// Sets an environment variable for one scope, then restores it.
struct ScopedEnv {
  std::string name, old;
  bool had;
  ScopedEnv(const char *n, const char *value) : name(n), had(std::getenv(n) != nullptr) {
    if (had)
      old = std::getenv(n);
    setenv(n, value, 1);
  }
  ~ScopedEnv() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};
} // namespace

TEST(CpuTarget, NamedCpusGiveTheirInstructionSets) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "x86 CPU names";
#endif
  // Whatever overrides the caller's environment holds, neutral here.
  ScopedEnv fastExp("ATTNC_CPU_FAST_EXP", "1"), amx("ATTNC_CPU_AMX", "1"),
      int8("ATTNC_CPU_INT8_DOT", ""), width("ATTNC_CPU_VECTOR_WIDTH", "");
  std::string error;
  std::optional<CpuFeatures> spr = namedCpuFeatures("sapphirerapids", error);
  ASSERT_TRUE(spr) << error;
  EXPECT_TRUE(spr->avx512f && spr->avx512dq && spr->avx512bw && spr->avx512bf16 &&
              spr->avx512vnni && spr->amxBf16);
  EXPECT_EQ(vectorWidthFor(*spr), 16);
  CpuCodegen aot = cpuCodegenFor(*spr, 16, /*bf16Products=*/false, /*amxTiles=*/false);
  EXPECT_TRUE(aot.fastExp);
  EXPECT_TRUE(aot.bf16Dot);
  EXPECT_EQ(aot.int8Dot, "q4");
  EXPECT_FALSE(aot.amx);
  // bf16 prefill may take the AMX blocking: tiles where the process may run
  // them, vdpbf16ps products where it may not.
  EXPECT_TRUE(cpuCodegenFor(*spr, 16, true, true).amx);
  EXPECT_FALSE(cpuCodegenFor(*spr, 16, true, true).amxDot);
  EXPECT_TRUE(cpuCodegenFor(*spr, 16, true, false).amxDot);

  std::optional<CpuFeatures> hsw = namedCpuFeatures("haswell", error);
  ASSERT_TRUE(hsw) << error;
  EXPECT_FALSE(hsw->avx512f || hsw->avx512bf16 || hsw->amxBf16);
  EXPECT_EQ(vectorWidthFor(*hsw), 8);
  CpuCodegen avx2 = cpuCodegenFor(*hsw, 8, true, false);
  EXPECT_FALSE(avx2.fastExp || avx2.bf16Dot || avx2.amx || avx2.amxDot);
  EXPECT_EQ(avx2.int8Dot, "off");
  // 16 lanes forced on an AVX2 CPU keep the portable code.
  EXPECT_FALSE(cpuCodegenFor(*hsw, 16, true, false).fastExp);
  // Skylake-SP: AVX-512 with DQ, no BF16: fast-exp but no bf16 dots.
  std::optional<CpuFeatures> skx = namedCpuFeatures("skylake-avx512", error);
  ASSERT_TRUE(skx) << error;
  CpuCodegen skxCode = cpuCodegenFor(*skx, 16, true, false);
  EXPECT_TRUE(skxCode.fastExp);
  EXPECT_FALSE(skxCode.bf16Dot || skxCode.amxDot);
}

TEST(CpuTarget, UnknownNamesAreErrors) {
  std::string error;
  EXPECT_FALSE(namedCpuFeatures("no-such-cpu", error));
  EXPECT_NE(error.find("--cpu=no-such-cpu: not a CPU LLVM knows"), std::string::npos) << error;
  // "" and "native" are this host.
  EXPECT_TRUE(namedCpuFeatures("", error));
  EXPECT_TRUE(namedCpuFeatures("native", error));
}

TEST(CpuTarget, EnvironmentOverrides) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "x86 CPU names";
#endif
  std::string error;
  std::optional<CpuFeatures> spr = namedCpuFeatures("sapphirerapids", error);
  ASSERT_TRUE(spr) << error;
  {
    ScopedEnv env("ATTNC_CPU_FAST_EXP", "0");
    EXPECT_FALSE(cpuCodegenFor(*spr, 16, false, false).fastExp);
  }
  {
    ScopedEnv env("ATTNC_CPU_AMX", "0");
    CpuCodegen code = cpuCodegenFor(*spr, 16, true, false);
    EXPECT_FALSE(code.bf16Dot || code.amxDot);
  }
  {
    ScopedEnv env("ATTNC_CPU_INT8_DOT", "all");
    EXPECT_EQ(cpuCodegenFor(*spr, 16, false, false).int8Dot, "all");
  }
  {
    ScopedEnv env("ATTNC_CPU_VECTOR_WIDTH", "8");
    EXPECT_EQ(vectorWidthFor(*spr), 8);
  }
  {
    ScopedEnv env("ATTNC_CPU_KEY_CACHE_FLOATS", "-5");
    EXPECT_EQ(cpuCodegenFor(*spr, 16, false, false).keyCacheFloats, 0);
  }
  if (!std::getenv("ATTNC_CPU_KEY_CACHE_FLOATS"))
    EXPECT_EQ(cpuCodegenFor(*spr, 16, false, false).keyCacheFloats, int64_t(1) << 21);
}

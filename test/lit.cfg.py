# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "attnc"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".attn", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Unit", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attnc_obj_root, "test")

# Variables captured in one CHECK-LABEL block do not leak into the next.
config.environment["FILECHECK_OPTS"] = "--enable-var-scope"

llvm_config.with_system_environment(["HOME", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS"])
llvm_config.use_default_substitutions()

config.substitutions.append(("%attnc_src_root", config.attnc_src_root))
tool_dirs = [config.attnc_tools_dir, config.llvm_tools_dir]
tools = ["attnc-opt", "FileCheck", "not", "count", "split-file", "llvm-objdump"]
if os.path.exists(os.path.join(config.attnc_tools_dir, "attnc")):
    tools.append("attnc")
llvm_config.add_tool_substitutions(tools, tool_dirs)

if config.attnc_have_cuda:
    config.available_features.add("cuda")
# Tests that name x86 CPUs (--cpu=sapphirerapids) or read x86 instructions.
import platform
if platform.machine() in ("x86_64", "AMD64"):
    config.available_features.add("x86_64-host")
# attnc opens NVRTC at run time; tests of --emit=ptx/cubin need it.
import glob
if glob.glob("/usr/local/cuda/lib64/libnvrtc.so*") or glob.glob(
        os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "lib64", "libnvrtc.so*")):
    config.available_features.add("nvrtc")
# Host programs against the driver API build with the toolkit's headers and
# its libcuda stub; they run only where a GPU is.
if os.path.exists("/usr/local/cuda/include/cuda.h") and os.path.exists(
        "/usr/local/cuda/lib64/stubs/libcuda.so"):
    config.available_features.add("cuda-headers")
if os.path.exists("/dev/nvidia0"):
    config.available_features.add("cuda-device")

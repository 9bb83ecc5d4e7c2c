//===- Cuda.cpp - The CUDA driver and NVRTC, loaded at run time -----------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Declares the few driver and NVRTC entry points attnc uses with their C
// ABI (stable across CUDA releases) and resolves them with dlsym.
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/Cuda.h"

#include <dlfcn.h>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

using namespace attnc;

namespace {
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = void *;
using CUmodule = void *;
using CUfunction = void *;
using CUstream = void *;
using CUevent = void *;
using nvrtcResult = int;
using nvrtcProgram = void *;

constexpr int kAttrSmCount = 16, kAttrCcMajor = 75, kAttrCcMinor = 76, kAttrSmemOptin = 97;
constexpr int kFuncAttrMaxDynamicSmem = 8;
constexpr int kPointerAttrMemoryType = 2, kMemoryTypeDevice = 2;

struct Driver {
  void *lib = nullptr;
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemAllocAsync)(CUdeviceptr *, size_t, CUstream);
  CUresult (*cuMemFreeAsync)(CUdeviceptr, CUstream);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*cuOccupancyMaxActiveBlocksPerMultiprocessor)(int *, CUfunction, int, size_t);
  CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*cuMemAllocHost)(void **, size_t);
  CUresult (*cuMemFreeHost)(void *);
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
  CUresult (*cuPointerGetAttribute)(void *, int, CUdeviceptr);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  // Optional (drivers from CUDA 12 on): TMA tensor maps.
  CUresult (*cuTensorMapEncodeTiled)(void *, int, unsigned, void *, const unsigned long long *,
                                     const unsigned long long *, const unsigned *,
                                     const unsigned *, int, int, int, int) = nullptr;
  CUdevice device = 0;
  CUcontext context = nullptr;
  std::string description;
  int cc = 0, smemOptin = 0, sms = 0;
  std::string error; // why init failed, when it did
  bool ready = false;
};

struct Nvrtc {
  void *lib = nullptr;
  nvrtcResult (*nvrtcVersion)(int *, int *);
  nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram *, const char *, const char *, int,
                                    const char *const *, const char *const *);
  nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t *);
  nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram, char *);
  nvrtcResult (*nvrtcGetPTXSize)(nvrtcProgram, size_t *);
  nvrtcResult (*nvrtcGetPTX)(nvrtcProgram, char *);
  nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram, size_t *);
  nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram, char *);
  nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram *);
  const char *(*nvrtcGetErrorString)(nvrtcResult);
  // Optional (NVRTC 11.2 and later).
  nvrtcResult (*nvrtcGetNumSupportedArchs)(int *) = nullptr;
  nvrtcResult (*nvrtcGetSupportedArchs)(int *) = nullptr;
  std::string error;
  bool ready = false;
};

template <typename F> bool resolve(void *lib, const char *name, F &fn, std::string &error) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn)
    error = std::string("missing symbol ") + name;
  return fn != nullptr;
}

std::mutex &initMutex() {
  static std::mutex m;
  return m;
}

Driver &driver() {
  static Driver d;
  return d;
}

std::string describe(Driver &d, CUresult r) {
  const char *text = nullptr;
  if (d.cuGetErrorString)
    d.cuGetErrorString(r, &text);
  return text ? std::string(text) : "CUDA error " + std::to_string(r);
}

bool check(CUresult r, const char *what, std::string &error) {
  if (r == 0)
    return true;
  error = std::string(what) + ": " + describe(driver(), r);
  return false;
}

bool openDriver(Driver &d) {
  d.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!d.lib) {
    d.error = "no CUDA driver on this machine (libcuda.so.1 not found)";
    return false;
  }
  std::string &e = d.error;
  if (!resolve(d.lib, "cuInit", d.cuInit, e) || !resolve(d.lib, "cuDeviceGet", d.cuDeviceGet, e) ||
      !resolve(d.lib, "cuDeviceGetAttribute", d.cuDeviceGetAttribute, e) ||
      !resolve(d.lib, "cuDeviceGetName", d.cuDeviceGetName, e) ||
      !resolve(d.lib, "cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain, e) ||
      !resolve(d.lib, "cuCtxSetCurrent", d.cuCtxSetCurrent, e) ||
      !resolve(d.lib, "cuCtxSynchronize", d.cuCtxSynchronize, e) ||
      !resolve(d.lib, "cuMemAlloc_v2", d.cuMemAlloc, e) ||
      !resolve(d.lib, "cuMemFree_v2", d.cuMemFree, e) ||
      !resolve(d.lib, "cuMemAllocAsync", d.cuMemAllocAsync, e) ||
      !resolve(d.lib, "cuMemFreeAsync", d.cuMemFreeAsync, e) ||
      !resolve(d.lib, "cuMemcpyHtoD_v2", d.cuMemcpyHtoD, e) ||
      !resolve(d.lib, "cuMemcpyDtoH_v2", d.cuMemcpyDtoH, e) ||
      !resolve(d.lib, "cuMemsetD8_v2", d.cuMemsetD8, e) ||
      !resolve(d.lib, "cuMemsetD8Async", d.cuMemsetD8Async, e) ||
      !resolve(d.lib, "cuOccupancyMaxActiveBlocksPerMultiprocessor",
               d.cuOccupancyMaxActiveBlocksPerMultiprocessor, e) ||
      !resolve(d.lib, "cuMemcpyDtoHAsync_v2", d.cuMemcpyDtoHAsync, e) ||
      !resolve(d.lib, "cuMemcpyHtoDAsync_v2", d.cuMemcpyHtoDAsync, e) ||
      !resolve(d.lib, "cuMemAllocHost_v2", d.cuMemAllocHost, e) ||
      !resolve(d.lib, "cuMemFreeHost", d.cuMemFreeHost, e) ||
      !resolve(d.lib, "cuStreamCreate", d.cuStreamCreate, e) ||
      !resolve(d.lib, "cuStreamDestroy_v2", d.cuStreamDestroy, e) ||
      !resolve(d.lib, "cuStreamSynchronize", d.cuStreamSynchronize, e) ||
      !resolve(d.lib, "cuEventCreate", d.cuEventCreate, e) ||
      !resolve(d.lib, "cuEventDestroy_v2", d.cuEventDestroy, e) ||
      !resolve(d.lib, "cuEventRecord", d.cuEventRecord, e) ||
      !resolve(d.lib, "cuEventSynchronize", d.cuEventSynchronize, e) ||
      !resolve(d.lib, "cuModuleLoadData", d.cuModuleLoadData, e) ||
      !resolve(d.lib, "cuModuleGetFunction", d.cuModuleGetFunction, e) ||
      !resolve(d.lib, "cuFuncSetAttribute", d.cuFuncSetAttribute, e) ||
      !resolve(d.lib, "cuLaunchKernel", d.cuLaunchKernel, e) ||
      !resolve(d.lib, "cuPointerGetAttribute", d.cuPointerGetAttribute, e) ||
      !resolve(d.lib, "cuGetErrorString", d.cuGetErrorString, e))
    return false;
  std::string optional;
  resolve(d.lib, "cuTensorMapEncodeTiled", d.cuTensorMapEncodeTiled, optional);
  std::string err;
  if (!check(d.cuInit(0), "cuInit", err) || !check(d.cuDeviceGet(&d.device, 0), "cuDeviceGet", err) ||
      !check(d.cuDevicePrimaryCtxRetain(&d.context, d.device), "cuDevicePrimaryCtxRetain", err)) {
    d.error = "cannot use the GPU: " + err;
    return false;
  }
  int major = 0, minor = 0, sms = 0;
  d.cuDeviceGetAttribute(&major, kAttrCcMajor, d.device);
  d.cuDeviceGetAttribute(&minor, kAttrCcMinor, d.device);
  d.cuDeviceGetAttribute(&sms, kAttrSmCount, d.device);
  d.sms = sms;
  d.cuDeviceGetAttribute(&d.smemOptin, kAttrSmemOptin, d.device);
  d.cc = major * 10 + minor;
  char name[256] = {0};
  d.cuDeviceGetName(name, sizeof(name) - 1, d.device);
  d.description = std::string(name) + " (sm_" + std::to_string(d.cc) + ", " +
                  std::to_string(sms) + " SMs)";
  return true;
}

/// The driver, initialized once, with the context current on this thread.
Driver *ready(std::string &error) {
  Driver &d = driver();
  {
    std::lock_guard<std::mutex> lock(initMutex());
    if (!d.ready && d.error.empty())
      d.ready = openDriver(d);
  }
  if (!d.ready) {
    error = d.error;
    return nullptr;
  }
  thread_local bool current = false;
  if (!current) {
    if (!check(d.cuCtxSetCurrent(d.context), "cuCtxSetCurrent", error))
      return nullptr;
    current = true;
  }
  return &d;
}

Nvrtc *nvrtc(std::string &error) {
  static Nvrtc n;
  std::lock_guard<std::mutex> lock(initMutex());
  if (!n.ready && n.error.empty()) {
    std::vector<std::string> candidates = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
    for (const char *env : {"CUDA_HOME", "CUDA_PATH"})
      if (const char *root = std::getenv(env))
        candidates.push_back(std::string(root) + "/lib64/libnvrtc.so");
    candidates.push_back("/usr/local/cuda/lib64/libnvrtc.so");
    for (const std::string &c : candidates)
      if ((n.lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL)))
        break;
    if (!n.lib) {
      n.error = "NVRTC not found (looked for libnvrtc.so.13 on the library path, "
                "$CUDA_HOME/lib64 and /usr/local/cuda/lib64)";
    } else {
      std::string &e = n.error;
      n.ready = resolve(n.lib, "nvrtcVersion", n.nvrtcVersion, e) &&
                resolve(n.lib, "nvrtcCreateProgram", n.nvrtcCreateProgram, e) &&
                resolve(n.lib, "nvrtcCompileProgram", n.nvrtcCompileProgram, e) &&
                resolve(n.lib, "nvrtcGetProgramLogSize", n.nvrtcGetProgramLogSize, e) &&
                resolve(n.lib, "nvrtcGetProgramLog", n.nvrtcGetProgramLog, e) &&
                resolve(n.lib, "nvrtcGetPTXSize", n.nvrtcGetPTXSize, e) &&
                resolve(n.lib, "nvrtcGetPTX", n.nvrtcGetPTX, e) &&
                resolve(n.lib, "nvrtcGetCUBINSize", n.nvrtcGetCUBINSize, e) &&
                resolve(n.lib, "nvrtcGetCUBIN", n.nvrtcGetCUBIN, e) &&
                resolve(n.lib, "nvrtcDestroyProgram", n.nvrtcDestroyProgram, e) &&
                resolve(n.lib, "nvrtcGetErrorString", n.nvrtcGetErrorString, e);
      std::string ignored;
      if (!resolve(n.lib, "nvrtcGetNumSupportedArchs", n.nvrtcGetNumSupportedArchs, ignored) ||
          !resolve(n.lib, "nvrtcGetSupportedArchs", n.nvrtcGetSupportedArchs, ignored))
        n.nvrtcGetNumSupportedArchs = nullptr;
    }
  }
  if (!n.ready) {
    error = n.error;
    return nullptr;
  }
  return &n;
}
} // namespace

bool cuda::init(std::string &error) { return ready(error) != nullptr; }

std::string cuda::deviceDescription() {
  std::string error;
  Driver *d = ready(error);
  return d ? d->description : "";
}

int cuda::residentCTAs(const Function &f, int threads, size_t sharedBytes) {
  std::string error;
  Driver *d = ready(error);
  int perSM = 0;
  if (!d || d->cuOccupancyMaxActiveBlocksPerMultiprocessor(
                &perSM, static_cast<CUfunction>(f.function), threads, sharedBytes) != 0)
    return 0;
  return perSM * d->sms;
}

int cuda::computeCapability() {
  std::string error;
  Driver *d = ready(error);
  return d ? d->cc : 0;
}

int cuda::maxSharedMemoryPerBlock() {
  std::string error;
  Driver *d = ready(error);
  return d ? d->smemOptin : 0;
}

bool cuda::malloc(void **ptr, size_t bytes, std::string &error) {
  Driver *d = ready(error);
  if (!d)
    return false;
  CUdeviceptr p = 0;
  if (!check(d->cuMemAlloc(&p, bytes ? bytes : 1), "cuMemAlloc", error))
    return false;
  *ptr = reinterpret_cast<void *>(p);
  return true;
}

bool cuda::mallocAsync(void **ptr, size_t bytes, void *stream, std::string &error) {
  Driver *d = ready(error);
  if (!d)
    return false;
  CUdeviceptr p = 0;
  if (!check(d->cuMemAllocAsync(&p, bytes ? bytes : 1, stream), "cuMemAllocAsync", error))
    return false;
  *ptr = reinterpret_cast<void *>(p);
  return true;
}

bool cuda::freeAsync(void *ptr, void *stream, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(ptr), stream),
                    "cuMemFreeAsync", error);
}

void cuda::free(void *ptr) {
  std::string error;
  if (Driver *d = ready(error); d && ptr)
    d->cuMemFree(reinterpret_cast<CUdeviceptr>(ptr));
}

bool cuda::copyToDevice(void *dst, const void *src, size_t bytes, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(dst), src, bytes),
                    "cuMemcpyHtoD", error);
}

bool cuda::copyToHost(void *dst, const void *src, size_t bytes, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemcpyDtoH(dst, reinterpret_cast<CUdeviceptr>(src), bytes),
                    "cuMemcpyDtoH", error);
}

bool cuda::memset8(void *dst, unsigned char value, size_t bytes, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemsetD8(reinterpret_cast<CUdeviceptr>(dst), value, bytes),
                    "cuMemsetD8", error);
}

bool cuda::memset8Async(void *dst, unsigned char value, size_t bytes, void *stream,
                        std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(dst), value, bytes,
                                       static_cast<CUstream>(stream)),
                    "cuMemsetD8Async", error);
}

bool cuda::copyToHostAsync(void *dst, const void *src, size_t bytes, void *stream,
                           std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemcpyDtoHAsync(dst, reinterpret_cast<CUdeviceptr>(src), bytes,
                                         static_cast<CUstream>(stream)),
                    "cuMemcpyDtoHAsync", error);
}

bool cuda::synchronize(std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuCtxSynchronize(), "the kernel failed", error);
}

bool cuda::hostAlloc(void **ptr, size_t bytes, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemAllocHost(ptr, bytes ? bytes : 1), "cuMemAllocHost", error);
}

void cuda::hostFree(void *ptr) {
  std::string error;
  if (Driver *d = ready(error); d && ptr)
    d->cuMemFreeHost(ptr);
}

bool cuda::copyToDeviceAsync(void *dst, const void *src, size_t bytes, void *stream,
                             std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuMemcpyHtoDAsync(reinterpret_cast<CUdeviceptr>(dst), src, bytes,
                                         static_cast<CUstream>(stream)),
                    "cuMemcpyHtoDAsync", error);
}

bool cuda::streamCreate(void **stream, std::string &error) {
  constexpr unsigned kNonBlocking = 1;
  Driver *d = ready(error);
  return d && check(d->cuStreamCreate(stream, kNonBlocking), "cuStreamCreate", error);
}

void cuda::streamDestroy(void *stream) {
  std::string error;
  if (Driver *d = ready(error); d && stream)
    d->cuStreamDestroy(stream);
}

bool cuda::streamSynchronize(void *stream, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuStreamSynchronize(stream), "the stream's work failed", error);
}

bool cuda::eventCreate(void **event, std::string &error) {
  constexpr unsigned kDisableTiming = 2;
  Driver *d = ready(error);
  return d && check(d->cuEventCreate(event, kDisableTiming), "cuEventCreate", error);
}

void cuda::eventDestroy(void *event) {
  std::string error;
  if (Driver *d = ready(error); d && event)
    d->cuEventDestroy(event);
}

bool cuda::eventRecord(void *event, void *stream, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuEventRecord(event, stream), "cuEventRecord", error);
}

bool cuda::eventSynchronize(void *event, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuEventSynchronize(event), "the work before the event failed", error);
}

bool cuda::isDevicePointer(const void *ptr) {
  std::string error;
  Driver *d = ready(error);
  if (!d)
    return false;
  unsigned type = 0;
  if (d->cuPointerGetAttribute(&type, kPointerAttrMemoryType,
                               reinterpret_cast<CUdeviceptr>(ptr)) != 0)
    return false;
  return type == kMemoryTypeDevice;
}

bool cuda::loadFunction(const void *image, const char *name, Function &out,
                        std::string &error) {
  Driver *d = ready(error);
  if (!d)
    return false;
  CUmodule module = nullptr;
  if (!check(d->cuModuleLoadData(&module, image), "cuModuleLoadData", error))
    return false;
  CUfunction fn = nullptr;
  if (!check(d->cuModuleGetFunction(&fn, module, name), "cuModuleGetFunction", error))
    return false;
  out.module = module;
  out.function = fn;
  return true;
}

bool cuda::setMaxDynamicSharedMemory(const Function &f, int bytes, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuFuncSetAttribute(f.function, kFuncAttrMaxDynamicSmem, bytes),
                    "cuFuncSetAttribute(max dynamic shared memory)", error);
}

bool cuda::launch(const Function &f, const unsigned grid[3], const unsigned block[3],
                  unsigned sharedBytes, void *stream, void **params, std::string &error) {
  Driver *d = ready(error);
  return d && check(d->cuLaunchKernel(f.function, grid[0], grid[1], grid[2], block[0], block[1],
                                      block[2], sharedBytes, stream, params, nullptr),
                    "cuLaunchKernel", error);
}

bool cuda::encodeTensorMap(TensorMap &out, const void *base, unsigned long long cols,
                           unsigned long long rows, unsigned long long planes, unsigned boxCols,
                           unsigned boxRows, std::string &error) {
  Driver *d = ready(error);
  if (!d)
    return false;
  if (!d->cuTensorMapEncodeTiled) {
    error = "this CUDA driver has no cuTensorMapEncodeTiled (the Hopper kernel needs a driver "
            "from CUDA 12 or later)";
    return false;
  }
  // CUtensorMapDataType UINT16, interleave none, 128-byte swizzle, L2
  // promotion of 256 bytes, out-of-bounds elements read as zeros.
  constexpr int kUint16 = 1, kInterleaveNone = 0, kSwizzle128B = 3, kL2Promote256B = 3,
                kOobZero = 0;
  unsigned long long dims[3] = {cols, rows, planes};
  unsigned long long strides[2] = {cols * 2, cols * rows * 2}; // bytes, dims 1 and 2
  unsigned box[3] = {boxCols, boxRows, 1}, elementStrides[3] = {1, 1, 1};
  return check(d->cuTensorMapEncodeTiled(out.opaque, kUint16, 3, const_cast<void *>(base), dims,
                                         strides, box, elementStrides, kInterleaveNone,
                                         kSwizzle128B, kL2Promote256B, kOobZero),
               "cuTensorMapEncodeTiled", error);
}

bool cuda::compile(const std::string &source, const std::string &name, const std::string &arch,
                   bool cubin, std::string &out, std::string &log, bool quickCode) {
  std::string error;
  Nvrtc *n = nvrtc(error);
  if (!n) {
    log = error;
    return false;
  }
  nvrtcProgram prog = nullptr;
  if (nvrtcResult r = n->nvrtcCreateProgram(&prog, source.c_str(), name.c_str(), 0, nullptr, nullptr)) {
    log = std::string("nvrtcCreateProgram: ") + n->nvrtcGetErrorString(r);
    return false;
  }
  // A real architecture (sm_XX) gives SASS; compute_XX would give PTX only.
  std::string archOpt = "--gpu-architecture=" + (cubin ? arch : "compute_" + arch.substr(3));
  std::vector<std::string> extra;
  // $ATTNC_NVRTC_OPTIONS: more options, space-separated (the emitter names
  // them in the source, so cached cubins key on them).
  if (const char *env = std::getenv("ATTNC_NVRTC_OPTIONS")) {
    std::istringstream words(env);
    for (std::string word; words >> word;)
      extra.push_back(word);
  }
  std::vector<const char *> options = {archOpt.c_str(), "--std=c++17", "--use_fast_math",
                                       "--extra-device-vectorization"};
  if (quickCode)
    options.push_back("--ptxas-options=-O1");
  for (const std::string &word : extra)
    options.push_back(word.c_str());
  nvrtcResult r = n->nvrtcCompileProgram(prog, static_cast<int>(options.size()), options.data());
  size_t logSize = 0;
  n->nvrtcGetProgramLogSize(prog, &logSize);
  log.assign(logSize, '\0');
  if (logSize)
    n->nvrtcGetProgramLog(prog, &log[0]);
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n'))
    log.pop_back();
  bool ok = r == 0;
  if (ok) {
    size_t size = 0;
    if (cubin) {
      n->nvrtcGetCUBINSize(prog, &size);
      out.assign(size, '\0');
      n->nvrtcGetCUBIN(prog, &out[0]);
    } else {
      n->nvrtcGetPTXSize(prog, &size);
      out.assign(size, '\0');
      n->nvrtcGetPTX(prog, &out[0]);
      while (!out.empty() && out.back() == '\0')
        out.pop_back();
    }
  } else if (log.empty()) {
    log = std::string("nvrtcCompileProgram: ") + n->nvrtcGetErrorString(r);
  }
  n->nvrtcDestroyProgram(&prog);
  return ok;
}

std::string cuda::nvrtcVersion(std::string &error) {
  Nvrtc *n = nvrtc(error);
  if (!n)
    return "";
  int major = 0, minor = 0;
  n->nvrtcVersion(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

int cuda::archNumber(const std::string &arch) {
  if (arch.rfind("sm_", 0) != 0)
    return 0;
  std::string digits = arch.substr(3);
  if (!digits.empty() && (digits.back() == 'a' || digits.back() == 'f'))
    digits.pop_back();
  if (digits.size() < 2 || digits.size() > 4 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  return std::stoi(digits);
}

bool cuda::nvrtcSupportsArch(const std::string &arch, std::string &error) {
  Nvrtc *n = nvrtc(error);
  if (!n || !n->nvrtcGetNumSupportedArchs)
    return true;
  int count = 0;
  if (n->nvrtcGetNumSupportedArchs(&count) || count <= 0)
    return true;
  std::vector<int> archs(static_cast<size_t>(count));
  if (n->nvrtcGetSupportedArchs(archs.data()))
    return true;
  int number = archNumber(arch);
  for (int a : archs)
    if (number > 0 && a == number)
      return true;
  std::string names;
  for (int a : archs)
    names += (names.empty() ? "sm_" : ", sm_") + std::to_string(a);
  int major = 0, minor = 0;
  n->nvrtcVersion(&major, &minor);
  error = "NVRTC " + std::to_string(major) + "." + std::to_string(minor) +
          " does not compile for " + arch + "; it knows " + names;
  return false;
}

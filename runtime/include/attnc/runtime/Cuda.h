//===- Cuda.h - The CUDA driver and NVRTC, loaded at run time ---*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// attnc reaches the GPU through the CUDA driver API and NVRTC, both opened
// with dlopen on first use: a build needs no CUDA toolkit, a binary runs on
// machines without a GPU (every call then fails with a clear message), and
// the same binary uses whatever driver the machine has. All calls work on
// device 0's primary context, made current on the calling thread.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_CUDA_H
#define ATTNC_RUNTIME_CUDA_H

#include <cstddef>
#include <string>

namespace attnc {
namespace cuda {

/// Opens the driver, initializes device 0 and makes its context current.
/// False with `error` saying why (no driver, no device, ...).
bool init(std::string &error);
/// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)"; empty before init succeeds.
std::string deviceDescription();
/// Compute capability as major * 10 + minor (90 for Hopper).
int computeCapability();
/// The largest dynamic shared memory a CTA may opt in to.
int maxSharedMemoryPerBlock();

bool malloc(void **ptr, size_t bytes, std::string &error);
/// Stream-ordered allocation (the driver's pool): usable by work enqueued
/// on `stream` after this call; freeAsync returns it when that work is done.
bool mallocAsync(void **ptr, size_t bytes, void *stream, std::string &error);
bool freeAsync(void *ptr, void *stream, std::string &error);
void free(void *ptr);
bool copyToDevice(void *dst, const void *src, size_t bytes, std::string &error);
bool copyToHost(void *dst, const void *src, size_t bytes, std::string &error);
bool memset8(void *dst, unsigned char value, size_t bytes, std::string &error);
/// Stream-ordered forms (`dst` of copyToHostAsync is valid once the stream
/// has reached the copy).
bool memset8Async(void *dst, unsigned char value, size_t bytes, void *stream,
                  std::string &error);
bool copyToHostAsync(void *dst, const void *src, size_t bytes, void *stream, std::string &error);
bool synchronize(std::string &error);

/// Page-locked host memory: uploads from it run asynchronously.
bool hostAlloc(void **ptr, size_t bytes, std::string &error);
void hostFree(void *ptr);
/// Stream-ordered upload. `src` must hold its bytes until the stream has
/// run the copy; from page-locked memory the call returns at once.
bool copyToDeviceAsync(void *dst, const void *src, size_t bytes, void *stream,
                       std::string &error);
/// Streams (non-blocking: not ordered with the legacy default stream) and
/// events, as opaque CUstream and CUevent handles.
bool streamCreate(void **stream, std::string &error);
void streamDestroy(void *stream);
bool streamSynchronize(void *stream, std::string &error);
bool eventCreate(void **event, std::string &error);
void eventDestroy(void *event);
bool eventRecord(void *event, void *stream, std::string &error);
bool eventSynchronize(void *event, std::string &error);
/// True when `ptr` is device memory this context can address.
bool isDevicePointer(const void *ptr);

/// A loaded module's kernel.
struct Function {
  void *module = nullptr;
  void *function = nullptr;
};
/// Loads a cubin (or PTX, JIT-compiled by the driver) and finds `name`.
bool loadFunction(const void *image, const char *name, Function &out, std::string &error);
bool setMaxDynamicSharedMemory(const Function &f, int bytes, std::string &error);
/// CTAs of `f` the whole GPU holds at once (per SM times SMs); 0 if unknown.
int residentCTAs(const Function &f, int threads, size_t sharedBytes);
/// Launches with `params` (one pointer per kernel parameter) on `stream`
/// (null: the legacy default stream).
bool launch(const Function &f, const unsigned grid[3], const unsigned block[3],
            unsigned sharedBytes, void *stream, void **params, std::string &error);

/// A tensor map (the driver's CUtensorMap): what the copy engine (TMA)
/// needs to read boxes of a tensor; passed by value as a kernel parameter.
struct alignas(64) TensorMap {
  unsigned long long opaque[16];
};
/// Encodes `out` for a contiguous row-major tensor of 2-byte elements
/// [planes][rows][cols] at `base` (16-byte aligned, cols * 2 a multiple of
/// 16), read in boxes of boxCols (64: 128 bytes) x boxRows x 1 with the
/// 128-byte swizzle; elements past the tensor's end read as zeros.
bool encodeTensorMap(TensorMap &out, const void *base, unsigned long long cols,
                     unsigned long long rows, unsigned long long planes, unsigned boxCols,
                     unsigned boxRows, std::string &error);

/// Compiles CUDA C++ with NVRTC for `arch` ("sm_90a", "sm_80", ...): a
/// cubin when `cubin` is set, else PTX. `log` gets the compiler's output.
/// `quickCode` asks ptxas for less optimization (-O1), for a kernel that
/// serves only until a better one is ready.
bool compile(const std::string &source, const std::string &name, const std::string &arch,
             bool cubin, std::string &out, std::string &log, bool quickCode = false);
/// "13.0", or empty when NVRTC cannot be loaded (with `error`).
std::string nvrtcVersion(std::string &error);
/// The compute capability of an arch name: "sm_", two or more digits, at
/// most one suffix letter a or f (sm_90a -> 90, sm_100f -> 100); 0 for any
/// other string.
int archNumber(const std::string &arch);
/// Whether this NVRTC compiles for `arch` (archNumber's form); when not,
/// `error` names the ones it does. True when NVRTC cannot say (older NVRTC
/// without the query): compile() then reports.
bool nvrtcSupportsArch(const std::string &arch, std::string &error);

} // namespace cuda
} // namespace attnc

#endif // ATTNC_RUNTIME_CUDA_H

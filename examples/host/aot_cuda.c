/* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
 *
 * Runs the AOT-compiled CUDA kernel of examples/causal.attn with nothing but
 * the CUDA driver API: no attnc, no LLVM, no NVRTC.
 *
 *   attnc examples/causal.attn --emit=cubin -o causal.cubin
 *   attnc examples/causal.attn --target=cuda --emit=header -o causal_cuda.h
 *   cc -O2 -I. aot_cuda.c -I/usr/local/cuda/include -lcuda -lm -o aot_cuda
 *   ./aot_cuda causal.cubin
 *
 * Checks the output and lse of two heads against a double-precision
 * computation and exits 1 when they differ by more than 2e-2.
 */
#include <cuda.h> /* before the header: it then defines its tensor-map helper */

#include "causal_cuda.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                    \
  do {                                                                                 \
    CUresult r_ = (call);                                                              \
    if (r_ != CUDA_SUCCESS) {                                                          \
      const char *s_ = "?";                                                            \
      cuGetErrorString(r_, &s_);                                                       \
      fprintf(stderr, "%s failed: %s\n", #call, s_);                                   \
      return 1;                                                                        \
    }                                                                                  \
  } while (0)

static uint16_t toBf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1); /* round to nearest even */
  return (uint16_t)(u >> 16);
}
static float fromBf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s causal.cubin\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *cubin = malloc((size_t)size);
  if (fread(cubin, 1, (size_t)size, f) != (size_t)size)
    return 1;
  fclose(f);

  const int64_t B = 1, H = 32, S = 300, D = 128;
  size_t n = (size_t)(B * H * S * D);
  uint16_t *q = malloc(n * 2), *k = malloc(n * 2), *v = malloc(n * 2), *o = malloc(n * 2);
  float *lse = malloc((size_t)(B * H * S) * 4);
  srand(7);
  for (size_t i = 0; i < n; ++i) {
    q[i] = toBf16((float)((double)rand() / RAND_MAX * 2 - 1));
    k[i] = toBf16((float)((double)rand() / RAND_MAX * 2 - 1));
    v[i] = toBf16((float)((double)rand() / RAND_MAX * 2 - 1));
  }

  CUdevice dev;
  CUcontext ctx;
  CUmodule mod;
  CUfunction fn;
  CHECK(cuInit(0));
  CHECK(cuDeviceGet(&dev, 0));
  CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
  CHECK(cuCtxSetCurrent(ctx));
  CHECK(cuModuleLoadData(&mod, cubin));
  CHECK(cuModuleGetFunction(&fn, mod, ATTNC_CAUSAL_ENTRY));
  unsigned smem = ATTNC_CAUSAL_SMEM_BYTES(S);
  CHECK(cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)smem));
  CUdeviceptr dq, dk, dv, dout, dlse;
  CHECK(cuMemAlloc(&dq, n * 2));
  CHECK(cuMemAlloc(&dk, n * 2));
  CHECK(cuMemAlloc(&dv, n * 2));
  CHECK(cuMemAlloc(&dout, n * 2));
  CHECK(cuMemAlloc(&dlse, (size_t)(B * H * S) * 4));
  CHECK(cuMemcpyHtoD(dq, q, n * 2));
  CHECK(cuMemcpyHtoD(dk, k, n * 2));
  CHECK(cuMemcpyHtoD(dv, v, n * 2));
  CHECK(cuMemsetD8(dout, 0xFF, n * 2)); /* NaN: unwritten outputs fail */

  attnc_causal_args a;
  memset(&a, 0, sizeof(a));
  a.q = (const void *)dq;
  a.k = (const void *)dk;
  a.v = (const void *)dv;
  a.o = (void *)dout;
  a.lse = (void *)dlse;
  a.B = B;
  a.Hq = H;
  a.Hkv = H;
  a.S = S;
  a.T = S;
  unsigned grid[3];
  attnc_causal_grid(B, H, S, grid);
#if ATTNC_CAUSAL_TENSOR_MAPS
  /* The Hopper kernel (sm_90a) reads K and V with the copy engine. */
  CUtensorMap tmK, tmV;
  CHECK(attnc_causal_tensor_maps(&tmK, &tmV, dk, dv, B, H, S, D, D));
  void *params[] = {&a, &tmK, &tmV};
#else
  void *params[] = {&a};
#endif
  CHECK(cuLaunchKernel(fn, grid[0], grid[1], grid[2], ATTNC_CAUSAL_THREADS, 1, 1, smem, 0,
                       params, 0));
  CHECK(cuCtxSynchronize());
  CHECK(cuMemcpyDtoH(o, dout, n * 2));
  CHECK(cuMemcpyDtoH(lse, dlse, (size_t)(B * H * S) * 4));

  /* Reference for heads 0 and 31, every row. */
  double maxErr = 0, scale = 1.0 / sqrt((double)D);
  double *s = malloc((size_t)S * sizeof(double));
  for (int h = 0; h < H; h += H - 1)
    for (int64_t i = 0; i < S; ++i) {
      size_t rowQ = ((size_t)h * S + i) * D;
      double m = -INFINITY, l = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d)
          dot += (double)fromBf16(q[rowQ + d]) * fromBf16(k[((size_t)h * S + j) * D + d]);
        s[j] = dot * scale;
        if (s[j] > m)
          m = s[j];
      }
      for (int64_t j = 0; j <= i; ++j)
        l += exp(s[j] - m);
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j <= i; ++j)
          acc += exp(s[j] - m) / l * fromBf16(v[((size_t)h * S + j) * D + d]);
        double err = fabs(acc - fromBf16(o[rowQ + d]));
        if (!(err <= maxErr))
          maxErr = err; /* NaN propagates */
      }
      double lerr = fabs(m + log(l) - lse[(size_t)h * S + i]);
      if (!(lerr <= maxErr))
        maxErr = lerr;
    }
  printf("aot cuda causal: B=%lld H=%lld S=%lld D=%lld max error %.3g\n", (long long)B,
         (long long)H, (long long)S, (long long)D, maxErr);
  return maxErr <= 2e-2 ? 0 : 1;
}

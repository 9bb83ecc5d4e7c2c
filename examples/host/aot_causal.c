/* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
 *
 * Runs a kernel compiled ahead of time, with no LLVM at run time:
 *
 *   attnc examples/causal.attn --dtype=f32 --emit=obj    -o causal.o
 *   attnc examples/causal.attn --dtype=f32 --emit=header -o causal.h
 *   cc -I. examples/host/aot_causal.c causal.o -lm -o aot_causal && ./aot_causal
 *
 * It fills q, k and v, calls the kernel over all work items, and checks the
 * result against a direct computation in double precision. */
#include "causal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { B = 1, H = 32, S = 77, D = 128 };

static void view4(attnc_memref4d *m, float *data, int64_t d0, int64_t d1,
                  int64_t d2, int64_t d3) {
  m->allocated = m->aligned = data;
  m->offset = 0;
  m->sizes[0] = d0; m->sizes[1] = d1; m->sizes[2] = d2; m->sizes[3] = d3;
  m->strides[3] = 1;
  m->strides[2] = d3;
  m->strides[1] = d2 * d3;
  m->strides[0] = d1 * d2 * d3;
}

int main(void) {
  size_t n = (size_t)B * H * S * D;
  float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float));
  float *v = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float));
  float *lse = malloc((size_t)B * H * S * sizeof(float));
  unsigned seed = 12345;
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245u + 12345u;
    q[i] = ((seed >> 8) % 2001) / 1000.0f - 1.0f;
    k[i] = ((seed >> 4) % 2001) / 1000.0f - 1.0f;
    v[i] = ((seed >> 12) % 2001) / 1000.0f - 1.0f;
  }
  attnc_memref4d mq, mk, mv, mo;
  attnc_memref3d ml = {lse, lse, 0, {B, H, S}, {H * S, S, 1}};
  view4(&mq, q, B, H, S, D);
  view4(&mk, k, B, H, S, D);
  view4(&mv, v, B, H, S, D);
  view4(&mo, o, B, H, S, D);
  _mlir_ciface_causal(&mq, &mk, &mv, &mo, &ml, 0, attnc_causal_work_items(B, H, S));

  double maxErr = 0, scale = 1.0 / sqrt((double)D);
  double *p = malloc(S * sizeof(double));
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < S; ++i) {
      const float *qi = q + ((size_t)h * S + i) * D;
      double m = -INFINITY, l = 0;
      for (int j = 0; j <= i; ++j) {
        double s = 0;
        for (int d = 0; d < D; ++d)
          s += qi[d] * (double)k[((size_t)h * S + j) * D + d];
        p[j] = s * scale;
        if (p[j] > m)
          m = p[j];
      }
      for (int j = 0; j <= i; ++j)
        l += (p[j] = exp(p[j] - m));
      for (int d = 0; d < D; ++d) {
        double acc = 0;
        for (int j = 0; j <= i; ++j)
          acc += p[j] * v[((size_t)h * S + j) * D + d];
        double err = fabs(acc / l - o[((size_t)h * S + i) * D + d]);
        if (err > maxErr)
          maxErr = err;
      }
      double lseErr = fabs(m + log(l) - lse[(size_t)h * S + i]);
      if (lseErr > maxErr)
        maxErr = lseErr;
    }
  printf("aot causal: B=%d H=%d S=%d D=%d max error %.3g\n", B, H, S, D, maxErr);
  int ok = maxErr < 1e-4;
  printf("%s\n", ok ? "PASS" : "FAIL");
  free(q); free(k); free(v); free(o); free(lse); free(p);
  return ok ? 0 : 1;
}

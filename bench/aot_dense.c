/* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
 *
 * Times an AOT object of bench/specs/dense.attn (f32, B = 1, H = HEADS,
 * S = 4096, D = DIM) on one thread: the whole work range in one call, best
 * of three calls after a warm-up. bench/aot_bench.sh builds and runs it. */
#include "dense.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { B = 1, H = HEADS, S = 4096 };

static void view4(attnc_memref4d *m, float *data) {
  m->allocated = m->aligned = data;
  m->offset = 0;
  int64_t sizes[4] = {B, H, S, DIM};
  for (int d = 0; d < 4; ++d)
    m->sizes[d] = sizes[d];
  m->strides[3] = 1;
  m->strides[2] = DIM;
  m->strides[1] = (int64_t)S * DIM;
  m->strides[0] = (int64_t)H * S * DIM;
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  size_t n = (size_t)B * H * S * DIM;
  float *q = aligned_alloc(64, n * 4), *k = aligned_alloc(64, n * 4);
  float *v = aligned_alloc(64, n * 4), *o = aligned_alloc(64, n * 4);
  unsigned seed = 1;
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245u + 12345u;
    q[i] = ((seed >> 8) % 2001) / 1000.0f - 1;
    k[i] = ((seed >> 4) % 2001) / 1000.0f - 1;
    v[i] = ((seed >> 12) % 2001) / 1000.0f - 1;
  }
  attnc_memref4d mq, mk, mv, mo;
  view4(&mq, q);
  view4(&mk, k);
  view4(&mv, v);
  view4(&mo, o);
  int64_t items = attnc_dense_work_items(B, H, S);
  double best = 1e30;
  for (int r = 0; r < 4; ++r) {
    double t0 = seconds();
    _mlir_ciface_dense(&mq, &mk, &mv, &mo, 0, items);
    double t = seconds() - t0;
    if (r > 0 && t < best)
      best = t;
  }
  double flops = 4.0 * B * H * (double)S * S * DIM;
  printf("dense D=%-3d N=%d H=%d  %8.2f ms  %7.2f GFLOP/s  (o[0] = %.6f)\n", DIM, S, H,
         best * 1e3, flops / best * 1e-9, o[0]);
  free(q), free(k), free(v), free(o);
  return 0;
}

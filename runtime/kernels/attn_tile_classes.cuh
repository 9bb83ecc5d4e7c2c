//===- attn_tile_classes.cuh - Key tiles as EMPTY, FULL or PARTIAL --------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Between attn_fwd_common.cuh and the kernels: each key tile of a query tile
// classified by the interval bounds attnc derives from the mask
// (attnc_tile_class), per CTA or, for masks whose bounds scan tensors, in a
// table that a kernel of its own fills before the launch; and the first and
// last tile a CTA visits. EMPTY tiles are never loaded, FULL tiles run
// without mask code.
//
//===----------------------------------------------------------------------===//

/// EMPTY, FULL or PARTIAL for key tile `kt` of the query tile at row `q0`
/// (`qRows` rows). Tiles past either end are PARTIAL: they need bounds checks.
ATTNC_DEV int attnc_classify(const AttncArgs &a, long long b, long long h, long long q0,
                             int qRows, int kt, long long iOffset) {
  long long j0 = static_cast<long long>(kt) * ATTNC_BN;
  bool tail = q0 + ATTNC_BM > a.S || j0 + ATTNC_BN > a.T;
  int cls = tail ? ATTNC_PARTIAL : ATTNC_FULL;
#if ATTNC_HAS_TILE_CLASS
  long long jHi = j0 + ATTNC_BN - 1 < a.T - 1 ? j0 + ATTNC_BN - 1 : a.T - 1;
  long long iHi = q0 + qRows - 1;
  int bits = attnc_tile_class(a, b, h, q0 + iOffset, iHi + iOffset, j0, jHi);
  if (!(bits & 1))
    cls = ATTNC_EMPTY;
  else if (bits & 2)
    cls = ATTNC_PARTIAL;
#elif ATTNC_HAS_MASK
  cls = ATTNC_PARTIAL;
#endif
  return cls;
}

#if ATTNC_CLASS_TABLE
// Masks whose bounds scan tensors (document ids) are classified for the
// whole launch first, one thread per (query tile, key tile), instead of
// every CTA scanning for each of its key tiles. The table is indexed by
// batch and head only when the mask reads them.
#define ATTNC_CLASS_BATCH(b) (ATTNC_CLASS_USES_B ? (b) : 0)
#define ATTNC_CLASS_HEAD(h) (ATTNC_CLASS_USES_H ? (h) : 0)
#define ATTNC_CLASS_HEADS (ATTNC_CLASS_USES_H ? a.Hq : 1)
#if ATTNC_CLASS_SPLIT
// The bounds in parts: each query tile's row part once per CTA, in shared
// memory (ATTNC_CLASS_SPLIT at a time), each key tile's column part once per
// thread; the per-tile scans of the form below are gone. A CTA takes an
// equal share of the query tiles, so the launch picks the grid's height: the
// JIT's takes 8 query tiles per CTA, which ran this kernel in 14.1-14.6 us
// for documents at N = 16384 on the H200, against 15.1-15.6 with 16 and
// 19.4-19.6 with 2 (docs/cuda-backend.md).
extern "C" __global__ void __launch_bounds__(128) ATTNC_CLASS_KERNEL(const __grid_constant__ AttncArgs a) {
  const long long numQTiles = (a.S + ATTNC_BM - 1) / ATTNC_BM;
  const int numKTiles = static_cast<int>((a.T + ATTNC_BN - 1) / ATTNC_BN);
  const int kt = blockIdx.x * 128 + threadIdx.x;
  const long long share = (numQTiles + gridDim.y - 1) / gridDim.y;
  const long long qBegin = static_cast<long long>(blockIdx.y) * share;
  const long long qEnd = qBegin + share < numQTiles ? qBegin + share : numQTiles;
  const long long h = blockIdx.z % ATTNC_CLASS_HEADS, b = blockIdx.z / ATTNC_CLASS_HEADS;
#if ATTNC_ALIGN_END
  const long long iOffset = a.T - a.S;
#else
  const long long iOffset = 0;
#endif
  __shared__ AttncTileRow rows[ATTNC_CLASS_SPLIT];
  const bool hasKey = kt < numKTiles;
  const long long j0 = static_cast<long long>(kt) * ATTNC_BN;
  const long long jHi = j0 + ATTNC_BN - 1 < a.T - 1 ? j0 + ATTNC_BN - 1 : a.T - 1;
  AttncTileCol col;
  if (hasKey)
    col = attnc_tile_col(a, b, h, j0, jHi);
  for (long long qBase = qBegin; qBase < qEnd; qBase += ATTNC_CLASS_SPLIT) {
    const int qCount = static_cast<int>(qEnd - qBase < ATTNC_CLASS_SPLIT ? qEnd - qBase
                                                                         : ATTNC_CLASS_SPLIT);
    if (qBase != qBegin)
      __syncthreads(); // every thread is done with the last rows
    if (static_cast<int>(threadIdx.x) < qCount) {
      const long long q0 = (qBase + threadIdx.x) * ATTNC_BM;
      const long long iHi = (a.S - q0 < ATTNC_BM ? a.S : q0 + ATTNC_BM) - 1;
      rows[threadIdx.x] = attnc_tile_row(a, b, h, q0 + iOffset, iHi + iOffset);
    }
    __syncthreads();
    if (!hasKey)
      continue;
    for (int t = 0; t < qCount; ++t) {
      const long long q0 = (qBase + t) * ATTNC_BM;
      const long long iHi = (a.S - q0 < ATTNC_BM ? a.S : q0 + ATTNC_BM) - 1;
      // As attnc_classify: tiles past either end are PARTIAL at least.
      const bool tail = q0 + ATTNC_BM > a.S || j0 + ATTNC_BN > a.T;
      const int bits =
          attnc_tile_class_at(a, rows[t], col, b, h, q0 + iOffset, iHi + iOffset, j0, jHi);
      const int cls = !(bits & 1) ? ATTNC_EMPTY : (bits & 2) || tail ? ATTNC_PARTIAL : ATTNC_FULL;
      a.classes[((b * ATTNC_CLASS_HEADS + h) * numQTiles + qBase + t) * numKTiles + kt] =
          static_cast<unsigned char>(cls);
    }
  }
}
#else
extern "C" __global__ void __launch_bounds__(128) ATTNC_CLASS_KERNEL(const __grid_constant__ AttncArgs a) {
  const long long numQTiles = (a.S + ATTNC_BM - 1) / ATTNC_BM;
  const int numKTiles = static_cast<int>((a.T + ATTNC_BN - 1) / ATTNC_BN);
  int kt = blockIdx.x * 128 + threadIdx.x;
  long long qTile = blockIdx.y;
  long long h = blockIdx.z % ATTNC_CLASS_HEADS, b = blockIdx.z / ATTNC_CLASS_HEADS;
  if (kt >= numKTiles)
    return;
  long long q0 = qTile * ATTNC_BM;
  int qRows = static_cast<int>(a.S - q0 < ATTNC_BM ? a.S - q0 : ATTNC_BM);
#if ATTNC_ALIGN_END
  const long long iOffset = a.T - a.S;
#else
  const long long iOffset = 0;
#endif
  a.classes[((b * ATTNC_CLASS_HEADS + h) * numQTiles + qTile) * numKTiles + kt] =
      static_cast<unsigned char>(attnc_classify(a, b, h, q0, qRows, kt, iOffset));
}
#endif // ATTNC_CLASS_SPLIT
#endif

/// The first and last key tile that is not EMPTY (first = numKTiles and
/// last = -1 when every tile is), found by the whole calling warp 32 classes
/// at a time. A thread stepping through the classes one shared load at a time
/// took up to ~2 us of a CTA's life on the empty tiles of causal and windowed
/// rows, before its first product and after its last one.
ATTNC_DEV void attnc_visited_range(const unsigned char *tileClass, int numKTiles, int &first,
                                   int &last) {
  const int lane = threadIdx.x & 31;
  first = numKTiles;
  last = -1;
  for (int base = 0; base < numKTiles; base += 32) {
    const int kt = base + lane;
    const unsigned hit =
        __ballot_sync(0xffffffffu, kt < numKTiles && tileClass[kt] != ATTNC_EMPTY);
    if (hit) {
      first = base + __ffs(static_cast<int>(hit)) - 1;
      break;
    }
  }
  for (int base = (numKTiles - 1) / 32 * 32; base >= first / 32 * 32; base -= 32) {
    const int kt = base + lane;
    const unsigned hit =
        __ballot_sync(0xffffffffu, kt < numKTiles && tileClass[kt] != ATTNC_EMPTY);
    if (hit) {
      last = base + 31 - __clz(static_cast<int>(hit));
      break;
    }
  }
}

/// Every key tile's class for the CTA's query tile into `tileClass`, spread
/// over the threads: copied from the launch's class table, or classified.
ATTNC_DEV void attnc_fill_tile_classes(const AttncArgs &a, unsigned char *tileClass, long long b,
                                       long long h, long long qTile, long long numQTiles,
                                       int numKTiles, long long q0, int qRows, long long iOffset,
                                       int tid) {
#if ATTNC_CLASS_TABLE
  (void)q0, (void)qRows, (void)iOffset;
  const unsigned char *classRow =
      a.classes + ((ATTNC_CLASS_BATCH(b) * ATTNC_CLASS_HEADS + ATTNC_CLASS_HEAD(h)) * numQTiles +
                   qTile) * numKTiles;
  for (int kt = tid; kt < numKTiles; kt += ATTNC_THREADS)
    tileClass[kt] = classRow[kt];
#else
  (void)qTile, (void)numQTiles;
  for (int kt = tid; kt < numKTiles; kt += ATTNC_THREADS)
    tileClass[kt] = static_cast<unsigned char>(attnc_classify(a, b, h, q0, qRows, kt, iOffset));
#endif
}

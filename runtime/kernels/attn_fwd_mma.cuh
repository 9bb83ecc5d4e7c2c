//===- attn_fwd_mma.cuh - Portable fused attention forward (sm_80+) -------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The kernel template of the portable CUDA path: tensor-core mma.sync
// (m16n8k16), online softmax, double-buffered cp.async loads of K and V.
// attnc emits, before this file, the macros below and the variant's device
// functions (attnc_mask, attnc_score, attnc_gate, attnc_tile_class) over a
// struct AttncArgs holding pointers, sizes and the spec's extras.
//
//   ATTNC_KERNEL       entry name          ATTNC_D, ATTNC_DV  head dims (% 8 == 0)
//   ATTNC_F16          f16 q/k/v, else bf16 ATTNC_OUT        0 f32, 1 bf16, 2 f16
//   ATTNC_BLOCK_M      query rows per CTA; ATTNC_MTILES (1 or 2) row tiles
//                      of 16 per warp: a warp's K and V fragments feed both
//   ATTNC_BLOCK_N      keys per tile       ATTNC_SCALE       softmax scale
//   ATTNC_SIGMOID      sigmoid kernel      ATTNC_ALIGN_END   i = r + T - S
//   ATTNC_HAS_LSE / _MASK / _SCORE / _GATE / _TILE_CLASS
//
// One CTA owns ATTNC_BLOCK_M query rows of one (batch, query head); each warp
// owns 16 * ATTNC_MTILES rows and keeps its scores and output accumulators in registers in
// the mma accumulator layout, so the variant code runs on (i, j) it can name
// directly. Key tiles are classified once per CTA (EMPTY, FULL, PARTIAL) by
// the interval bounds attnc derives from the mask; EMPTY tiles are never
// loaded, FULL tiles run without mask code.
//
//===----------------------------------------------------------------------===//

#define ATTNC_BM ATTNC_BLOCK_M
#define ATTNC_MT ATTNC_MTILES
#define ATTNC_WARPS (ATTNC_BM / (16 * ATTNC_MT))
#if ATTNC_WS
// A producer warpgroup and ATTNC_WS_CONSUMERS consumers of 64 rows each
// (attn_fwd_ws.cuh): two, or three, or one with two CTAs per SM (attnc
// sets it).
#ifndef ATTNC_WS_CONSUMERS
#define ATTNC_WS_CONSUMERS 2
#endif
#if ATTNC_WS_CONSUMERS < 1 || ATTNC_WS_CONSUMERS > 3
#error "the warp-specialized kernel takes one to three consumer warpgroups"
#endif
#define ATTNC_THREADS (128 * (ATTNC_WS_CONSUMERS + 1))
#else
#define ATTNC_THREADS (32 * ATTNC_WARPS)
#endif
#define ATTNC_BN ATTNC_BLOCK_N
#define ATTNC_DP ((ATTNC_D + 15) / 16 * 16)
#define ATTNC_DVP ((ATTNC_DV + 15) / 16 * 16)
// Shared rows are padded by 16 bytes so the 8 rows one ldmatrix reads fall
// in 8 different bank groups.
#define ATTNC_QS (ATTNC_DP + 8)
#define ATTNC_VS (ATTNC_DVP + 8)
#define ATTNC_LOG2E 1.4426950408889634f

enum { ATTNC_EMPTY = 0, ATTNC_FULL = 1, ATTNC_PARTIAL = 2 };

ATTNC_DEV void attnc_ldmatrix_x4(unsigned (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(attnc_smem_addr(p)));
}
ATTNC_DEV void attnc_ldmatrix_x4_trans(unsigned (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(attnc_smem_addr(p)));
}

/// As attnc_wgmma_rs, 64 x 128: the whole value dim of 128 in one
/// instruction; descB spans two 64-column swizzle atoms (attnc_desc_mn).
ATTNC_DEV void attnc_wgmma_rs128(float (*d)[4], const unsigned (&a)[4],
                                 unsigned long long descB) {
#if ATTNC_F16
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(1));
#else
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(1));
#endif
}

/// Copies `rows` rows of `width` elements (a multiple of 8) starting at
/// `src` (row stride `width`) into shared rows of stride `stride`, padding
/// columns to `padded` and rows to `tileRows` with zeros.
template <int tileRows, int width, int padded, int stride>
ATTNC_DEV void attnc_load_tile(attnc_b16 *dst, const attnc_b16 *src, int rows, int tid) {
  constexpr int chunks = padded / 8;
  for (int n = tid; n < tileRows * chunks; n += ATTNC_THREADS) {
    int r = n / chunks, c = n % chunks;
    bool ok = r < rows && c * 8 < width;
    const attnc_b16 *g = ok ? src + static_cast<long long>(r) * width + c * 8 : src;
    attnc_cp_async16(dst + r * stride + c * 8, g, ok);
  }
}

#if ATTNC_WGMMA
//===----------------------------------------------------------------------===//
// Hopper warpgroup MMA (sm_90a): operands in shared memory in the 128-byte
// swizzled layout (rows of 64 elements, 16-byte chunk c of row r stored at
// chunk c ^ (r % 8), tiles 1024-byte aligned), read by the tensor cores
// through descriptors.
//===----------------------------------------------------------------------===//

/// Descriptor of an operand at `p` in the 128-byte swizzle: 8-row groups
/// 1024 bytes apart; an MN-major operand wider than one swizzle atom has its
/// 64-column atoms `atomBytes` apart along N (unused otherwise).
ATTNC_DEV unsigned long long attnc_desc_mn(const void *p, unsigned atomBytes) {
  unsigned long long addr = attnc_smem_addr(p);
  return ((addr & 0x3FFFF) >> 4) | (static_cast<unsigned long long>(atomBytes >> 4) << 16) |
         (64ull << 32) | (1ull << 62);
}
/// Descriptor of a K-major (or, for B, MN-major) operand of one atom's width.
ATTNC_DEV unsigned long long attnc_desc(const void *p) { return attnc_desc_mn(p, 16); }
/// `desc` moved `bytes` (a multiple of 16) further into shared memory: the
/// address field is the low 14 bits and never carries (shared memory ends
/// below 256 KB), so only the low word changes.
ATTNC_DEV unsigned long long attnc_desc_plus(unsigned long long desc, unsigned bytes) {
  return (desc & 0xFFFFFFFF00000000ull) | (static_cast<unsigned>(desc) + (bytes >> 4));
}
ATTNC_DEV void attnc_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
ATTNC_DEV void attnc_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
ATTNC_DEV void attnc_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

/// d (64 x 64, f32, the warpgroup's accumulator layout) += A * B^T, both
/// from shared memory, K-major; `accumulate` = 0 overwrites d.
ATTNC_DEV void attnc_wgmma_ss(float (*d)[4], unsigned long long descA,
                              unsigned long long descB, int accumulate) {
#if ATTNC_F16
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
               : "l"(descA), "l"(descB), "r"(accumulate));
#else
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
               : "l"(descA), "l"(descB), "r"(accumulate));
#endif
}

/// As attnc_wgmma_ss, 64 x 128: a whole key tile of 128 in one instruction.
ATTNC_DEV void attnc_wgmma_ss128(float (*d)[4], unsigned long long descA,
                                 unsigned long long descB, int accumulate) {
#if ATTNC_F16
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
               : "l"(descA), "l"(descB), "r"(accumulate));
#else
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
               : "l"(descA), "l"(descB), "r"(accumulate));
#endif
}

/// d (64 x 64) += A * B with A (64 x 16) in registers in the mma.sync
/// fragment layout and B (16 x 64) in shared memory, MN-major.
ATTNC_DEV void attnc_wgmma_rs(float (*d)[4], const unsigned (&a)[4],
                              unsigned long long descB) {
#if ATTNC_F16
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(1));
#else
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
               "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(1));
#endif
}

/// Copies `rows` rows of `width` (a multiple of 64) elements into the
/// swizzled layout: [width / 64][tileRows][64]; missing rows become zeros.
template <int tileRows, int width>
ATTNC_DEV void attnc_load_tile_sw(attnc_b16 *dst, const attnc_b16 *src, int rows, int tid) {
  constexpr int chunks = width / 8;
  unsigned char *bytes = reinterpret_cast<unsigned char *>(dst);
#pragma unroll 4
  for (int n = tid; n < tileRows * chunks; n += ATTNC_THREADS) {
    int r = n / chunks, c = n % chunks;
    bool ok = r < rows;
    const attnc_b16 *g = ok ? src + static_cast<long long>(r) * width + c * 8 : src;
    int at = (c >> 3) * (tileRows * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4);
    attnc_cp_async16(bytes + at, g, ok);
  }
}
#endif

ATTNC_DEV void attnc_store_out(const AttncArgs &a, long long at, float x0, float x1) {
#if ATTNC_OUT == 0
  float2 v;
  v.x = x0;
  v.y = x1;
  *reinterpret_cast<float2 *>(a.o + at) = v;
#elif ATTNC_OUT == 1
  *reinterpret_cast<unsigned *>(a.o + at) = attnc_pack_bf16x2(x0, x1);
#else
  *reinterpret_cast<unsigned *>(a.o + at) = attnc_pack_f16x2(x0, x1);
#endif
}

// Without a score the scale folds into the exponent: the max over raw
// scores (the scale is positive, so rounding keeps their order), then one
// FFMA per element where a multiply and a subtraction were.
#define ATTNC_FOLD_SCALE (!ATTNC_HAS_SCORE && !ATTNC_SIGMOID && ATTNC_SCALE_POSITIVE)

#if ATTNC_SPLIT_REGIONS
#define ATTNC_SCORE_AT(x) attnc_score_at(a, scoreRow[e >> 1], scoreCol[e & 1], x, b, h, i, j)
#else
#define ATTNC_SCORE_AT(x) attnc_score(a, x, b, h, i, j)
#endif

/// Scores to weights for one key tile, in place: masks (when MASKED),
/// score modification, online softmax (or sigmoid) statistics.
template <bool MASKED>
ATTNC_DEV void attnc_weights(const AttncArgs &a, float (&s)[ATTNC_BN / 8][4], float (&m)[2],
                             float (&l)[2], float (&corr)[2], long long b, long long h,
                             long long r0, long long j0, long long iOffset) {
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2, c = lane & 3;
  // Positions in 32 bits: the launch bounds them (kMaxCudaPositions), and
  // the regions take int positions.
  // The regions' row parts once for each of the thread's two rows and their
  // column parts once per column (a row's document id, a column's factors),
  // the rest per element.
#if ATTNC_HAS_MASK && ATTNC_SPLIT_REGIONS
  AttncMaskRow maskRow[2];
  if (MASKED)
#pragma unroll
    for (int half = 0; half < 2; ++half)
      maskRow[half] = attnc_mask_row(a, b, h, static_cast<int>(r0 + iOffset) + g + 8 * half);
#endif
#if ATTNC_HAS_SCORE && ATTNC_SPLIT_REGIONS
  AttncScoreRow scoreRow[2];
#pragma unroll
  for (int half = 0; half < 2; ++half)
    scoreRow[half] = attnc_score_row(a, b, h, static_cast<int>(r0 + iOffset) + g + 8 * half);
#endif
  // A column part that reads a tensor (a document id) is computed once per
  // lane, for columns lane, lane + 32, ..., and reaches the lanes that use
  // it by shuffles: each column's part had been computed by the 8 lanes of
  // its rows, a load and its index arithmetic each time.
#define ATTNC_COL_PARTS ((ATTNC_BN + 31) / 32)
#if ATTNC_HAS_MASK && ATTNC_SPLIT_REGIONS && ATTNC_MASK_COL_SHUFFLE
  AttncMaskCol maskOwn[ATTNC_COL_PARTS];
  if (MASKED)
#pragma unroll
    for (int k = 0; k < ATTNC_COL_PARTS; ++k)
      maskOwn[k] = attnc_mask_col(a, b, h, static_cast<int>(j0) + lane + 32 * k);
#endif
#if ATTNC_HAS_SCORE && ATTNC_SPLIT_REGIONS && ATTNC_SCORE_COL_SHUFFLE
  AttncScoreCol scoreOwn[ATTNC_COL_PARTS];
#pragma unroll
  for (int k = 0; k < ATTNC_COL_PARTS; ++k)
    scoreOwn[k] = attnc_score_col(a, b, h, static_cast<int>(j0) + lane + 32 * k);
#endif
#pragma unroll
  for (int nt = 0; nt < ATTNC_BN / 8; ++nt) {
    // The column parts next to their use: computed for every column up
    // front, a document mask's 32 ids per thread stayed live together and
    // spilled.
#if ATTNC_HAS_MASK && ATTNC_SPLIT_REGIONS
    // Column nt * 8 + 2c + e: lane (nt % 4) * 8 + 2c + e holds it, in
    // its part nt / 4.
    AttncMaskCol maskCol[2];
    if (MASKED)
#pragma unroll
      for (int e = 0; e < 2; ++e)
#if ATTNC_MASK_COL_SHUFFLE
        maskCol[e] = attnc_shfl(maskOwn[nt / 4], (nt % 4) * 8 + 2 * c + e);
#else
        maskCol[e] = attnc_mask_col(a, b, h, static_cast<int>(j0) + nt * 8 + 2 * c + e);
#endif
#endif
#if ATTNC_HAS_SCORE && ATTNC_SPLIT_REGIONS
    AttncScoreCol scoreCol[2];
#pragma unroll
    for (int e = 0; e < 2; ++e)
#if ATTNC_SCORE_COL_SHUFFLE
      scoreCol[e] = attnc_shfl(scoreOwn[nt / 4], (nt % 4) * 8 + 2 * c + e);
#else
      scoreCol[e] = attnc_score_col(a, b, h, static_cast<int>(j0) + nt * 8 + 2 * c + e);
#endif
#endif
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      int r = static_cast<int>(r0) + g + (e >= 2 ? 8 : 0);
      int j = static_cast<int>(j0) + nt * 8 + 2 * c + (e & 1);
      int i = r + static_cast<int>(iOffset);
      (void)i;
      float x = s[nt][e];
      bool keep = true;
      if (MASKED) {
        // Bitwise: the mask runs for every element, without branches.
        keep = (r < static_cast<int>(a.S)) & (j < static_cast<int>(a.T));
#if ATTNC_HAS_MASK && ATTNC_SPLIT_REGIONS
        keep = keep & attnc_mask_at(a, maskRow[e >> 1], maskCol[e & 1], b, h, i, j);
#elif ATTNC_HAS_MASK
        keep = keep & attnc_mask(a, b, h, i, j);
#endif
      }
#if ATTNC_HAS_SCORE
      x = x * ATTNC_SCALE;
#if ATTNC_SCORE_READS
      // Scored even where masked (the select below drops it): region reads
      // are clamped and total, so no branch is needed around them.
      x = ATTNC_SCORE_AT(x);
#else
      if (keep)
        x = ATTNC_SCORE_AT(x);
#endif
#if !ATTNC_SIGMOID
      x *= ATTNC_LOG2E;
#endif
#elif ATTNC_SIGMOID
      x = x * ATTNC_SCALE;
#elif !ATTNC_SCALE_POSITIVE
      x = x * (ATTNC_SCALE * ATTNC_LOG2E);
#endif
      s[nt][e] = keep ? x : -ATTNC_INF;
    }
  }
#if ATTNC_SIGMOID
#pragma unroll
  for (int nt = 0; nt < ATTNC_BN / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      s[nt][e] = s[nt][e] == -ATTNC_INF ? 0.0f
                                         : 1.0f / (1.0f + attnc_exp2(-s[nt][e] * ATTNC_LOG2E));
  corr[0] = corr[1] = 1.0f;
  (void)m;
  (void)l;
#else
  // Scores are in log2 units from here on.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float mx = -ATTNC_INF;
#pragma unroll
    for (int nt = 0; nt < ATTNC_BN / 8; ++nt)
      mx = fmaxf(mx, fmaxf(s[nt][2 * half], s[nt][2 * half + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
#if ATTNC_FOLD_SCALE
    mx *= ATTNC_SCALE * ATTNC_LOG2E;
#endif
    float mNew = fmaxf(m[half], mx);
#if ATTNC_RESCALE_SLACK >= 0
    // The running max moves only when the tile's max passes it by more
    // than the slack (log2 units): weights up to 2^slack are exact enough in
    // f32 sums and 16-bit P, and most tiles then leave O unscaled (corr 1,
    // which the kernels skip). -inf + slack is -inf, so the first visible
    // tile always moves it.
    if (!(mNew > m[half] + ATTNC_RESCALE_SLACK))
      mNew = m[half];
#endif
    // A row with nothing visible yet keeps max -inf; subtract 0 instead so
    // exp2 sees -inf, never NaN.
    float base = mNew == -ATTNC_INF ? 0.0f : mNew;
#if ATTNC_RESCALE_SLACK >= 0
    corr[half] = mNew == m[half] ? 1.0f : attnc_exp2(m[half] - base);
#else
    corr[half] = attnc_exp2(m[half] - base);
#endif
    m[half] = mNew;
    float sum = 0.0f;
#pragma unroll
    for (int nt = 0; nt < ATTNC_BN / 8; ++nt) {
#if ATTNC_FOLD_SCALE
      float p0 = attnc_exp2(fmaf(s[nt][2 * half], ATTNC_SCALE * ATTNC_LOG2E, -base));
      float p1 = attnc_exp2(fmaf(s[nt][2 * half + 1], ATTNC_SCALE * ATTNC_LOG2E, -base));
#else
      float p0 = attnc_exp2(s[nt][2 * half] - base);
      float p1 = attnc_exp2(s[nt][2 * half + 1] - base);
#endif
      s[nt][2 * half] = p0;
      s[nt][2 * half + 1] = p1;
      sum += p0 + p1;
    }
    l[half] = l[half] * corr[half] + sum; // this thread's share of the row
  }
#endif
}

/// Whether any row of this warp has to rescale its O by `corr` (a
/// warp-uniform answer, so the branch around the multiplies never diverges).
ATTNC_DEV bool attnc_rescale_needed(const float (&corr)[2]) {
#if ATTNC_SIGMOID
  (void)corr;
  return false;
#elif ATTNC_RESCALE_SLACK < 0
  (void)corr;
  return true;
#else
  return __any_sync(0xffffffffu, (corr[0] != 1.0f) | (corr[1] != 1.0f));
#endif
}

/// O *= corr per row (the accumulator layout: elements 0, 1 in row g, 2, 3
/// in row g + 8), skipped when no row of the warp needs it.
template <int N> ATTNC_DEV void attnc_rescale_o(float (&o)[N][4], const float (&corr)[2]) {
  if (!attnc_rescale_needed(corr))
    return;
#pragma unroll
  for (int dt = 0; dt < N; ++dt) {
    o[dt][0] *= corr[0];
    o[dt][1] *= corr[0];
    o[dt][2] *= corr[1];
    o[dt][3] *= corr[1];
  }
}

/// P's A fragment for keys [16 kk, 16 kk + 16) of a row tile: the
/// accumulator layout of S's two adjacent 8-key columns is the fragment's
/// layout, packed in the input type. With ATTNC_P_SPLIT, `rest` gets what
/// the packing rounded away.
ATTNC_DEV void attnc_pack_p(const float (&s)[ATTNC_BN / 8][4], int kk, unsigned (&p)[4]) {
  p[0] = attnc_pack_in(s[2 * kk][0], s[2 * kk][1]);
  p[1] = attnc_pack_in(s[2 * kk][2], s[2 * kk][3]);
  p[2] = attnc_pack_in(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  p[3] = attnc_pack_in(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}
ATTNC_DEV void attnc_pack_p_rest(const float (&s)[ATTNC_BN / 8][4], int kk,
                                 const unsigned (&p)[4], unsigned (&rest)[4]) {
  rest[0] = attnc_pack_rest(s[2 * kk][0], s[2 * kk][1], p[0]);
  rest[1] = attnc_pack_rest(s[2 * kk][2], s[2 * kk][3], p[1]);
  rest[2] = attnc_pack_rest(s[2 * kk + 1][0], s[2 * kk + 1][1], p[2]);
  rest[3] = attnc_pack_rest(s[2 * kk + 1][2], s[2 * kk + 1][3], p[3]);
}

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
// The bounds in parts (ATTNC_CLASS_SPLIT query tiles per CTA): each query
// tile's row part once per CTA, in shared memory, each key tile's column
// part once per thread; the per-tile scans of the form below are gone.
extern "C" __global__ void __launch_bounds__(128) ATTNC_CLASS_KERNEL(const __grid_constant__ AttncArgs a) {
  const long long numQTiles = (a.S + ATTNC_BM - 1) / ATTNC_BM;
  const int numKTiles = static_cast<int>((a.T + ATTNC_BN - 1) / ATTNC_BN);
  const int kt = blockIdx.x * 128 + threadIdx.x;
  const long long qBase = static_cast<long long>(blockIdx.y) * ATTNC_CLASS_SPLIT;
  const long long h = blockIdx.z % ATTNC_CLASS_HEADS, b = blockIdx.z / ATTNC_CLASS_HEADS;
  const int qCount = static_cast<int>(numQTiles - qBase < ATTNC_CLASS_SPLIT ? numQTiles - qBase
                                                                            : ATTNC_CLASS_SPLIT);
#if ATTNC_ALIGN_END
  const long long iOffset = a.T - a.S;
#else
  const long long iOffset = 0;
#endif
  __shared__ AttncTileRow rows[ATTNC_CLASS_SPLIT];
  if (static_cast<int>(threadIdx.x) < qCount) {
    const long long q0 = (qBase + threadIdx.x) * ATTNC_BM;
    const long long iHi = (a.S - q0 < ATTNC_BM ? a.S : q0 + ATTNC_BM) - 1;
    rows[threadIdx.x] = attnc_tile_row(a, b, h, q0 + iOffset, iHi + iOffset);
  }
  __syncthreads();
  if (kt >= numKTiles)
    return;
  const long long j0 = static_cast<long long>(kt) * ATTNC_BN;
  const long long jHi = j0 + ATTNC_BN - 1 < a.T - 1 ? j0 + ATTNC_BN - 1 : a.T - 1;
  const AttncTileCol col = attnc_tile_col(a, b, h, j0, jHi);
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

#if !ATTNC_WS // sm_90a with head dims 64 and 128 takes attn_fwd_ws.cuh instead
// CTAs per SM the register allocation must allow (attnc may set it).
#ifndef ATTNC_MIN_BLOCKS
#define ATTNC_MIN_BLOCKS 1
#endif
extern "C" __global__ void __launch_bounds__(ATTNC_THREADS, ATTNC_MIN_BLOCKS)
    ATTNC_KERNEL(const __grid_constant__ AttncArgs a) {
  extern __shared__ __align__(16) unsigned char attnc_smem[];
#if ATTNC_WGMMA
  // Swizzled tiles start on 1024-byte boundaries (the host adds the slack).
  unsigned char *smemBase = attnc_smem + ((1024 - (attnc_smem_addr(attnc_smem) & 1023)) & 1023);
  attnc_b16 *qs = reinterpret_cast<attnc_b16 *>(smemBase);
  attnc_b16 *ks = qs + ATTNC_BM * ATTNC_D;
  attnc_b16 *vs = ks + 2 * ATTNC_BN * ATTNC_D;
  unsigned char *tileClass = reinterpret_cast<unsigned char *>(vs + 2 * ATTNC_BN * ATTNC_DV);
#else
  attnc_b16 *qs = reinterpret_cast<attnc_b16 *>(attnc_smem);
  attnc_b16 *ks = qs + ATTNC_BM * ATTNC_QS;
  attnc_b16 *vs = ks + 2 * ATTNC_BN * ATTNC_QS;
  unsigned char *tileClass =
      reinterpret_cast<unsigned char *>(vs + 2 * ATTNC_BN * ATTNC_VS);
#endif

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  // Longest rows first: with a causal mask the last query tiles do the most
  // work, and starting them early shortens the tail of the launch.
  const long long numQTiles = (a.S + ATTNC_BM - 1) / ATTNC_BM;
  const long long qTile = numQTiles - 1 - blockIdx.x;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long hk = h / (a.Hq / a.Hkv);
  const long long q0 = qTile * ATTNC_BM;
#if ATTNC_ALIGN_END
  const long long iOffset = a.T - a.S;
#else
  const long long iOffset = 0;
#endif
  const int numKTiles = static_cast<int>((a.T + ATTNC_BN - 1) / ATTNC_BN);

  const attnc_b16 *qg = a.q + ((b * a.Hq + h) * a.S + q0) * ATTNC_D;
  const attnc_b16 *kg = a.k + (b * a.Hkv + hk) * a.T * ATTNC_D;
  const attnc_b16 *vg = a.v + (b * a.Hkv + hk) * a.T * ATTNC_DV;
  const int qRows = static_cast<int>(a.S - q0 < ATTNC_BM ? a.S - q0 : ATTNC_BM);

#if ATTNC_WGMMA
  attnc_load_tile_sw<ATTNC_BM, ATTNC_D>(qs, qg, qRows, tid);
#else
  attnc_load_tile<ATTNC_BM, ATTNC_D, ATTNC_DP, ATTNC_QS>(qs, qg, qRows, tid);
#endif
  attnc_cp_async_commit();

  // Classify every key tile for this query tile, spread over the threads,
  // or copy the classes the class kernel computed for the launch.
  attnc_fill_tile_classes(a, tileClass, b, h, qTile, numQTiles, numKTiles, q0, qRows, iOffset,
                          tid);
  __syncthreads();

  int firstTile, lastTile;
  attnc_visited_range(tileClass, numKTiles, firstTile, lastTile);
  // The next tile to visit from kt on (numKTiles: none).
  auto nextTile = [&](int kt) {
    while (kt <= lastTile && tileClass[kt] == ATTNC_EMPTY)
      ++kt;
    return kt <= lastTile ? kt : numKTiles;
  };
  auto loadKV = [&](int kt, int buf) {
    long long j0 = static_cast<long long>(kt) * ATTNC_BN;
    int rows = static_cast<int>(a.T - j0 < ATTNC_BN ? a.T - j0 : ATTNC_BN);
#if ATTNC_WGMMA
    attnc_load_tile_sw<ATTNC_BN, ATTNC_D>(ks + buf * ATTNC_BN * ATTNC_D, kg + j0 * ATTNC_D,
                                           rows, tid);
    attnc_load_tile_sw<ATTNC_BN, ATTNC_DV>(vs + buf * ATTNC_BN * ATTNC_DV, vg + j0 * ATTNC_DV,
                                            rows, tid);
#else
    attnc_load_tile<ATTNC_BN, ATTNC_D, ATTNC_DP, ATTNC_QS>(ks + buf * ATTNC_BN * ATTNC_QS,
                                                            kg + j0 * ATTNC_D, rows, tid);
    attnc_load_tile<ATTNC_BN, ATTNC_DV, ATTNC_DVP, ATTNC_VS>(vs + buf * ATTNC_BN * ATTNC_VS,
                                                              vg + j0 * ATTNC_DV, rows, tid);
#endif
  };

  float o[ATTNC_MT][ATTNC_DVP / 8][4];
  float m[ATTNC_MT][2], l[ATTNC_MT][2];
#pragma unroll
  for (int mt = 0; mt < ATTNC_MT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < ATTNC_DVP / 8; ++dt)
      o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
    m[mt][0] = m[mt][1] = -ATTNC_INF;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  int kt = nextTile(firstTile);
  if (kt < numKTiles)
    loadKV(kt, 0);
  attnc_cp_async_commit();
  int buf = 0;
  while (kt < numKTiles) {
    // Tile kt has landed in `buf`; every warp is done with the other buffer.
    attnc_cp_async_wait_all();
#if ATTNC_WGMMA
    attnc_fence_proxy_async(); // the tensor cores read what cp.async wrote
#endif
    __syncthreads();
    int next = nextTile(kt + 1);
    if (next < numKTiles)
      loadKV(next, buf ^ 1);
    attnc_cp_async_commit();

#if ATTNC_WGMMA
    const attnc_b16 *kb = ks + buf * ATTNC_BN * ATTNC_D;
    const attnc_b16 *vb = vs + buf * ATTNC_BN * ATTNC_DV;
    float s[ATTNC_MT][ATTNC_BN / 8][4];
    {
      // S = Q K^T for this warpgroup's 64 rows: D / 16 steps of k = 16, each
      // 32 bytes further along the swizzled 128-byte rows.
      const unsigned char *qb = reinterpret_cast<const unsigned char *>(qs) + (warp >> 2) * 64 * 128;
      const unsigned char *kbb = reinterpret_cast<const unsigned char *>(kb);
      attnc_wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < ATTNC_D / 16; ++kk) {
        unsigned long long qd = attnc_desc(qb + (kk >> 2) * (ATTNC_BM * 128) + (kk & 3) * 32);
        unsigned long long kd = attnc_desc(kbb + (kk >> 2) * (ATTNC_BN * 128) + (kk & 3) * 32);
#if ATTNC_BN == 128
        attnc_wgmma_ss128(s[0], qd, kd, kk > 0);
#else
        attnc_wgmma_ss(s[0], qd, kd, kk > 0);
#endif
      }
      attnc_wgmma_commit();
      attnc_wgmma_wait();
    }
#else
    const attnc_b16 *qw = qs + warp * 16 * ATTNC_MT * ATTNC_QS;
    const attnc_b16 *kb = ks + buf * ATTNC_BN * ATTNC_QS;
    const attnc_b16 *vb = vs + buf * ATTNC_BN * ATTNC_VS;
    float s[ATTNC_MT][ATTNC_BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < ATTNC_MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < ATTNC_BN / 8; ++nt)
        s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < ATTNC_DP / 16; ++kk) {
      unsigned qa[ATTNC_MT][4];
#pragma unroll
      for (int mt = 0; mt < ATTNC_MT; ++mt)
        attnc_ldmatrix_x4(qa[mt], qw + (mt * 16 + (lane & 15)) * ATTNC_QS + kk * 16 +
                                      (lane >> 4) * 8);
#pragma unroll
      for (int nt2 = 0; nt2 < ATTNC_BN / 16; ++nt2) {
        unsigned kf[4];
        int key = nt2 * 16 + (lane & 7) + ((lane >> 4) << 3);
        int col = kk * 16 + ((lane >> 3) & 1) * 8;
        attnc_ldmatrix_x4(kf, kb + key * ATTNC_QS + col);
#pragma unroll
        for (int mt = 0; mt < ATTNC_MT; ++mt) {
          attnc_mma(s[mt][2 * nt2], qa[mt], kf[0], kf[1]);
          attnc_mma(s[mt][2 * nt2 + 1], qa[mt], kf[2], kf[3]);
        }
      }
    }

#endif

    const bool partial = tileClass[kt] == ATTNC_PARTIAL;
    const long long j0 = static_cast<long long>(kt) * ATTNC_BN;
#pragma unroll
    for (int mt = 0; mt < ATTNC_MT; ++mt) {
      float corr[2];
      long long r0 = q0 + (warp * ATTNC_MT + mt) * 16;
      if (partial)
        attnc_weights<true>(a, s[mt], m[mt], l[mt], corr, b, h, r0, j0, iOffset);
      else
        attnc_weights<false>(a, s[mt], m[mt], l[mt], corr, b, h, r0, j0, iOffset);
      attnc_rescale_o(o[mt], corr);
    }

#if ATTNC_WGMMA
    {
      // O += P V: P from registers (the accumulator layout of S is the
      // A-fragment layout), V as an MN-major operand, one 64-wide half of
      // the value dim per instruction.
      const unsigned char *vbb = reinterpret_cast<const unsigned char *>(vb);
      attnc_wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < ATTNC_BN / 16; ++kk) {
        unsigned pa[4];
        attnc_pack_p(s[0], kk, pa);
#pragma unroll
        for (int dh = 0; dh < ATTNC_DV / 64; ++dh)
          attnc_wgmma_rs(&o[0][dh * 8], pa,
                         attnc_desc(vbb + dh * (ATTNC_BN * 128) + kk * 16 * 128));
#if ATTNC_P_SPLIT
        unsigned pr[4];
        attnc_pack_p_rest(s[0], kk, pa, pr);
#pragma unroll
        for (int dh = 0; dh < ATTNC_DV / 64; ++dh)
          attnc_wgmma_rs(&o[0][dh * 8], pr,
                         attnc_desc(vbb + dh * (ATTNC_BN * 128) + kk * 16 * 128));
#endif
      }
      attnc_wgmma_commit();
      attnc_wgmma_wait();
    }
#else
    // O += P V: the score accumulators of two adjacent key columns of 8 are
    // exactly the A fragment of one 16-wide k step.
#pragma unroll
    for (int kk = 0; kk < ATTNC_BN / 16; ++kk) {
      unsigned pa[ATTNC_MT][4];
#pragma unroll
      for (int mt = 0; mt < ATTNC_MT; ++mt)
        attnc_pack_p(s[mt], kk, pa[mt]);
#if ATTNC_P_SPLIT
      unsigned pr[ATTNC_MT][4];
#pragma unroll
      for (int mt = 0; mt < ATTNC_MT; ++mt)
        attnc_pack_p_rest(s[mt], kk, pa[mt], pr[mt]);
#endif
#pragma unroll
      for (int dt2 = 0; dt2 < ATTNC_DVP / 16; ++dt2) {
        unsigned vf[4];
        int key = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
        int col = dt2 * 16 + (lane >> 4) * 8;
        attnc_ldmatrix_x4_trans(vf, vb + key * ATTNC_VS + col);
#pragma unroll
        for (int mt = 0; mt < ATTNC_MT; ++mt) {
          attnc_mma(o[mt][2 * dt2], pa[mt], vf[0], vf[1]);
          attnc_mma(o[mt][2 * dt2 + 1], pa[mt], vf[2], vf[3]);
#if ATTNC_P_SPLIT
          attnc_mma(o[mt][2 * dt2], pr[mt], vf[0], vf[1]);
          attnc_mma(o[mt][2 * dt2 + 1], pr[mt], vf[2], vf[3]);
#endif
        }
      }
    }
#endif
    kt = next;
    buf ^= 1;
  }
  attnc_cp_async_wait_all();

  // Epilogue: normalize, gate, store; rows with no visible key give gate(0)
  // and lse = -inf.
  const int g = lane >> 2, c = lane & 3;
#pragma unroll
  for (int mt = 0; mt < ATTNC_MT; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      long long r = q0 + (warp * ATTNC_MT + mt) * 16 + g + half * 8;
#if ATTNC_SIGMOID
      float inv = 1.0f;
#else
      float sum = l[mt][half];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#if ATTNC_HAS_LSE
      if (c == 0 && r < a.S)
        a.lse[(b * a.Hq + h) * a.S + r] =
            sum > 0.0f ? (m[mt][half] + __log2f(sum)) * 0.6931471805599453f : -ATTNC_INF;
#endif
#endif
      if (r >= a.S)
        continue;
      long long rowAt = ((b * a.Hq + h) * a.S + r) * ATTNC_DV;
#if ATTNC_HAS_GATE
      const AttncGateRow gateRow = attnc_gate_row(a, b, h, r + iOffset);
#endif
#pragma unroll
      for (int dt = 0; dt < ATTNC_DVP / 8; ++dt) {
        int d = dt * 8 + 2 * c;
        if (d >= ATTNC_DV)
          continue;
        float x0 = o[mt][dt][2 * half] * inv, x1 = o[mt][dt][2 * half + 1] * inv;
#if ATTNC_HAS_GATE
        x0 = attnc_gate(a, gateRow, x0, b, h, r + iOffset, d);
        x1 = attnc_gate(a, gateRow, x1, b, h, r + iOffset, d + 1);
#endif
        attnc_store_out(a, rowAt + d, x0, x1);
      }
    }
  }
}
#endif // !ATTNC_WS

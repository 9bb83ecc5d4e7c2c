//===- attn_fwd_common.cuh - Helpers of the fused forward kernels --------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The first part of both forward kernel templates (attn_fwd_mma.cuh, the
// portable one, and attn_fwd_ws.cuh, the sm_90a one): their shapes, the
// tensor-core wrappers, the tile copies and the scores-to-weights step.
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
